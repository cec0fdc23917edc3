/**
 * The local-directory store: a job root is a directory, keys are relative
 * file paths below it.
 *
 * Writes go to a hidden temp file (`.tmp-<id>`, the id carrying its start
 * time) in the destination directory and become visible in one atomic step:
 * `link()` for put-if-absent (it fails with EEXIST instead of replacing,
 * which `rename()` cannot promise), `rename()` otherwise. So a reader, or a
 * process killed mid-write, never sees a partial object.
 *
 * Nothing here follows a symbolic link or opens anything but a regular file:
 * every open is O_NOFOLLOW | O_NONBLOCK and checked with fstat, and the
 * directories between the job root and a key must resolve to themselves
 * (refuseLinkedDirs), so a link planted in the store, as a file or as a
 * directory, cannot lead a write, a delete or a read outside the job root,
 * and a FIFO cannot hang a reader. Files are created owner-only (0600, 0700
 * directories): checkpoints hold the state of a database.
 */
import { close as fsClose, constants, fstat as fsFstat, open as fsOpen, read as fsRead, type Dirent } from 'node:fs';
import { promisify } from 'node:util';
import { link, lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, stat, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { ConflictError, CorruptDataError, InvalidInputError, StoreUnavailableError, apiName, errnoOf, storeIoError } from '../errors.js';
import { AREAS, TEMP_PREFIX, checkpointDirName, parseStoreKey, printable, tempName, unsafeNameReason } from '../format/names.js';
import { readAt } from '../file-range.js';
import { forEachBounded } from '../bounded.js';
import { FileAppender } from './direct-io.js';
import { notFound } from './not-found.js';
import type { FsStoreSpec } from './spec.js';
import type { ByteRange, IncompleteWrite, ObjectInfo, ObjectReader, ObjectWriter, PublishOptions, PutOptions, PutResult, StagedObject, Store, WriterOptions } from './store.js';

/**
 * fsyncs in flight while publishing a batch: enough for the filesystem to
 * commit many in one journal transaction, few enough to leave libuv's
 * threads (4 by default, shared with every other file operation) to others.
 */
const PUBLISH_CONCURRENCY = 4;
/** Files a listing stats at once. */
const LIST_STAT_BATCH = 64;
/** Mode bits of the files and directories a store or a cache creates. */
export interface CreateModes {
  file: number;
  dir: number;
}
const PRIVATE_MODES: CreateModes = { file: 0o600, dir: 0o700 };
const GROUP_MODES: CreateModes = { file: 0o640, dir: 0o750 };

/**
 * Checkpoints are the state itself, so what a store or cache creates is
 * owner-only, unless its root directory was made group-readable and
 * -searchable (`chmod g+rx`): then new files are group-readable too, which
 * shares the store with the group (restic's rule for its repository). A
 * root chunkpoint creates is owner-only, so sharing is always a decision.
 */
export async function isSharedRoot(root: string): Promise<boolean> {
  try {
    return ((await stat(root)).mode & 0o050) === 0o050;
  } catch {
    return false;
  }
}

export function createModesFor(shared: boolean): CreateModes {
  return shared ? GROUP_MODES : PRIVATE_MODES;
}
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const fdOpen = promisify(fsOpen);
const fdStat = promisify(fsFstat);
const fdClose = promisify(fsClose);
function fdRead(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fsRead(fd, buf, at, length, position, (error, n) => (error === null ? resolve(n) : reject(error))));
}
/** How long a directory found real is trusted without resolving it again. */
const REAL_DIR_TTL_MS = 1000;

/**
 * Decides whether a write is torn (fault injection: a crash mid-write). When
 * it returns an error, the store leaves half of the bytes in the temp file,
 * as a crash would, and throws it. The store owns the mechanics, so no
 * wrapper reaches into its files.
 */
export type TearHook = (operation: 'put' | 'write', key: string) => Error | undefined;

export class FsStore implements Store {
  readonly spec: FsStoreSpec;
  readonly location: string;
  private readonly root: string;
  /** Set by fault injection only. */
  tear: TearHook | undefined;
  /** Decided once per store object, at its first write. */
  private modes: Promise<CreateModes> | undefined;
  /** The job root with links resolved, once it exists: what every directory below it must resolve under. */
  private realRoot: string | undefined;
  /** Directories found to be real, and when: a commit reading thousands of pack trailers checks each directory about once a second, not per read. */
  private readonly realDirs = new Map<string, number>();

