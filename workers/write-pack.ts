/**
 * Snapshot side of a worker: read runs of chunks of state files, name each by
 * content, reuse it when the base checkpoint holds it (the shared dedupe
 * table), else compress it and append it to a pack of this session. A pack is
 * streamed to the store as it fills (one buffer of memory, not a pack) and
 * closed with its trailer when the next blob would pass the pack size.
 */
import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { lz4 } from '../src/native.js';
import { BLOB_HEADER_SIZE, Codec, encodeBlobHeader } from '../src/format/blob.js';
import { blobEntryPath, writeEntry } from '../src/cache.js';
import { keyToBytes, loadHasher } from '../src/format/content-key.js';
import { lookupDedupe } from '../src/dedupe-index.js';
import { ChunkpointError, ConflictError, InvalidInputError, errnoOf, stateIoError } from '../src/errors.js';
import { readAt, readAtSync } from '../src/file-range.js';
import { newId } from '../src/format/ids.js';
import { packKey } from '../src/format/names.js';
import { PackIndex, encodePackHeader } from '../src/format/pack.js';
import type { FileRun, WritePackRequest, WritePackResult, WrittenChunk } from '../src/protocol.js';
import type { ObjectWriter, StagedObject, Store } from '../src/store/store.js';
import type { Cancellation } from './cancellation.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';

const hasher = await loadHasher();

/** Chunks this large first try LZ4 on a prefix; data that will not compress (Snappy SSTs) skips the full pass. */
const PROBE_THRESHOLD = 256 * 1024;
const PROBE_LENGTH = 64 * 1024;
/**
 * The probe must save at least this share for the full LZ4 pass to run.
 * Snappy-block SSTs still shrink by ~15% under LZ4, at less than half the
 * speed LZ4 runs on uncompressed blocks; that trade is not worth a
 * snapshot's time, and uncompressed blocks (~50%) are far above it.
 */
const PROBE_MIN_SAVING = 1 / 4;

export async function writePack(req: WritePackRequest, scratch: Scratch, cancel: Cancellation): Promise<WritePackResult> {
  const store = storeFor(req.store);
  const out: WritePackResult = { op: 'writePack', packs: [], chunks: [], bytesRead: 0, bytesWritten: 0, rawBytesNew: 0, inserted: [], stages: { readMs: 0, hashMs: 0, compressMs: 0, writeMs: 0 } };
  const stages = out.stages;
  let t = performance.now();
  /** Adds the time since the last mark to `stage`. */
  const mark = (stage: keyof typeof stages): void => {
    const now = performance.now();
    stages[stage] += now - t;
    t = now;
  };
  const pack = new PackWriter(store, req);
  const reader = new StateReader();
  // The same content twice in one request (a file copied, repeated blocks) is stored once.
  const stored = new Map<string, { pack: number; offset: number; length: number }>();
  try {
    for (const run of req.runs) {
      t = performance.now();
      const fh = await openStateFile(run);
      // Reading asynchronously, one read ahead: the next chunk is read (on libuv's threads) while this one
      // is hashed and compressed. Reading synchronously, each chunk just before it is encoded.
      let ahead: Promise<Buffer> | undefined;
      try {
        for (let i = 0; i < run.chunks.length; i++) {
          const c = run.chunks[i] as FileRun['chunks'][number];
          cancel.check();
          const raw = await (ahead ?? readChunk(reader, fh, run, c, scratch, i % 2));
          ahead = undefined;
          const following = run.chunks[i + 1];
          if (following !== undefined && !reader.sync) {
            ahead = readChunk(reader, fh, run, following, scratch, (i + 1) % 2);
            // Awaited in the next round or in `finally`; a failure must not count as unhandled meanwhile.
            ahead.catch(() => undefined);
          }
          out.bytesRead += c.length;
          mark('readMs');
          const key = hasher.contentKey(raw);
          mark('hashMs');
          const reused = req.dedupe === undefined ? -1 : lookupDedupe(req.dedupe, keyToBytes(key), c.length);
          let parts: Buffer[] | undefined;
          let chunk: WrittenChunk;
          const earlier = reused >= 0 ? undefined : stored.get(`${key}-${c.length}`);
          if (reused >= 0) {
            chunk = { key, rawLength: c.length, reused };
          } else if (earlier !== undefined) {
            chunk = { key, rawLength: c.length, ...earlier, repeat: true };
          } else {
            parts = encodeBlob(key, raw, scratch);
            mark('compressMs');
            const place = await pack.append(key, c.length, parts);
            stored.set(`${key}-${c.length}`, place);
            chunk = { key, rawLength: c.length, ...place };
            out.rawBytesNew += c.length;
          }
          mark('writeMs');
          out.chunks.push(chunk);
          if (req.cache !== undefined && req.cache.bytes > 0) {
            // The task-local copy: a later restore on this machine reads nothing remote.
            const entry = blobEntryPath(req.cache.spec, key, c.length);
            if ((await stat(entry).catch(() => undefined)) === undefined) {
              parts ??= encodeBlob(key, raw, scratch);
              const size = parts.reduce((sum, p) => sum + p.byteLength, 0);
              // A cache that cannot be written is a cache without this entry, never a failed snapshot.
              if (await writeEntry(entry, parts, req.cache.spec.shared === true).then(() => true, () => false)) out.inserted.push({ key, rawLength: c.length, size });
            }
            mark('writeMs');
          }
        }
        await checkUnchanged(fh, run);
      } finally {
        // Neither the descriptor nor the scratch buffer may be let go while a read still fills it.
        if (ahead !== undefined) await ahead.catch(() => undefined);
        await fh.close();
      }
    }
    t = performance.now();
    await pack.close();
    mark('writeMs');
  } catch (error) {
    await pack.abort();
    throw error;
  }
  out.packs = pack.finished;
  out.bytesWritten = pack.finished.reduce((sum, p) => sum + p.staged.size, 0);
  return out;
}

