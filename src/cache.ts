/**
 * The local cache: a directory of blobs on the restoring machine, keyed by
 * content key, plus copies of the checkpoint metadata they belong to.
 *
 * Entries are blobs in the stored format, so they verify themselves: a
 * worker decodes and hashes every cached byte before using it, and a bad
 * entry is deleted and counted as a miss (Flink's task-local recovery never
 * checks its local copy). Entries appear by rename, so a crash mid-insert
 * leaves at most a temp file, never a half entry. There is no index file:
 * the directory is the truth, so deleting any file in it is always safe.
 *
 * Recency lives in each entry's mtime: a hit touches it. An entry untouched
 * for the TTL is expired; over the size cap, least recently used entries go
 * first. The coordinator reserves room for an entry before a worker may
 * insert it, so the cap holds after every insert of this process.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { cacheIoError, errnoOf, InvalidInputError } from './errors.js';
import { readAt } from './file-range.js';
import { MAX_MANIFEST_SIZE } from './format/manifest.js';
import { MAX_METADATA_SIZE } from './format/metadata.js';
import { forEachBounded } from './bounded.js';
import { createWithContent } from './store/direct-io.js';
import { createModesFor, isSharedRoot } from './store/fs.js';

export const CACHE_LAYOUT_VERSION = 'v2';
const TEMP_PREFIX = '.tmp-';
/** Evict to this fraction of the cap, so a full cache is not rescanned on every insert. */
const LOW_WATERMARK = 0.9;
/** A hit refreshes an entry's mtime only when it is older than this. */
const RECENCY_RESOLUTION_MS = 60_000;
/** File system calls a scan keeps in flight (libuv runs four at a time by default). */
const SCAN_CONCURRENCY = 8;

export interface CacheOptions {
  /** Cache directory (created if missing). */
  dir: string;
  /** Size cap in bytes (default: unlimited). */
  maxBytes?: number;
  /** Entries untouched for this long are evicted (default: never). */
  ttlMs?: number;
}

/** What a worker needs to use the cache; plain data, sent with each task. */
export interface CacheSpec {
  dir: string;
  ttlMs?: number;
  /** The cache directory is group-readable: entries are created group-readable too (see isSharedRoot). */
  shared?: boolean;
}

export function cacheSpec(options: CacheOptions): CacheSpec {
  const dir = resolve(options.dir);
  return options.ttlMs === undefined ? { dir } : { dir, ttlMs: options.ttlMs };
}

export function blobEntryPath(spec: CacheSpec, key: string, rawLength: number): string {
  return join(spec.dir, CACHE_LAYOUT_VERSION, 'blobs', key.slice(0, 2), `${key}-${rawLength}`);
}

/**
 * Reads a cache entry, or undefined on a miss. A hit resets the entry's TTL
 * and LRU position when it can. The bytes are NOT verified here: the caller
 * must verify them and call `dropEntry` if they fail.
 *
 * A cache is never needed for correctness, so whatever keeps an entry from
 * being read is a miss: absent, expired, larger than it can be, not a regular
 * file (a FIFO, a directory: evicted, as they would otherwise shadow the
 * entry forever), or not readable by this user (a cache shared with the
 * group, or an entry someone made private). A recency refresh that fails (an
 * entry another user owns may not have its times set) is ignored.
 *
 * `maxSize`: the most an entry of this kind can hold; a larger one (grown, or
 * not ours) is a miss and is evicted. `into` supplies the memory to read into
 * (see Store.get).
 */
