/**
 * Restore side of a worker: get one chunk's blob — from the local cache when
 * it has a copy that verifies, else from the store — check it belongs to the
 * chunk the metadata names, decompress, verify the raw bytes' content key,
 * and write them at their offset into the staged file. Nothing unverified is
 * written; a cache entry that fails verification is deleted and refetched.
 */
import { constants } from 'node:fs';
import { decodeBlob } from '../src/blob.js';
import { blobEntryPath, dropEntry, readEntry, writeEntry } from '../src/cache.js';
import { loadHasher } from '../src/content-key.js';
import { ChunkpointError, CorruptDataError, storeIoError, withContext } from '../src/errors.js';
import { handleKey } from '../src/handle.js';
import type { RestoreChunkRequest, RestoreChunkResult } from '../src/protocol.js';
import { isNotFound } from '../src/store/store.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';
import { writeAtPosition } from '../src/store/direct-io.js';

const hasher = await loadHasher();

export async function restoreChunk(req: RestoreChunkRequest, scratch: Scratch): Promise<RestoreChunkResult> {
  const objectKey = handleKey(req.handle);
  const where = `chunk ${req.chunkIndex} of ${req.relPath} (blob ${objectKey})`;
  const details = { file: req.relPath, chunk: req.chunkIndex, blob: objectKey };

  let cacheDropped = false;
  const entry = req.cache === undefined ? undefined : blobEntryPath(req.cache.spec, req.key, req.rawLength);
  if (entry !== undefined) {
    const cached = await readEntry(entry, req.cache?.spec.ttlMs, (n) => scratch.buffer('blob', n));
    if (cached !== undefined) {
      let raw: Buffer | undefined;
      try {
        raw = decodeVerified(cached, req, `cached copy of ${where}`, scratch);
      } catch (error) {
        if (!(error instanceof CorruptDataError)) throw error;
        await dropEntry(entry);
        cacheDropped = true;
      }
      if (raw !== undefined) {
        await writeRaw(req, raw, where);
        return { op: 'restoreChunk', source: 'cache', bytesFetched: 0, bytesFromCache: cached.byteLength, cacheInserted: 0, cacheDropped, rawLength: req.rawLength };
      }
    }
  }

  const store = storeFor(req.store);
  let blob: Buffer;
  try {
    blob = await store.get(objectKey, { offset: req.handle.offset, length: req.handle.length }, (n) => scratch.buffer('blob', n));
  } catch (error) {
    if (isNotFound(error)) {
      throw new CorruptDataError('CHUNK_MISSING', `${where} is missing from the store ${store.location}; the checkpoint is damaged: restore an older checkpoint or repair the store`, { details, cause: error });
    }
    throw withContext(error, `fetching ${where}`, details);
  }
  if (blob.byteLength !== req.handle.length) {
    throw new CorruptDataError('CHUNK_CORRUPT', `${where} is ${blob.byteLength} bytes, expected ${req.handle.length} (truncated); the checkpoint is damaged: restore an older checkpoint or repair the store`, { details });
  }
  const raw = decodeVerified(blob, req, where, scratch);
  await writeRaw(req, raw, where);
  let cacheInserted = 0;
  if (entry !== undefined && req.cache?.insert === true) {
    await writeEntry(entry, [blob]);
    cacheInserted = blob.byteLength;
  }
  return { op: 'restoreChunk', source: 'remote', bytesFetched: blob.byteLength, bytesFromCache: 0, cacheInserted, cacheDropped, rawLength: req.rawLength };
}

function decodeVerified(blob: Buffer, req: RestoreChunkRequest, where: string, scratch: Scratch): Buffer {
  return decodeBlob(blob, req, hasher, (n) => scratch.buffer('raw', n), where, { file: req.relPath, chunk: req.chunkIndex });
}

async function writeRaw(req: RestoreChunkRequest, raw: Buffer, where: string): Promise<void> {
  try {
    // The coordinator created the staged file; never create or follow anything here. Direct I/O where
    // possible: the database reads its state through its own cache, and the restore fsyncs every file anyway.
    await writeAtPosition(req.target, raw, req.fileOffset, constants.O_NOFOLLOW);
  } catch (error) {
    if (error instanceof ChunkpointError) throw error;
    throw storeIoError('writing restored file', `${req.target} (${where})`, error);
  }
}