/** The packs of one request: appends blobs, cuts a new pack at the size limit, and cleans up after a failure. */
export class PackWriter {
  readonly finished: { staged: StagedObject; blobs: number }[] = [];
  private writer: ObjectWriter | undefined;
  private index: PackIndex | undefined;

  constructor(
    private readonly store: Store,
    private readonly req: WritePackRequest,
  ) {}

  async append(key: string, rawLength: number, parts: readonly Buffer[]): Promise<{ pack: number; offset: number; length: number }> {
    const length = parts.reduce((sum, p) => sum + p.byteLength, 0);
    if (this.index !== undefined && this.index.entries.length > 0 && this.index.size + length > this.req.packSize) await this.close();
    if (this.writer === undefined || this.index === undefined) {
      this.writer = await this.store.createWriter(packKey(this.req.area, this.req.task, newId(), this.req.session), { durable: this.req.durable });
      this.index = new PackIndex();
      await this.writer.write([encodePackHeader(hasher)]);
    }
    const offset = this.index.add(key, rawLength, length);
    await this.writer.write(parts);
    return { pack: this.finished.length, offset, length };
  }

  /** Ends the open pack with its trailer, if one is open. */
  async close(): Promise<void> {
    const { writer, index } = this;
    if (writer === undefined || index === undefined) return;
    this.writer = undefined;
    this.index = undefined;
    try {
      await writer.write([index.trailer(hasher)]);
      this.finished.push({ staged: await writer.finish(), blobs: index.entries.length });
    } catch (error) {
      // No longer this.writer, so abort() would not see it: an unaborted writer keeps its file
      // (and on S3 its spool and upload) open until the garbage collector closes it.
      await writer.abort().catch(() => undefined);
      throw error;
    }
  }

  /** Drops the open pack and whatever this request already finished: nothing can reference them. */
  async abort(): Promise<void> {
    await this.writer?.abort().catch(() => undefined);
    this.writer = undefined;
    const leftovers = this.finished.map((p) => (p.staged.token === '' ? p.staged.key : p.staged.token));
    if (leftovers.length > 0) await this.store.delete(leftovers).catch(() => undefined);
  }
}

/**
 * Header + payload, as parts that share the request's scratch buffers (valid
 * until the request ends). Exported so the benchmark's compute ceiling runs
 * exactly the writer's CPU work.
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

/**
 * Opens a state file without following a link or blocking on a FIFO that
 * replaced it after the listing, and checks it is still the file listed.
 */
async function openStateFile(run: FileRun): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(run.file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') {
      throw new ConflictError('STATE_CHANGED', `state file ${run.relPath} vanished while the snapshot was reading it; snapshot a stable state directory (e.g. a RocksDB checkpoint) and retry`, {
        cause: error,
        details: { file: run.relPath },
      });
    }
    if (errnoOf(error) === 'ELOOP') {
      throw new InvalidInputError('STATE_SYMLINK', `state file ${run.relPath} became a symbolic link; chunkpoint does not follow links`, { details: { file: run.relPath } });
    }
    throw stateIoError('reading state file', run.file, error);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw new InvalidInputError('STATE_SPECIAL_FILE', `state file ${run.relPath} was replaced by something that is not a regular file while the snapshot ran; snapshot a stable state directory`, {
        details: { file: run.relPath },
      });
    }
    await checkUnchanged(fh, run, st);
    return fh;
  } catch (error) {
    await fh.close();
    throw error;
  }
}