  constructor(spec: FsStoreSpec) {
    this.spec = spec;
    this.root = spec.root;
    this.location = spec.root;
  }

  /** The only key-to-path mapping of this store; refuses anything that could leave the root. */
  pathOf(key: string): string {
    const reason = unsafeNameReason(key);
    if (reason !== undefined) {
      throw new CorruptDataError('UNSAFE_PATH', `store key '${printable(key)}' is refused because ${reason}`);
    }
    const full = join(this.root, ...key.split('/'));
    if (!full.startsWith(this.root + sep)) {
      throw new CorruptDataError('UNSAFE_PATH', `store key '${printable(key)}' resolves outside the job root ${this.root}`);
    }
    return full;
  }

  /**
   * O_NOFOLLOW guards only a path's last component: a directory below the
   * job root replaced by a link (`shared/c0 -> /elsewhere`) would still lead
   * a read, a write or a delete outside. So the nearest existing directory
   * of `path` must resolve to itself under the job root.
   */
  private async refuseLinkedDirs(path: string, key: string): Promise<void> {
    for (let dir = dirname(path); dir !== this.root && dir.startsWith(this.root + sep); dir = dirname(dir)) {
      const checked = this.realDirs.get(dir);
      if (checked !== undefined && performance.now() - checked < REAL_DIR_TTL_MS) return;
      let real: string;
      try {
        real = await realpath(dir);
      } catch (error) {
        if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') continue;
        // A loop below a job root that resolves is a link planted in the store, refused like any link;
        // a job root that does not resolve itself is the store's own failure (a broken mount, say).
        if (errnoOf(error) === 'ELOOP' && (await this.resolvedRoot().then(() => true, () => false))) {
          this.realDirs.delete(dir);
          throw notRegular(this.location, key, `reached through a loop of symbolic links (at ${relative(this.root, dir)} or above it)`);
        }
        throw storeIoError('inspecting', `${this.location}/${relative(this.root, dir)}`, error);
      }
      this.realRoot ??= await this.resolvedRoot();
      if (real !== join(this.realRoot, relative(this.root, dir))) {
        this.realDirs.delete(dir);
        throw notRegular(this.location, key, `reached through a symbolic link (${relative(this.root, dir)} leads to ${real})`);
      }
      if (this.realDirs.size > 10_000) this.realDirs.clear();
      this.realDirs.set(dir, performance.now());
      return;
    }
  }

  /** The job root with links resolved; a failure is the store's. */
  private async resolvedRoot(): Promise<string> {
    try {
      return await realpath(this.root);
    } catch (error) {
      throw storeIoError('inspecting', this.location, error);
    }
  }

  /** A fresh temp file's path beside `key`, and its key. */
  tempFor(key: string): { path: string; key: string } {
    const name = tempName(key);
    const dirKey = key.slice(0, key.length - basename(key).length);
    return { path: join(dirname(this.pathOf(key)), name), key: `${dirKey}${name}` };
  }

