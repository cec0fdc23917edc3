/**
 * Scrub side of a worker: read a span of a pack and run every check a
 * restore runs on each blob in it, writing nothing. Damaged blobs come back
 * as problems, not errors, so one scrub reports all of them; an unreachable
 * store is still an error.
 */
import { CorruptDataError } from '../src/errors.js';
import { decodeBlob } from '../src/format/blob.js';
import { loadHasher } from '../src/format/content-key.js';
import type { CheckSpanRequest, CheckSpanResult } from '../src/protocol.js';
import { isNotFound } from '../src/store/not-found.js';
import type { Cancellation } from './cancellation.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';
import { readFully } from './restore-span.js';

const hasher = await loadHasher();
const SKIP_PIECE = 256 * 1024;

export async function checkSpan(req: CheckSpanRequest, scratch: Scratch, cancel: Cancellation): Promise<CheckSpanResult> {
  const store = storeFor(req.store);
  const result: CheckSpanResult = { op: 'checkSpan', bytesFetched: 0, problems: [] };
  let reader;
  try {
    reader = await store.openReader(req.key, { offset: req.offset, length: req.length });
  } catch (error) {
    if (!isNotFound(error)) throw error;
    for (const b of req.blobs) result.problems.push({ at: b.at, code: 'CHUNK_MISSING', message: `pack ${req.key} is missing from ${store.location}` });
    return result;
  }
  try {
    let position = req.offset;
    for (const blob of req.blobs) {
      cancel.check();
      while (position < blob.at) {
        const n = await readFully(reader, scratch.shared('skip', Math.min(SKIP_PIECE, blob.at - position)));
        if (n === 0) break;
        result.bytesFetched += n;
        position += n;
      }
      const data = scratch.shared('blob', blob.length);
      const n = position === blob.at ? await readFully(reader, data) : 0;
      result.bytesFetched += n;
      position += n;
      if (n !== blob.length) {
        result.problems.push({ at: blob.at, code: 'CHUNK_CORRUPT', message: `pack ${req.key} ends before the blob at ${blob.at}+${blob.length} (truncated)` });
        continue;
      }
      try {
        decodeBlob(data, blob, hasher, (size) => scratch.buffer('raw', size), `blob at ${blob.at} of pack ${req.key}`);
      } catch (error) {
        if (!(error instanceof CorruptDataError)) throw error;
        result.problems.push({ at: blob.at, code: error.code, message: error.message });
      }
    }
  } finally {
    await reader.close();
  }
  return result;
}