async function checkUnchanged(fh: FileHandle, run: FileRun, st?: { size: number; mtimeMs: number }): Promise<void> {
  let now: { size: number; mtimeMs: number };
  try {
    now = st ?? (await fh.stat());
  } catch (error) {
    throw stateIoError('reading state file', run.file, error);
  }
  if (now.size !== run.expect.size || now.mtimeMs !== run.expect.mtimeMs) {
    const what =
      now.size !== run.expect.size
        ? `its size went from ${run.expect.size} to ${now.size} bytes`
        : `its modification time went from ${new Date(run.expect.mtimeMs).toISOString()} to ${new Date(now.mtimeMs).toISOString()}`;
    throw new ConflictError('STATE_CHANGED', `state file ${run.relPath} changed while the snapshot was reading it (${what}); snapshot a stable state directory (e.g. a RocksDB checkpoint) and retry`, {
      details: { file: run.relPath },
    });
  }
}

/** A read of this many milliseconds per MiB or more came from the device, not from the page cache (a copy: ~0.1-0.4 ms per MiB). */
const SLOW_READ_MS_PER_MIB = 1;
/** Reads done through libuv's threads after a slow synchronous one, before the next synchronous try. */
const ASYNC_AFTER_SLOW = 16;

/**
 * How a request reads its state files: synchronously on the worker's own
 * thread while the bytes come out of the page cache, through libuv's threads
 * while they come from the device.
 *
 * Why: a read through libuv's threads costs a handoff each way, and its copy
 * out of the page cache runs on another core, so the chunk then reaches the
 * hashing thread from another core's cache. On a warm page cache a full
 * snapshot of 1 GiB took 6% less time and 0.10 CPU-seconds less reading
 * synchronously (quiet A/B, docs/PERFORMANCE.md). But a synchronous read blocks the
 * thread, and on high-latency storage (network block devices) the thread
 * needs several reads in flight while it computes. So a request starts
 * synchronous, and a slow read sends it to libuv's threads, one read ahead,
 * for the next ASYNC_AFTER_SLOW reads before it tries again.
 * CHUNKPOINT_SYNC_READS=0 keeps every read on libuv's threads.
 */
class StateReader {
  /** CHUNKPOINT_SYNC_READS=0: always through libuv's threads (storage where even a first slow read per 16 costs too much). */
  private asyncLeft = process.env['CHUNKPOINT_SYNC_READS'] === '0' ? Infinity : 0;

  /** Whether the next read runs on this thread (then there is no point reading ahead). */
  get sync(): boolean {
    return this.asyncLeft === 0;
  }

  async read(fh: FileHandle, into: Buffer, position: number): Promise<number> {
    if (this.asyncLeft > 0) {
      this.asyncLeft--;
      return readAt(fh, into, position);
    }
    const started = performance.now();
    const done = readAtSync(fh.fd, into, position);
    if (performance.now() - started >= (SLOW_READ_MS_PER_MIB * into.byteLength) / 1048576) this.asyncLeft = ASYNC_AFTER_SLOW;
    return done;
  }
}

/** Reads chunk `c` into the scratch buffer of `slot` (0 or 1: the chunk being encoded and the one read ahead use different ones). */
async function readChunk(reader: StateReader, fh: FileHandle, run: FileRun, c: { index: number; offset: number; length: number }, scratch: Scratch, slot: number): Promise<Buffer> {
  const buf = scratch.buffer(slot === 0 ? 'raw' : 'raw-ahead', c.length);
  let done: number;
  try {
    done = await reader.read(fh, buf, c.offset);
  } catch (error) {
    if (error instanceof ChunkpointError) throw error;
    throw stateIoError('reading state file', `${run.file} (chunk ${c.index})`, error);
  }
  if (done !== c.length) {
    throw new ConflictError('STATE_CHANGED', `state file ${run.relPath} changed while the snapshot was reading it (chunk ${c.index} ended after ${done} of ${c.length} bytes); snapshot a stable state directory and retry`, {
      details: { file: run.relPath, chunk: c.index },
    });
  }
  return buf;
}