  async put(key: string, parts: readonly Uint8Array[], options: PutOptions = {}): Promise<PutResult> {
    const final = this.pathOf(key);
    const dir = dirname(final);
    const tmp = this.tempFor(key).path;
    try {
      // Dropping a checkpoint whose chk-<n> is a file or a link: its tombstone takes that place (the link itself goes, never its target).
      if (parseStoreKey(key)?.kind === 'tombstone' && (await this.checkpointHolder(key)) !== undefined) await unlink(dir);
      await this.refuseLinkedDirs(final, key);
      const modes = await (this.modes ??= isSharedRoot(this.root).then(createModesFor));
      const fh = await createIn(dir, () => open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, modes.file), this.root, modes.dir);
      try {
        const torn = this.tear?.('put', key);
        if (torn !== undefined) {
          const bytes = Buffer.concat(parts);
          await writeAll(fh, [bytes.subarray(0, Math.floor(bytes.byteLength / 2))]);
          throw torn;
        }
        await writeAll(fh, parts);
        if (options.durable === true) await fh.datasync();
      } finally {
        await fh.close();
      }
      let result: PutResult;
      if (options.ifAbsent === true) {
        try {
          await link(tmp, final);
          result = 'created';
        } catch (error) {
          if (errnoOf(error) !== 'EEXIST') throw error;
          result = 'exists';
        }
        await unlink(tmp);
      } else {
        await rename(tmp, final);
        result = 'created';
      }
      if (options.durable === true && options.syncName !== false && result !== 'exists') await fsyncDir(dir);
      return result;
    } catch (error) {
      if (!isTorn(error)) await rm(tmp, { force: true }).catch(() => undefined);
      throw storeIoError('writing', `${this.location}/${key}`, error);
    }
  }

  async createWriter(key: string, options: WriterOptions = {}): Promise<ObjectWriter> {
    const dir = dirname(this.pathOf(key));
    const temp = this.tempFor(key);
    let appender: FileAppender;
    try {
      await this.refuseLinkedDirs(temp.path, key);
      const modes = await (this.modes ??= isSharedRoot(this.root).then(createModesFor));
      appender = await createIn(dir, () => FileAppender.create(temp.path, modes.file), this.root, modes.dir);
    } catch (error) {
      throw storeIoError('writing', `${this.location}/${key}`, error);
    }
    const location = this.location;
    const tear = this.tear;
    const durable = options.durable === true;
    let staged: StagedObject | undefined;
    // A finish that failed may have left a short temp file (a crash, a torn write): it can never be finished
    // by trying again, so a retry fails at once, permanently, instead of publishing what is left.
    let failed: unknown;
    return {
      key,
      get size() {
        return appender.size;
      },
      async write(parts) {
        try {
          await appender.write(parts);
        } catch (error) {
          throw storeIoError('writing', `${location}/${key}`, error);
        }
      },
      async finish() {
        if (staged !== undefined) return staged;
        if (failed !== undefined) {
          throw new StoreUnavailableError('WRITE_FAILED', `writing ${location}/${key} failed and cannot be finished by trying again; write the object again`, { cause: failed, transient: false, details: { where: `${location}/${key}` } });
        }
        try {
          const size = appender.size;
          await appender.finish(durable);
          const torn = tear?.('write', key);
          if (torn !== undefined) {
            await truncate(temp.path, Math.floor(size / 2));
            throw torn;
          }
          staged = durable ? { key, token: temp.key, size, synced: true } : { key, token: temp.key, size };
          return staged;
        } catch (error) {
          failed = error;
          if (!isTorn(error)) await rm(temp.path, { force: true }).catch(() => undefined);
          throw storeIoError('writing', `${location}/${key}`, error);
        }
      },
      async abort() {
        // A torn finish stands for a crash, after which nothing cleans up: its temp file stays for gc.
        if (isTorn(failed)) return;
        await appender.abort();
      },
    };
  }

  async publish(staged: readonly StagedObject[], options: PublishOptions = {}): Promise<PutResult[]> {
    const results = new Array<PutResult>(staged.length);
    await forEachBounded(staged.keys(), PUBLISH_CONCURRENCY, async (index) => {
      results[index] = await this.publishOne(staged[index] as StagedObject, options.durable === true);
    });
    if (options.durable === true && staged.length > 0) await this.syncNames(staged.map((s) => s.key));
    return results;
  }

  private async publishOne(staged: StagedObject, durable: boolean): Promise<PutResult> {
    const final = this.pathOf(staged.key);
    const tmpKey = staged.token;
    // A token is only ever a temp file beside its object; anything else did not come from a writer.
    if (dirname(tmpKey) !== dirname(staged.key) || !basename(tmpKey).startsWith(TEMP_PREFIX)) {
      throw new InvalidInputError('NOT_STAGED_HERE', `'${printable(tmpKey)}' is not a staged write of '${printable(staged.key)}' in ${this.location}; write and publish with the same store`);
    }
    const tmp = this.pathOf(tmpKey);
    try {
      await this.refuseLinkedDirs(final, staged.key);
      // A durable writer synced the file as it finished, in its own thread, overlapping other work.
      if (durable && staged.synced !== true) {
        let fh: FileHandle;
        try {
          fh = await open(tmp, READ_FLAGS);
        } catch (error) {
          if (errnoOf(error) === 'ENOENT') return await this.alreadyPublished(staged, error);
          throw error;
        }
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      let result: PutResult;
      try {
        await link(tmp, final);
        result = 'created';
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') return await this.alreadyPublished(staged, error);
        if (errnoOf(error) !== 'EEXIST') throw error;
        result = 'exists';
      }
      await unlink(tmp);
      return result;
    } catch (error) {
      if (error instanceof ConflictError) throw error;
      throw storeIoError('publishing', `${this.location}/${staged.key}`, error);
    }
  }

  /**
   * The staged file is gone: a retried publish whose first attempt got this
   * far, or gc removed it as an abandoned write. Only the first is fine; the
   * object is reported 'exists' because this call cannot tell who made it.
   */
  private async alreadyPublished(staged: StagedObject, cause: unknown): Promise<PutResult> {
    const info = await this.stat(staged.key);
    if (info !== undefined) return 'exists';
    throw new ConflictError(
      'STAGED_WRITE_LOST',
      `the staged write of ${this.location}/${staged.key} disappeared before it was published (was gc run while the writer's session was not live?); retry the snapshot`,
      { cause, details: { key: staged.key } },
    );
  }

  /**
   * A checkpoint's `_metadata` or `_removed` whose `chk-<n>` is not a
   * directory (a file, or a link, in its place): refused as not a file
   * chunkpoint wrote, since the listing counts that checkpoint (see `walk`).
   */
  private async notADirectory(key: string, error: unknown): Promise<Error | undefined> {
    if (!isCheckpointFile(key) || (errnoOf(error) !== 'ENOTDIR' && errnoOf(error) !== 'ENOENT')) return undefined;
    const holder = await this.checkpointHolder(key);
    if (holder === undefined) return undefined;
    return notRegular(this.location, key, `unreachable (${dirname(key)} is ${holder.isSymbolicLink() ? 'a symbolic link' : 'a file'} where a checkpoint directory belongs)`);
  }

  /** What stands at the `chk-<n>` of checkpoint file `key` when it is not a directory (never followed). */
  private async checkpointHolder(key: string): Promise<{ isSymbolicLink(): boolean } | undefined> {
    const st = await lstat(dirname(this.pathOf(key))).catch(() => undefined);
    return st === undefined || st.isDirectory() ? undefined : st;
  }

  /** What a failed open for reading means: absent, a link, or an I/O failure. */
  private openFailure(key: string, error: unknown): Error {
    if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return notFound(key, this.location);
    if (errnoOf(error) === 'ELOOP') return notRegular(this.location, key, 'a symbolic link');
    return storeIoError('reading', `${this.location}/${key}`, error);
  }

  /** Refuses what was opened when it is not a regular file (a FIFO, a directory, a device). */
  private refuseSpecial(key: string, st: { isFile(): boolean; isDirectory(): boolean }): void {
    if (!st.isFile()) throw notRegular(this.location, key, st.isDirectory() ? 'a directory' : 'not a regular file');
  }

  private async openRegular(key: string): Promise<{ fh: FileHandle; size: number }> {
    const path = this.pathOf(key);
    await this.refuseLinkedDirs(path, key);
    let fh: FileHandle;
    try {
      fh = await open(path, READ_FLAGS);
    } catch (error) {
      throw (await this.notADirectory(key, error)) ?? this.openFailure(key, error);
    }
    try {
      const st = await fh.stat();
      this.refuseSpecial(key, st);
      return { fh, size: st.size };
    } catch (error) {
      await fh.close();
      throw storeIoError('reading', `${this.location}/${key}`, error);
    }
  }

  /**
   * A whole read on a plain descriptor: small gets (pack trailers, metadata)
   * come by the tens of thousands in a large commit, and a FileHandle costs
   * twice the main thread's time of the same four calls on an fd.
   */
  async get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer> {
    const path = this.pathOf(key);
    await this.refuseLinkedDirs(path, key);
    let fd: number;
    try {
      fd = await fdOpen(path, READ_FLAGS);
    } catch (error) {
      throw (await this.notADirectory(key, error)) ?? this.openFailure(key, error);
    }
    try {
      const st = await fdStat(fd);
      this.refuseSpecial(key, st);
      const offset = range?.offset ?? 0;
      const length = range?.length ?? st.size;
      const buf = into?.(length) ?? Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = await fdRead(fd, buf, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return done === length ? buf : buf.subarray(0, done);
    } catch (error) {
      throw storeIoError('reading', `${this.location}/${key}`, error);
    } finally {
      await fdClose(fd).catch(() => undefined);
    }
  }

  async openReader(key: string, range?: ByteRange): Promise<ObjectReader> {
    const { fh, size } = await this.openRegular(key);
    let position = range?.offset ?? 0;
    const end = range === undefined ? size : Math.min(size, range.offset + range.length);
    const location = this.location;
    return {
      async read(into) {
        const want = Math.min(into.byteLength, end - position);
        if (want <= 0) return 0;
        try {
          const done = await readAt(fh, into.subarray(0, want), position);
          position += done;
          return done;
        } catch (error) {
          throw storeIoError('reading', `${location}/${key}`, error);
        }
      },
      async close() {
        await fh.close();
      },
    };
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      await this.refuseLinkedDirs(this.pathOf(key), key);
      const st = await lstat(this.pathOf(key));
      return st.isFile() ? { key, size: st.size } : undefined;
    } catch (error) {
      if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return undefined;
      throw storeIoError('inspecting', `${this.location}/${key}`, error);
    }
  }

  /**
   * Regular files only, with one exception: a checkpoint's `_metadata` or
   * `_removed` that is not a regular file (a FIFO, a directory, a link in its
   * place) is listed too, with size 0. Hiding it would make the job's
   * checkpoints silently shrink: `latest` would fall back to an older one and
   * the next snapshot would take its id again. Listed, its id stays taken,
   * and whatever reads it is refused with NOT_A_REGULAR_FILE, naming it. The
   * listing itself never opens anything, so a FIFO cannot block it.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Sizes come from an lstat per file: batched, since one at a time costs a
    // round trip to libuv's threads each (a commit lists tens of thousands of packs).
    let batch: string[] = [];
    const sizes = async (keys: readonly string[]): Promise<(ObjectInfo | undefined)[]> =>
      Promise.all(
        keys.map(async (key) => {
          try {
            const st = await lstat(this.pathOf(key));
            if (st.isFile()) return { key, size: st.size };
            return isCheckpointFile(key) ? { key, size: 0 } : undefined;
          } catch (error) {
            // A checkpoint whose chk-<n> is a file (or a dangling link) is listed too (see `walk`).
            if ((errnoOf(error) === 'ENOTDIR' || errnoOf(error) === 'ENOENT') && isCheckpointFile(key) && (await this.checkpointHolder(key)) !== undefined) return { key, size: 0 };
            if (errnoOf(error) !== 'ENOENT') throw storeIoError('listing', `${this.location}/${key}`, error);
            return undefined;
          }
        }),
      );
    for await (const { key } of this.walk(prefix, false)) {
      batch.push(key);
      if (batch.length < LIST_STAT_BATCH) continue;
      for (const info of await sizes(batch)) if (info !== undefined) yield info;
      batch = [];
    }
    for (const info of await sizes(batch)) if (info !== undefined) yield info;
  }

  async *listIncomplete(prefix: string): AsyncIterable<IncompleteWrite> {
    for await (const { key } of this.walk(prefix, true)) {
      const parsed = parseStoreKey(key);
      // Only temp names this store makes (`.tmp-<id>-<name>`) are ours to judge and remove.
      if (parsed?.kind === 'temp') yield { key, target: parsed.target, timeMs: parsed.timeMs };
    }
  }

  /**
   * Keys of the regular files (temp files or not) below `prefix`, and, among
   * the others, checkpoint files (see `list`); never follows a link.
   */
  private async *walk(prefix: string, temporary: boolean): AsyncIterable<{ key: string }> {
    // Walk only directories that can hold matching keys, so listing `chk-`
    // never descends into a large `shared/`.
    const stack: string[] = [''];
    while (stack.length > 0) {
      const rel = stack.pop() as string;
      let entries: Dirent[];
      try {
        entries = await readdir(rel === '' ? this.root : this.pathOf(rel), { withFileTypes: true });
      } catch (error) {
        if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') continue;
        throw storeIoError('listing', `${this.location}/${rel}`, error);
      }
      for (const entry of entries) {
        const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
        if (!temporary && !entry.isFile() && key.startsWith(prefix) && isCheckpointFile(key)) {
          yield { key };
        } else if (!temporary && rel === '' && !entry.isDirectory() && isCheckpointFile(`${key}/_metadata`) && `${key}/_metadata`.startsWith(prefix)) {
          // A file or a link where a checkpoint's directory belongs: its id stays taken, as for a
          // _metadata that is not a file; reading it is refused (`notADirectory`); dropping it puts
          // the tombstone in its place (`put`).
          yield { key: `${key}/_metadata` };
        } else if (entry.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) stack.push(key);
        } else if (entry.isFile() && entry.name.startsWith(TEMP_PREFIX) === temporary && key.startsWith(prefix)) {
          yield { key };
        }
      }
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    const parents = new Set<string>();
    for (const key of keys) {
      const path = this.pathOf(key);
      await this.refuseLinkedDirs(path, key);
      try {
        // unlink removes a link itself, never what it points to.
        await unlink(path);
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT') await this.removeEmptyDir(path, key, error);
      }
      parents.add(dirname(path));
    }
    // Directories left empty (a removed chk-<n>/, a task's drained directory) go too;
    // area roots and the job root stay.
    const kept = new Set<string>([...AREAS, 'sessions'].map((a) => join(this.root, a)));
    for (const dir of [...parents].sort((a, b) => b.length - a.length)) {
      let current = dir;
      while (current.startsWith(this.root + sep) && !kept.has(current)) {
        try {
          await rmdir(current);
        } catch {
          break;
        }
        current = dirname(current);
      }
    }
  }

  /**
   * An empty directory where an object belongs (a damaged checkpoint's
   * `_metadata`, listed so that it can be dropped) is deleted too: unlink
   * refused it (Linux: EISDIR, macOS: EPERM). Anything inside it stays, and
   * the delete fails naming it; any other failure is `unlinkError`'s.
   */
  private async removeEmptyDir(path: string, key: string, unlinkError: unknown): Promise<void> {
    const errno = errnoOf(unlinkError);
    let isDir = false;
    if (errno === 'EISDIR' || errno === 'EPERM') isDir = await lstat(path).then((st) => st.isDirectory(), () => false);
    if (!isDir) throw storeIoError('deleting', `${this.location}/${key}`, unlinkError);
    try {
      await rmdir(path);
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') throw storeIoError('deleting', `${this.location}/${key}`, error);
    }
  }

  async syncNames(keys: readonly string[]): Promise<void> {
    const dirs = new Set(keys.map((key) => dirname(this.pathOf(key))));
    // A directory created by this batch must be durable in its parent too.
    for (const dir of [...dirs]) if (dir !== this.root && dir.startsWith(this.root + sep)) dirs.add(dirname(dir));
    dirs.add(this.root);
    for (const dir of dirs) {
      try {
        await fsyncDir(dir);
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') continue; // emptied and removed meanwhile: nothing left to make durable
        throw storeIoError('syncing', dir, error);
      }
    }
  }

  async exists(): Promise<boolean> {
    try {
      return (await lstat(this.root)).isDirectory();
    } catch (error) {
      if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return false;
      throw storeIoError('inspecting', this.location, error);
    }
  }
}

