/**
 * Snapshot side of a worker: read one byte range of a state file, name it by
 * content, and store it unless an identical blob is already there.
 */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import lz4 from 'lz4';
import { BLOB_HEADER_SIZE, Codec, encodeBlobHeader } from '../src/blob.js';
import { blobEntryPath, writeEntry } from '../src/cache.js';
import { loadHasher } from '../src/content-key.js';
import { ConflictError, InvalidInputError, errnoOf, storeIoError } from '../src/errors.js';
import { handleKey } from '../src/handle.js';
import { blobHandle } from '../src/metadata.js';
import type { WriteChunkRequest, WriteChunkResult } from '../src/protocol.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';
import { readAt } from '../src/file-range.js';

const hasher = await loadHasher();

/** Chunks this large first try LZ4 on a prefix; data that will not compress (Snappy SSTs) skips the full pass. */
const PROBE_THRESHOLD = 256 * 1024;
const PROBE_LENGTH = 64 * 1024;
/**
 * The probe must save at least this share for the full LZ4 pass to run.
 * Snappy-block SSTs still shrink by ~15% under LZ4, at less than half the
 * speed LZ4 runs on uncompressed blocks (measured: ceiling 91 vs 233 MB/s on
 * two threads); that trade is not worth a snapshot's time, and uncompressed
 * blocks (~50%) are far above it.
 */
const PROBE_MIN_SAVING = 1 / 4;

export async function writeChunk(req: WriteChunkRequest, scratch: Scratch): Promise<WriteChunkResult> {
  const raw = await readRange(req, scratch);
  const key = hasher.contentKey(raw);
  const store = storeFor(req.store);
  let nameOnly = blobHandle(key, req.length, 0, req.owner);
  let objectKey = handleKey(nameOnly);

  let existing = await store.stat(objectKey);
  if (existing === undefined && req.owner !== undefined) {
    // A task-private file whose chunk is already shared (a copied SST, say) references the shared blob.
    const shared = blobHandle(key, req.length, 0);
    existing = await store.stat(handleKey(shared));
    if (existing !== undefined) {
      nameOnly = shared;
      objectKey = handleKey(shared);
    }
  }
  let result: WriteChunkResult;
  let parts: Buffer[] | undefined;
  if (existing !== undefined) {
    // Deduplicated against a blob we did not write: make it young so gc's grace period keeps it until we commit.
    await store.touch([objectKey]);
    result = { op: 'writeChunk', key, rawLength: req.length, handle: { ...nameOnly, length: existing.size }, created: false, bytesWritten: 0, cacheInserted: 0 };
  } else {
    parts = encodeBlob(key, raw, scratch);
    const staged = await store.stage(objectKey, parts);
    result = { op: 'writeChunk', key, rawLength: req.length, handle: { ...nameOnly, length: staged.size }, created: true, bytesWritten: staged.size, cacheInserted: 0, staged };
  }

  if (req.cache?.insert === true) {
    // The task-local copy: a later restore on this machine reads nothing remote.
    const entry = blobEntryPath(req.cache.spec, key, req.length);
    if ((await stat(entry).catch(() => undefined)) === undefined) {
      parts ??= encodeBlob(key, raw, scratch);
      await writeEntry(entry, parts);
      result.cacheInserted = parts.reduce((sum, p) => sum + p.byteLength, 0);
    }
  }
  return result;
}

/**
 * Header + payload, as parts that share the task's scratch buffers (valid
 * until the task ends). Exported so the benchmark's compute ceiling runs exactly the
 * writer's CPU work.
 */
export function encodeBlob(key: string, raw: Buffer, scratch: Scratch): Buffer[] {
  const out = scratch.buffer('blob', BLOB_HEADER_SIZE + lz4.encodeBound(raw.byteLength));
  const compressed = compress(raw, out.subarray(BLOB_HEADER_SIZE), scratch);
  const codec = compressed > 0 ? Codec.Lz4 : Codec.Raw;
  const payloadLength = codec === Codec.Lz4 ? compressed : raw.byteLength;
  encodeBlobHeader({ codec, rawLength: raw.byteLength, payloadLength, key }, hasher, out.subarray(0, BLOB_HEADER_SIZE));
  return codec === Codec.Lz4 ? [out.subarray(0, BLOB_HEADER_SIZE + compressed)] : [out.subarray(0, BLOB_HEADER_SIZE), raw];
}

/** LZ4 block size, or 0 when storing raw is the better choice (the probe saves under a quarter, or the whole under 1/16). */
function compress(raw: Buffer, out: Buffer, scratch: Scratch): number {
  if (raw.byteLength >= PROBE_THRESHOLD) {
    const probe = scratch.buffer('probe', lz4.encodeBound(PROBE_LENGTH));
    const n = lz4.encodeBlock(raw.subarray(0, PROBE_LENGTH), probe);
    if (n <= 0 || n > PROBE_LENGTH * (1 - PROBE_MIN_SAVING)) return 0;
  }
  const n = lz4.encodeBlock(raw, out);
  if (n <= 0 || n > raw.byteLength - raw.byteLength / 16) return 0;
  return n;
}

async function readRange(req: WriteChunkRequest, scratch: Scratch): Promise<Buffer> {
  const where = `${req.relPath} (chunk ${req.chunkIndex}, bytes ${req.offset}..${req.offset + req.length})`;
  let fh;
  try {
    fh = await open(req.file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') {
      throw new ConflictError('STATE_CHANGED', `state file ${req.relPath} vanished while the snapshot was reading it; snapshot a stable state directory (e.g. a RocksDB checkpoint) and retry`, {
        cause: error,
        details: { file: req.relPath },
      });
    }
    if (errnoOf(error) === 'ELOOP') {
      throw new InvalidInputError('STATE_SYMLINK', `state file ${req.relPath} became a symbolic link; chunkpoint does not follow links`, { details: { file: req.relPath } });
    }
    throw storeIoError('reading state file', req.file, error);
  }
  try {
    const buf = scratch.buffer('raw', req.length);
    const done = await readAt(fh, buf, req.offset);
    const st = await fh.stat();
    if (done !== req.length || st.size !== req.expect.size || st.mtimeMs !== req.expect.mtimeMs) {
      throw new ConflictError(
        'STATE_CHANGED',
        `state file ${where} changed while the snapshot was reading it (size ${req.expect.size} -> ${st.size}); snapshot a stable state directory (e.g. a RocksDB checkpoint) and retry`,
        { details: { file: req.relPath, chunk: req.chunkIndex } },
      );
    }
    return buf;
  } catch (error) {
    if (error instanceof ConflictError) throw error;
    throw storeIoError('reading state file', where, error);
  } finally {
    await fh.close();
  }
}
