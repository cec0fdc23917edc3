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
import { constants, type Dirent } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { cacheIoError, errnoOf, InvalidInputError } from './errors.js';
import { readAt } from './file-range.js';
import { BLOB_HEADER_SIZE, MAX_CHUNK_SIZE } from './format/blob.js';
import { MAX_MANIFEST_SIZE } from './format/manifest.js';
import { MAX_METADATA_SIZE } from './format/metadata.js';
import { forEachBounded } from './bounded.js';
import { CHECKPOINT_DIR_RE, TEMP_PREFIX } from './format/names.js';
import { createWithContent } from './store/direct-io.js';
import { createModesFor, isSharedRoot } from './store/fs.js';

export const CACHE_LAYOUT_VERSION = 'v2';
/** Evict to this fraction of the cap, so a full cache is not rescanned on every insert. */
const LOW_WATERMARK = 0.9;
/** A hit refreshes an entry's mtime only when it is older than this. */
const RECENCY_RESOLUTION_MS = 60_000;
/** File system calls a scan keeps in flight (libuv runs four at a time by default). */
const SCAN_CONCURRENCY = 8;

/**
 * How a request may use the local cache: read its entries, and write new
 * ones while their sizes add up to at most `bytes`, the room the
 * coordinator's index granted for this request (cache.ts `CacheGrant`).
 */
export interface CacheUse {
  spec: CacheSpec;
  bytes: number;
}

/** A blob entry a request left in the cache (written, or read and kept), for the coordinator's index. */
export interface CachedBlob {
  key: string;
  rawLength: number;
  size: number;
}

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
      .map((n) => CHECKPOINT_DIR_RE.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw cacheIoError('listing cached checkpoints', spec.dir, error);
  }
}

/** A chunk (blob) entry, or a copy of a checkpoint's `_metadata` or a task manifest: both count against the cap. */
type EntryKind = 'blob' | 'checkpoint';

interface Entry {
  path: string;
  size: number;
  mtimeMs: number;
  kind: EntryKind;
}

export interface CacheStats {
  dir: string;
  /** Chunk entries and their bytes. */
  entries: number;
  bytes: number;
  /** Copies of checkpoint `_metadata`. */
  checkpoints: number;
  /** Bytes of the copies of `_metadata` and task manifests; with `bytes`, what the size cap bounds. */
  checkpointBytes: number;
  oldestUseMs?: number;
  newestUseMs?: number;
}

export interface PruneResult {
  /** Entries of any kind removed (chunks and checkpoint copies), and their bytes. */
  removedEntries: number;
  removedBytes: number;
  /** Chunk entries left, and their bytes. */
  entries: number;
  bytes: number;
  /** Bytes of the checkpoint copies left. */
  checkpointBytes: number;
}

/** The largest a blob entry named for `rawLength` raw bytes can be: its header and LZ4's worst case. */
function maxBlobEntrySize(rawLength: number): number {
  return BLOB_HEADER_SIZE + rawLength + Math.floor(rawLength / 255) + 16;
}

