/**
 * Restore side of a worker: fetch one blob, check it belongs to the chunk the
 * metadata names, decompress, verify the raw bytes' content key, and write
 * them at their offset into the staged file. Nothing unverified is written.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import lz4 from 'lz4';
import { BLOB_HEADER_SIZE, Codec, decodeBlobHeader } from '../src/blob.js';
import { loadHasher } from '../src/content-key.js';
import { ChunkpointError, CorruptDataError, storeIoError } from '../src/errors.js';
import { handleKey } from '../src/handle.js';
import type { RestoreChunkRequest, RestoreChunkResult } from '../src/protocol.js';
import { isNotFound } from '../src/store/store.js';
import { scratchBuffer, storeFor } from './stores.js';

const hasher = await loadHasher();

export async function restoreChunk(req: RestoreChunkRequest): Promise<RestoreChunkResult> {
  const objectKey = handleKey(req.handle);
  const where = `chunk ${req.chunkIndex} of ${req.relPath} (blob ${objectKey})`;
  const details = { file: req.relPath, chunk: req.chunkIndex, blob: objectKey };
  const corrupt = (why: string, cause?: unknown): CorruptDataError =>
    new CorruptDataError('CHUNK_CORRUPT', `${where} ${why}; the checkpoint is damaged: restore an older checkpoint or repair the store`, cause === undefined ? { details } : { details, cause });

  const store = storeFor(req.store);
  let blob: Buffer;
  try {
    blob = await store.get(objectKey, { offset: req.handle.offset, length: req.handle.length });
  } catch (error) {
    if (isNotFound(error)) {
      throw new CorruptDataError('CHUNK_MISSING', `${where} is missing from the store ${store.location}; the checkpoint is damaged: restore an older checkpoint or repair the store`, { details, cause: error });
    }
    throw error;
  }
  if (blob.byteLength !== req.handle.length) throw corrupt(`is ${blob.byteLength} bytes, expected ${req.handle.length} (truncated)`);

  let header;
  try {
    header = decodeBlobHeader(blob, hasher, objectKey);
  } catch (error) {
    throw corrupt(`is unreadable: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  if (header.key !== req.key || header.rawLength !== req.rawLength) throw corrupt('holds another chunk than the checkpoint names');

  const payload = blob.subarray(BLOB_HEADER_SIZE);
  let raw: Buffer;
  if (header.codec === Codec.Lz4) {
    raw = scratchBuffer('raw', req.rawLength);
    const n = lz4.decodeBlock(payload, raw);
    if (n !== req.rawLength) throw corrupt(`does not decompress to ${req.rawLength} bytes (LZ4 returned ${n})`);
  } else {
    raw = payload;
  }
  if (hasher.contentKey(raw) !== req.key) throw corrupt('fails content verification (hash mismatch)');

  try {
    // The coordinator created the staged file; never create or follow anything here.
    const fh = await open(req.target, constants.O_WRONLY | constants.O_NOFOLLOW);
    try {
      let done = 0;
      while (done < raw.byteLength) {
        const { bytesWritten } = await fh.write(raw, done, raw.byteLength - done, req.fileOffset + done);
        done += bytesWritten;
      }
    } finally {
      await fh.close();
    }
  } catch (error) {
    if (error instanceof ChunkpointError) throw error;
    throw storeIoError('writing restored file', `${req.target} (${where})`, error);
  }
  return { op: 'restoreChunk', bytesFetched: blob.byteLength, rawLength: req.rawLength };
}