/** A torn write's temp file is left behind on purpose: it is what a crash leaves, for gc to find. */
function isTorn(error: unknown): boolean {
  return error instanceof Error && 'details' in error && (error as { details: Record<string, unknown> }).details['torn'] === true;
}

/** A checkpoint's `_metadata` or `_removed`: what a job's checkpoint ids are read from. */
function isCheckpointFile(key: string): boolean {
  const kind = parseStoreKey(key)?.kind;
  return kind === 'metadata' || kind === 'tombstone';
}

function notRegular(location: string, key: string, what: string): CorruptDataError {
  const name = parseStoreKey(key);
  // A checkpoint's _metadata cannot simply be removed: its id would be taken again. Dropping it retires the id.
  const fix =
    name?.kind === 'metadata'
      ? `checkpoint ${checkpointDirName(name.checkpointId)} cannot be read: restore an older checkpoint, and drop this one with ${apiName('drop()')} so that its id is never used again`
      : 'remove it and restore an older checkpoint if this one needs it';
  return new CorruptDataError('NOT_A_REGULAR_FILE', `${location}/${key} is ${what}, not a file chunkpoint wrote; chunkpoint never follows links or reads special files in a store: ${fix}`, {
    details: { where: `${location}/${key}` },
  });
}

/**
 * Creates something in `dir`, making `dir` (owner-only) when it is missing;
 * retried because gc may remove an empty directory in between.
 */
async function createIn<T>(dir: string, create: () => Promise<T>, root: string, dirMode: number): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await create();
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT' || attempt >= 3) throw error;
      await mkdir(dir, { recursive: true, mode: dirMode });
      if (!dir.startsWith(root)) throw error;
    }
  }
}

async function writeAll(fh: FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  let pending = parts.filter((p) => p.byteLength > 0);
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending);
    let left = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const part of pending) {
      if (left >= part.byteLength) {
        left -= part.byteLength;
      } else {
        rest.push(left > 0 ? part.subarray(left) : part);
        left = 0;
      }
    }
    pending = rest;
  }
}

/** A rename or link is durable only once its directory entry is. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
