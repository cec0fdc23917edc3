/**
 * Scrub side of a worker: fetch one blob and run every check a restore runs
 * (header, identity, decompression, content key), without writing anything.
 * Missing and corrupt blobs come back as a problem, not an error, so one
 * scrub reports all of them; an unreachable store is still an error.
 */
import { decodeBlob } from '../src/blob.js';
import { loadHasher } from '../src/content-key.js';
import { CorruptDataError } from '../src/errors.js';
import { handleKey } from '../src/handle.js';
import type { CheckBlobRequest, CheckBlobResult } from '../src/protocol.js';
import { isNotFound } from '../src/store/store.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';

const hasher = await loadHasher();

export async function checkBlob(req: CheckBlobRequest, scratch: Scratch): Promise<CheckBlobResult> {
  const objectKey = handleKey(req.handle);
  const store = storeFor(req.store);
  let blob: Buffer;
  try {
    blob = await store.get(objectKey, { offset: req.handle.offset, length: req.handle.length });
  } catch (error) {
    if (isNotFound(error)) return { op: 'checkBlob', bytesFetched: 0, problem: { code: 'CHUNK_MISSING', message: `blob ${objectKey} is missing from ${store.location}` } };
    throw error;
  }
  if (blob.byteLength !== req.handle.length) {
    return { op: 'checkBlob', bytesFetched: blob.byteLength, problem: { code: 'CHUNK_CORRUPT', message: `blob ${objectKey} is ${blob.byteLength} bytes, expected ${req.handle.length} (truncated)` } };
  }
  try {
    decodeBlob(blob, req, hasher, (n) => scratch.buffer('raw', n), `blob ${objectKey}`);
  } catch (error) {
    if (error instanceof CorruptDataError) return { op: 'checkBlob', bytesFetched: blob.byteLength, problem: { code: error.code, message: error.message } };
    throw error;
  }
  return { op: 'checkBlob', bytesFetched: blob.byteLength };
}