export async function readEntry(path: string, ttlMs: number | undefined, maxSize: number, into?: (length: number) => Buffer): Promise<Buffer | undefined> {
  let fh;
  try {
    // Non-blocking: a FIFO planted in the cache opens at once (and is a miss below) instead of hanging the restore.
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === 'ENOENT' || errno === 'EACCES' || errno === 'EPERM') return undefined;
    // ELOOP: a symbolic link where an entry belongs; never followed, evicted.
    if (errno === 'ELOOP') {
      await evictOddEntry(path);
      return undefined;
    }
    throw cacheIoError('reading cache entry', path, error);
  }
  let evict = false;
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > maxSize || (ttlMs !== undefined && Date.now() - st.mtimeMs > ttlMs)) {
      evict = true;
      return undefined;
    }
    const data = into?.(st.size) ?? Buffer.allocUnsafe(st.size);
    const done = await readAt(fh, data, 0);
    // Recency to the minute is all LRU needs; an entry used a moment ago (just filled, or hit by the previous restore) is not touched again.
    const now = Date.now();
    if (now - st.mtimeMs > Math.min(RECENCY_RESOLUTION_MS, (ttlMs ?? Infinity) / 10)) await fh.utimes(new Date(now), new Date(now)).catch(() => undefined);
    return done === st.size ? data : data.subarray(0, done);
  } catch (error) {
    // An entry evicted by another process under us is just a miss, as is one this user may not read.
    const errno = errnoOf(error);
    if (errno === 'ENOENT' || errno === 'EACCES' || errno === 'EPERM') return undefined;
    // A directory opens but cannot be read.
    if (errno === 'EISDIR') {
      evict = true;
      return undefined;
    }
    throw cacheIoError('reading cache entry', path, error);
  } finally {
    await fh.close();
    if (evict) await evictOddEntry(path);
  }
}

/** Removes whatever sits where an entry belongs (a file, a link, a FIFO, a directory tree); never fails. */
async function evictOddEntry(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => undefined);
}

