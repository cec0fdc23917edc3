/**
 * Restore side of a worker: one ranged read of a pack, streamed. Each blob is
 * read into scratch memory as it arrives, checked (header, the chunk the
 * checkpoint names, decompression, content key), and its raw bytes written
 * at their offsets in the staged files; memory is a chunk, not a span.
 * Nothing unverified is written. (A stream that breaks mid-way is resumed by
 * the store's retry layer at the first byte not yet delivered.)
 */
import { constants } from 'node:fs';
import { stat } from 'node:fs/promises';
import { blobEntryPath, writeEntry } from '../src/cache.js';
import { ChunkpointError, CorruptDataError, targetIoError, withContext } from '../src/errors.js';
import { decodeBlob } from '../src/format/blob.js';
import { loadHasher } from '../src/format/content-key.js';
import type { ChunkTarget, RestoreSpanRequest, RestoreSpanResult, SpanBlob } from '../src/protocol.js';
import { FileWriter } from '../src/store/direct-io.js';
import { isNotFound } from '../src/store/not-found.js';
import type { ObjectReader } from '../src/store/store.js';
import type { Cancellation } from './cancellation.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';

const hasher = await loadHasher();
/** Gaps between wanted blobs are read and dropped in pieces of this size. */
const SKIP_PIECE = 256 * 1024;

export async function restoreSpan(req: RestoreSpanRequest, scratch: Scratch, cancel: Cancellation): Promise<RestoreSpanResult> {
  const store = storeFor(req.store);
  const end = req.offset + req.length;
  const result: RestoreSpanResult = { op: 'restoreSpan', bytesFetched: 0, inserted: [] };
  let position = req.offset;
  let budget = req.cache?.bytes ?? 0;
  const files = new TargetFiles();
  let reader: ObjectReader;
  try {
    reader = await store.openReader(req.key, { offset: position, length: end - position });
  } catch (error) {
    if (isNotFound(error)) throw missing(req, error);
    throw withContext(error, `fetching ${req.blobs[0]?.where ?? req.key}`, { pack: req.key });
  }
  try {
    for (const blob of req.blobs) {
      cancel.check();
      while (position < blob.at) {
        const n = await read(reader, scratch.shared('skip', Math.min(SKIP_PIECE, blob.at - position)), blob);
        if (n === 0) throw truncated(req, blob, position);
        result.bytesFetched += n;
        position += n;
      }
      const data = scratch.blob('blob', blob.length, true);
      const n = await read(reader, data, blob);
      result.bytesFetched += n;
      position += n;
      if (n !== blob.length) throw truncated(req, blob, position);
      const raw = decodeBlob(data, blob, hasher, (size) => scratch.aligned('raw', size), `${blob.where} (pack ${req.key} at ${blob.at})`, { pack: req.key, offset: blob.at });
      await files.write(blob.targets, raw, blob.where);
      if (req.cache !== undefined && budget >= data.byteLength) {
        const entry = blobEntryPath(req.cache.spec, blob.key, blob.rawLength);
        if ((await stat(entry).catch(() => undefined)) === undefined) {
          await writeEntry(entry, [data], req.cache.spec.shared === true).then(
            () => {
              budget -= data.byteLength;
              result.inserted.push({ key: blob.key, rawLength: blob.rawLength, size: data.byteLength });
            },
            // A cache that cannot be written is a cache without this entry, never a failed restore.
            () => undefined,
          );
        }
      }
    }
  } finally {
    await reader.close();
    await files.close();
  }
  return result;

  async function read(from: ObjectReader, into: Buffer, blob: SpanBlob): Promise<number> {
    try {
      return await readFully(from, into);
    } catch (error) {
      throw withContext(error, `fetching ${blob.where}`, { pack: req.key });
    }
  }
}

/** Reads until `into` is full or the data ends. */
export async function readFully(reader: ObjectReader, into: Buffer): Promise<number> {
  let done = 0;
  while (done < into.byteLength) {
    const n = await reader.read(into.subarray(done));
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * The staged files one request writes into, each opened once (a span's
 * chunks mostly go to one file, in order) and closed when the request ends.
 */
export class TargetFiles {
  private readonly open = new Map<string, FileWriter>();

  async write(targets: readonly ChunkTarget[], raw: Buffer, where: string): Promise<void> {
    for (const target of targets) {
      try {
        let writer = this.open.get(target.path);
        if (writer === undefined) {
          // The coordinator created the staged file; never create or follow anything here. Direct I/O where
          // possible: the database reads its state through its own cache, and the restore fsyncs every file anyway.
          writer = new FileWriter(target.path, constants.O_NOFOLLOW);
          this.open.set(target.path, writer);
        }
        await writer.writeAt(raw, target.offset);
      } catch (error) {
        if (error instanceof ChunkpointError) throw error;
        throw targetIoError('writing restored file', `${target.path} (${where})`, error);
      }
    }
  }

  async close(): Promise<void> {
    const writers = [...this.open.values()];
    this.open.clear();
    for (const w of writers) await w.close();
  }
}

function missing(req: RestoreSpanRequest, cause: unknown): CorruptDataError {
  return new CorruptDataError('CHUNK_MISSING', `pack ${req.key} (holding ${req.blobs[0]?.where ?? 'chunks'}) is missing from the store; the checkpoint is damaged: restore an older checkpoint or repair the store`, {
    cause,
    details: { pack: req.key },
  });
}

function truncated(req: RestoreSpanRequest, blob: SpanBlob, at: number): CorruptDataError {
  return new CorruptDataError('CHUNK_CORRUPT', `${blob.where}: pack ${req.key} ends at ${at}, before the blob at ${blob.at}+${blob.length} (truncated); the checkpoint is damaged: restore an older checkpoint or repair the store`, {
    details: { pack: req.key, offset: blob.at },
  });
}