/**
 * The coordinator's view of a cache: sizes and recency of every entry (blobs
 * and the copies of checkpoint metadata and manifests, which count against
 * the cap alike), loaded once by scanning, kept current from worker results
 * and its own inserts, and used to make room before an insert. A scan
 * evicts what can never be an entry (larger than its kind allows, or not a
 * regular file), so it is never counted and never makes good entries go.
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

  /** Refuses options that make no sense (the caller's mistake, unlike a cache that cannot be created). */
  static checkOptions(options: CacheOptions): void {
    if (options.maxBytes !== undefined && (!Number.isSafeInteger(options.maxBytes) || options.maxBytes < 0)) {
      throw new InvalidInputError('INVALID_CACHE_SIZE', `cache size cap ${options.maxBytes} is not a byte count; use e.g. 10GiB`);
    }
    if (options.ttlMs !== undefined && (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0)) {
      throw new InvalidInputError('INVALID_CACHE_TTL', `cache TTL ${options.ttlMs} ms is not a positive duration; use e.g. 7d`);
    }
  }

  /** Opens (creating it if missing) and scans a cache; a failure to do so is a CACHE_… error (details.place 'cache'). */
  static async open(options: CacheOptions): Promise<CacheIndex> {
    CacheIndex.checkOptions(options);
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

  /** Bytes of every entry, chunks and checkpoint copies: what the cap bounds. */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Re-reads the directory: picks up what other processes added or removed,
   * drops expired entries, and evicts what can never be an entry: a file
   * larger than its kind allows (a 100 GiB entry counted in the total would
   * make LRU evict every good entry before it), and anything that is not a
   * regular file (FIFOs, directories and links where an entry belongs).
   * Nothing is followed: sizes come from lstat.
   */
  async rescan(): Promise<void> {
    this.entries.clear();
    this.total = 0;
    const now = Date.now();
    const found: { path: string; name: string; kind: EntryKind; maxSize: number }[] = [];
    // blobs/<fanout>/<key>-<rawLength>: in parallel, as one call at a time took seconds on a cache of 100,000 entries.
    const blobs = join(this.spec.dir, CACHE_LAYOUT_VERSION, 'blobs');
    const fanout = await this.listDir(blobs);
    await forEachBounded(fanout, SCAN_CONCURRENCY, async (sub) => {
      const dir = join(blobs, sub.name);
      if (!sub.isDirectory()) {
        await evictOddEntry(dir);
        return;
      }
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const raw = /-(\d{1,9})$/.exec(entry.name)?.[1];
        const maxSize = raw === undefined ? BLOB_HEADER_SIZE + MAX_CHUNK_SIZE + 65536 : maxBlobEntrySize(Number(raw));
        found.push({ path: join(dir, entry.name), name: entry.name, kind: 'blob', maxSize });
      }
    });
    // checkpoints/<job root>/chk-<n> and checkpoints/<job root>/manifests/<key…>.
    const checkpoints = join(this.spec.dir, CACHE_LAYOUT_VERSION, 'checkpoints');
    const walk = async (dir: string, inManifests: boolean): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path, inManifests || (dir !== checkpoints && entry.name === 'manifests'));
        else found.push({ path, name: entry.name, kind: 'checkpoint', maxSize: inManifests ? MAX_MANIFEST_SIZE : MAX_METADATA_SIZE });
      }
    };
    await walk(checkpoints, false);
    await forEachBounded(found, SCAN_CONCURRENCY, async ({ path, name, kind, maxSize }) => {
      const st = await lstat(path).catch(() => undefined);
      if (st === undefined) return;
      if (name.startsWith(TEMP_PREFIX)) {
        // A crashed insert; anything older than a minute is not in progress.
        if (now - st.mtimeMs > 60_000) await evictOddEntry(path);
        return;
      }
      if (!st.isFile() || st.size > maxSize) {
        await evictOddEntry(path);
        return;
      }
      if (this.ttlMs !== undefined && now - st.mtimeMs > this.ttlMs) {
        await dropEntry(path);
        this.expired.entries++;
        this.expired.bytes += st.size;
        return;
      }
      this.entries.set(path, { path, size: st.size, mtimeMs: st.mtimeMs, kind });
      this.total += st.size;
    });
  }

  /** The entries of a cache directory, none when it does not exist. */
  private async listDir(dir: string): Promise<Dirent[]> {
    try {
      return await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return [];
      throw cacheIoError('scanning cache', dir, error);
    }
  }

  has(path: string): boolean {
    return this.entries.has(path);
  }

  /** Whether the index holds an entry for this blob (a worker still verifies it when it reads it). */
  holds(key: string, rawLength: number): boolean {
    return this.entries.has(blobEntryPath(this.spec, key, rawLength));
  }

  /** Drops a blob entry from the index (not from disk): a request is about to read it, and settles what it left. */
  forgetBlob(key: string, rawLength: number): void {
    this.forget(blobEntryPath(this.spec, key, rawLength));
  }

  /**
   * Room for a request to write up to `bytes` of entries: all of it, or
   * none when it cannot fit under the cap (`bytes` 0). Workers write the
   * entries; this index learns of them when the grant is settled.
   */
  async grant(bytes: number): Promise<CacheGrant> {
    return new CacheGrant(this, bytes > 0 && (await this.reserve(bytes)) ? bytes : 0);
  }

  /** As much of `bytes` as there is room for (possibly 0): for a request whose first entries are worth caching alone. */
  async grantUpTo(bytes: number): Promise<CacheGrant> {
    return new CacheGrant(this, await this.reserveUpTo(bytes));
  }

  /**
   * Makes room for an insert of up to `bytes` and holds it until `release`.
   * Returns false when the entry can never fit (larger than the cap).
   */
  private async reserve(bytes: number): Promise<boolean> {
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
  private async reserveUpTo(bytes: number): Promise<number> {
    const want = Math.min(bytes, this.maxBytes);
    if (want <= 0) return 0;
    if (this.total + this.reserved + want > this.maxBytes) {
      await this.evictTo(Math.max(0, Math.min(this.maxBytes * LOW_WATERMARK, this.maxBytes - this.reserved - want)));
    }
    const room = Math.max(0, Math.min(want, this.maxBytes - this.total - this.reserved));
    this.reserved += room;
    return room;
  }

  /** Gives back reserved room; CacheGrant.settle's half of a grant (what the worker wrote is then `record`ed). */
  release(reservedBytes: number): void {
    this.reserved -= reservedBytes;
  }

  /** Records a hit or an insert made under a reservation. */
  record(path: string, size: number, kind: EntryKind = 'blob'): void {
    const old = this.entries.get(path);
    if (old !== undefined) this.total -= old.size;
    this.entries.set(path, { path, size, mtimeMs: Date.now(), kind });
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
    const { entries, bytes, checkpointBytes } = this.sizes();
    return {
      removedEntries: this.expired.entries + evicted.removedEntries,
      removedBytes: this.expired.bytes + evicted.removedBytes,
      entries,
      bytes,
      checkpointBytes,
    };
  }

  /** From the index (the scan that opened it is current). */
  stats(): Promise<CacheStats> {
    const { entries, bytes, checkpoints, checkpointBytes } = this.sizes();
    const times = [...this.entries.values()].filter((e) => e.kind === 'blob').map((e) => e.mtimeMs);
    const out: CacheStats = { dir: this.spec.dir, entries, bytes, checkpoints, checkpointBytes };
    if (times.length > 0) {
      out.oldestUseMs = Math.min(...times);
      out.newestUseMs = Math.max(...times);
    }
    return Promise.resolve(out);
  }

  private sizes(): { entries: number; bytes: number; checkpoints: number; checkpointBytes: number } {
    const out = { entries: 0, bytes: 0, checkpoints: 0, checkpointBytes: 0 };
    const checkpointsRoot = join(this.spec.dir, CACHE_LAYOUT_VERSION, 'checkpoints');
    for (const e of this.entries.values()) {
      if (e.kind === 'blob') {
        out.entries++;
        out.bytes += e.size;
      } else {
        if (/^chk-\d+$/.test(basename(e.path)) && dirname(dirname(e.path)) === checkpointsRoot) out.checkpoints++;
        out.checkpointBytes += e.size;
      }
    }
    return out;
  }

  /**
   * Inserts a copy of checkpoint metadata or a manifest under a reservation,
   * so the cap holds for these as for chunks; one that cannot fit is not
   * kept (the cache is never needed for correctness).
   */
  private async putCheckpointCopy(path: string, encoded: Buffer): Promise<void> {
    if (!(await this.reserve(encoded.byteLength))) return;
    try {
      await writeEntry(path, [encoded], this.spec.shared === true);
      this.record(path, encoded.byteLength, 'checkpoint');
    } finally {
      this.release(encoded.byteLength);
    }
  }

  /** Stores a copy of a checkpoint's `_metadata` (already verified by the caller). */
  async putMetadata(jobRootLocation: string, checkpointId: number, encoded: Buffer): Promise<void> {
    await this.putCheckpointCopy(metadataEntryPath(this.spec, jobRootLocation, checkpointId), encoded);
  }

  async getMetadata(jobRootLocation: string, checkpointId: number): Promise<Buffer | undefined> {
    return readEntry(metadataEntryPath(this.spec, jobRootLocation, checkpointId), undefined, MAX_METADATA_SIZE);
  }

  /** Removes a cached `_metadata` copy that cannot be used. */
  async dropMetadata(jobRootLocation: string, checkpointId: number): Promise<void> {
    const path = metadataEntryPath(this.spec, jobRootLocation, checkpointId);
    await dropEntry(path);
    this.forget(path);
  }

  /** Stores a copy of a task manifest (already verified by the caller), under its store key: unique per writer session. */
  async putManifest(jobRootLocation: string, key: string, encoded: Buffer): Promise<void> {
    await this.putCheckpointCopy(manifestEntryPath(this.spec, jobRootLocation, key), encoded);
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

/**
 * The one way a request uses the cache, in snapshot and restore alike: the
 * coordinator takes a grant of room under the cap before the request (so
 * the cap holds at every moment, whatever the workers write), hands the
 * worker `use` (spec and room), and settles the grant when the request is
 * over, with the entries it left, failed requests included (with none).
 */
export class CacheGrant {
  private settled = false;

  constructor(
    private readonly index: CacheIndex,
    readonly bytes: number,
  ) {}

  /** What the worker gets: where the cache is and how much it may write. */
  get use(): CacheUse {
    return { spec: this.index.spec, bytes: this.bytes };
  }

  /** Gives back the room and records `blobs` in the index; only the first call counts. */
  settle(blobs: readonly CachedBlob[] = []): void {
    if (this.settled) return;
    this.settled = true;
    this.index.release(this.bytes);
    for (const b of blobs) if (b.size > 0) this.index.record(blobEntryPath(this.index.spec, b.key, b.rawLength), b.size);
  }
}