export async function dropEntry(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

/** Inserts an entry atomically (temp file + rename). Racing inserts of the same content are harmless. */
export async function writeEntry(path: string, parts: readonly Uint8Array[], shared = false): Promise<void> {
  const tmp = join(dirname(path), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
  const modes = createModesFor(shared);
  try {
    // Direct I/O where possible: the entry is read back only by a later restore, not worth evicting anything for.
    try {
      await createWithContent(tmp, parts, modes.file, constants.O_NOFOLLOW);
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') throw error;
      await mkdir(dirname(path), { recursive: true, mode: modes.dir });
      await createWithContent(tmp, parts, modes.file, constants.O_NOFOLLOW);
    }
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw cacheIoError('writing cache entry', path, error);
  }
}

/** Cached `_metadata` copies, keyed by the job root they came from, so a restore works with the store gone. */
export function metadataEntryPath(spec: CacheSpec, jobRootLocation: string, checkpointId: number): string {
  return join(metadataDirFor(spec, jobRootLocation), `chk-${checkpointId}`);
}

function manifestEntryPath(spec: CacheSpec, jobRootLocation: string, key: string): string {
  return join(metadataDirFor(spec, jobRootLocation), 'manifests', ...key.split('/'));
}

export function metadataDirFor(spec: CacheSpec, jobRootLocation: string): string {
  const id = createHash('sha256').update(jobRootLocation).digest('hex').slice(0, 32);
  return join(spec.dir, CACHE_LAYOUT_VERSION, 'checkpoints', id);
}

export async function cachedCheckpointIds(spec: CacheSpec, jobRootLocation: string): Promise<number[]> {
  try {
    const names = await readdir(metadataDirFor(spec, jobRootLocation));
    return names
      .map((n) => /^chk-([1-9]\d{0,14})$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw cacheIoError('listing cached checkpoints', spec.dir, error);
  }
}

interface Entry {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface CacheStats {
  dir: string;
  entries: number;
  bytes: number;
  checkpoints: number;
  oldestUseMs?: number;
  newestUseMs?: number;
}

export interface PruneResult {
  removedEntries: number;
  removedBytes: number;
  entries: number;
  bytes: number;
}

/**
 * The coordinator's view of a cache: sizes and recency of every blob entry,
 * loaded once by scanning, kept current from worker results, and used to
 * make room before an insert.
 */
export class CacheIndex {
  readonly spec: CacheSpec;
  private readonly maxBytes: number;
  private readonly ttlMs: number | undefined;
  private readonly entries = new Map<string, Entry>();
  private total = 0;
  private reserved = 0;
  /** Entries dropped as expired by scans since this index was opened. */
  private expired = { entries: 0, bytes: 0 };

  private constructor(options: CacheOptions, shared: boolean) {
    this.spec = shared ? { ...cacheSpec(options), shared } : cacheSpec(options);
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.ttlMs = options.ttlMs;
  }

  /** Opens a cache that must exist already (stats, prune): a mistyped path is an error, not a new empty cache. */
  static async openExisting(options: CacheOptions): Promise<CacheIndex> {
    const dir = resolve(options.dir);
    let isDir: boolean;
    try {
      isDir = (await stat(dir)).isDirectory();
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') throw new InvalidInputError('CACHE_NOT_FOUND', `there is no cache at ${dir}; check the path (a cache is created by the first snapshot or restore that uses it)`);
      throw cacheIoError('opening cache', dir, error);
    }
    if (!isDir) throw new InvalidInputError('CACHE_NOT_FOUND', `cache ${dir} is not a directory; check the path`);
    return CacheIndex.open(options);
  }

  static async open(options: CacheOptions): Promise<CacheIndex> {
    if (options.maxBytes !== undefined && (!Number.isSafeInteger(options.maxBytes) || options.maxBytes < 0)) {
      throw new InvalidInputError('INVALID_CACHE_SIZE', `cache size cap ${options.maxBytes} is not a byte count; use e.g. 10GiB`);
    }
    if (options.ttlMs !== undefined && (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0)) {
      throw new InvalidInputError('INVALID_CACHE_TTL', `cache TTL ${options.ttlMs} ms is not a positive duration; use e.g. 7d`);
    }
    const dir = cacheSpec(options).dir;
    try {
      await mkdir(join(dir, CACHE_LAYOUT_VERSION, 'blobs'), { recursive: true, mode: createModesFor(false).dir });
    } catch (error) {
      throw cacheIoError('creating cache directory', dir, error);
    }
    const index = new CacheIndex(options, await isSharedRoot(dir));
    await index.rescan();
    return index;
  }

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Re-reads the directory: picks up what other processes added or removed, and drops expired entries. */
  async rescan(): Promise<void> {
    this.entries.clear();
    this.total = 0;
    const root = join(this.spec.dir, CACHE_LAYOUT_VERSION, 'blobs');
    let fanout: string[];
    try {
      fanout = await readdir(root);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return;
      throw cacheIoError('scanning cache', root, error);
    }
    const now = Date.now();
    // In parallel: one call at a time, a cache of 100,000 entries took seconds to open.
    const paths: { path: string; name: string }[] = [];
    await forEachBounded(fanout, SCAN_CONCURRENCY, async (sub) => {
      const names = await readdir(join(root, sub)).catch(() => []);
      for (const name of names) paths.push({ path: join(root, sub, name), name });
    });
    await forEachBounded(paths, SCAN_CONCURRENCY, async ({ path, name }) => {
      const st = await stat(path).catch(() => undefined);
      if (st === undefined) return;
      if (name.startsWith(TEMP_PREFIX)) {
        // A crashed insert; anything older than a minute is not in progress.
        if (now - st.mtimeMs > 60_000) await dropEntry(path);
        return;
      }
      if (this.ttlMs !== undefined && now - st.mtimeMs > this.ttlMs) {
        await dropEntry(path);
        this.expired.entries++;
        this.expired.bytes += st.size;
        return;
      }
      this.entries.set(path, { path, size: st.size, mtimeMs: st.mtimeMs });
      this.total += st.size;
    });
  }

  has(path: string): boolean {
    return this.entries.has(path);
  }

  /**
   * Makes room for an insert of up to `bytes` and holds it until `settle`.
   * Returns false when the entry can never fit (larger than the cap).
   */
  async reserve(bytes: number): Promise<boolean> {
    if (bytes > this.maxBytes) return false;
    if (this.total + this.reserved + bytes > this.maxBytes) {
      await this.evictTo(Math.min(this.maxBytes * LOW_WATERMARK, this.maxBytes - this.reserved - bytes));
    }
    if (this.total + this.reserved + bytes > this.maxBytes) return false;
    this.reserved += bytes;
    return true;
  }

  /**
   * Reserves as much of `bytes` as there is room for under the cap (after
   * evicting what it can), and returns that amount, possibly 0: for an
   * insert of many entries of which only some need to fit.
   */
  async reserveUpTo(bytes: number): Promise<number> {
    const want = Math.min(bytes, this.maxBytes);
    if (want <= 0) return 0;
    if (this.total + this.reserved + want > this.maxBytes) {
      await this.evictTo(Math.max(0, Math.min(this.maxBytes * LOW_WATERMARK, this.maxBytes - this.reserved - want)));
    }
    const room = Math.max(0, Math.min(want, this.maxBytes - this.total - this.reserved));
    this.reserved += room;
    return room;
  }

  /** Releases a reservation once the worker is done (what it inserted is then `record`ed). */
  release(reservedBytes: number): void {
    this.reserved -= reservedBytes;
  }

  /** Records a hit or an insert made under a reservation. */
  record(path: string, size: number): void {
    const old = this.entries.get(path);
    if (old !== undefined) this.total -= old.size;
    this.entries.set(path, { path, size, mtimeMs: Date.now() });
    this.total += size;
  }

  forget(path: string): void {
    const old = this.entries.get(path);
    if (old === undefined) return;
    this.entries.delete(path);
    this.total -= old.size;
  }

  /** Deletes least recently used entries until at most `target` bytes remain. */
  async evictTo(target: number): Promise<{ removedEntries: number; removedBytes: number }> {
    let removedEntries = 0;
    let removedBytes = 0;
    if (this.total <= target) return { removedEntries, removedBytes };
    const byAge = [...this.entries.values()].sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const entry of byAge) {
      if (this.total <= target) break;
      await dropEntry(entry.path);
      this.forget(entry.path);
      removedEntries++;
      removedBytes += entry.size;
    }
    return { removedEntries, removedBytes };
  }

  /** Applies the TTL and the cap now (the `cache prune` command). */
  async prune(): Promise<PruneResult> {
    await this.rescan(); // drops expired entries
    const evicted = Number.isFinite(this.maxBytes) ? await this.evictTo(this.maxBytes) : { removedEntries: 0, removedBytes: 0 };
    return {
      removedEntries: this.expired.entries + evicted.removedEntries,
      removedBytes: this.expired.bytes + evicted.removedBytes,
      entries: this.entries.size,
      bytes: this.total,
    };
  }

  async stats(): Promise<CacheStats> {
    let checkpoints = 0;
    try {
      const jobs = await readdir(join(this.spec.dir, CACHE_LAYOUT_VERSION, 'checkpoints'));
      for (const job of jobs) checkpoints += (await readdir(join(this.spec.dir, CACHE_LAYOUT_VERSION, 'checkpoints', job))).filter((n) => n.startsWith('chk-')).length;
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') throw cacheIoError('scanning cache', this.spec.dir, error);
    }
    const times = [...this.entries.values()].map((e) => e.mtimeMs);
    const out: CacheStats = { dir: this.spec.dir, entries: this.entries.size, bytes: this.total, checkpoints };
    if (times.length > 0) {
      out.oldestUseMs = Math.min(...times);
      out.newestUseMs = Math.max(...times);
    }
    return out;
  }

  /** Stores a copy of a checkpoint's `_metadata` (already verified by the caller). */
  async putMetadata(jobRootLocation: string, checkpointId: number, encoded: Buffer): Promise<void> {
    await writeEntry(metadataEntryPath(this.spec, jobRootLocation, checkpointId), [encoded], this.spec.shared === true);
  }

  async getMetadata(jobRootLocation: string, checkpointId: number): Promise<Buffer | undefined> {
    return readEntry(metadataEntryPath(this.spec, jobRootLocation, checkpointId), undefined, MAX_METADATA_SIZE);
  }

  /** Removes a cached `_metadata` copy that cannot be used. */
  async dropMetadata(jobRootLocation: string, checkpointId: number): Promise<void> {
    await dropEntry(metadataEntryPath(this.spec, jobRootLocation, checkpointId));
  }

  /** Stores a copy of a task manifest (already verified by the caller), under its store key: unique per writer session. */
  async putManifest(jobRootLocation: string, key: string, encoded: Buffer): Promise<void> {
    await writeEntry(manifestEntryPath(this.spec, jobRootLocation, key), [encoded], this.spec.shared === true);
  }

  async getManifest(jobRootLocation: string, key: string): Promise<Buffer | undefined> {
    return readEntry(manifestEntryPath(this.spec, jobRootLocation, key), undefined, MAX_MANIFEST_SIZE);
  }
}

/** Touches an entry's mtime without reading it (a hit recorded by the index). */
export async function touchEntry(path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined);
}
