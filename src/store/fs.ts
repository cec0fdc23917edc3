/**
 * The local-directory store: a job root is a directory, keys are relative
 * file paths below it.
 *
 * Writes go to a hidden temp file in the destination directory and become
 * visible in one atomic step: `link()` for put-if-absent (it fails with EEXIST
 * instead of replacing, which `rename()` cannot promise), `rename()` otherwise.
 * So a reader, or a process killed mid-write, never sees a partial object.
 */
import { randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rm, rmdir, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { ConflictError, CorruptDataError, InvalidInputError, errnoOf, storeIoError } from '../errors.js';
import { printable, unsafeNameReason } from '../handle.js';
import { notFound, type ByteRange, type FsStoreSpec, type ObjectInfo, type PublishOptions, type PutOptions, type PutResult, type StagedObject, type Store } from './store.js';
import { readAt } from '../file-range.js';
import { createWithContent } from './direct-io.js';

/** Prefix of in-progress writes; never a valid object name, and swept by gc. */
export const TEMP_PREFIX = '.tmp-';

/**
 * fsyncs in flight while publishing a batch: enough for the filesystem to
 * commit many in one journal transaction, few enough to leave libuv's
 * threads (4 by default, shared with every other file operation) to others.
 */
const PUBLISH_CONCURRENCY = 4;

export class FsStore implements Store {
  readonly spec: FsStoreSpec;
  readonly location: string;
  private readonly root: string;

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

  async put(key: string, parts: readonly Uint8Array[], options: PutOptions = {}): Promise<PutResult> {
    const final = this.pathOf(key);
    const dir = dirname(final);
    const tmp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    try {
      const fh = await createTemp(tmp, dir);
      try {
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
      await rm(tmp, { force: true }).catch(() => undefined);
      throw storeIoError('writing', `${this.location}/${key}`, error);
    }
  }

  async stage(key: string, parts: readonly Uint8Array[]): Promise<StagedObject> {
    const final = this.pathOf(key);
    const dir = dirname(final);
    const name = `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`;
    const tmp = join(dir, name);
    try {
      await createStaged(tmp, dir, parts);
    } catch (error) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw storeIoError('writing', `${this.location}/${key}`, error);
    }
    return { key, token: `${key.slice(0, key.length - basename(key).length)}${name}`, size: parts.reduce((sum, p) => sum + p.byteLength, 0) };
  }

  async publish(staged: readonly StagedObject[], options: PublishOptions = {}): Promise<PutResult[]> {
    const results = new Array<PutResult>(staged.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(PUBLISH_CONCURRENCY, staged.length) }, async () => {
        while (next < staged.length) {
          const index = next++;
          results[index] = await this.publishOne(staged[index] as StagedObject, options.durable === true);
        }
      }),
    );
    if (options.durable === true && staged.length > 0) await this.syncNames(staged.map((s) => s.key));
    return results;
  }

  private async publishOne(staged: StagedObject, durable: boolean): Promise<PutResult> {
    const final = this.pathOf(staged.key);
    const tmpKey = staged.token;
    // A token is only ever a temp file beside its object; anything else did not come from `stage`.
    if (dirname(tmpKey) !== dirname(staged.key) || !basename(tmpKey).startsWith(TEMP_PREFIX)) {
      throw new InvalidInputError('NOT_STAGED_HERE', `'${printable(tmpKey)}' is not a staged write of '${printable(staged.key)}' in ${this.location}; stage and publish with the same store`);
    }
    const tmp = this.pathOf(tmpKey);
    try {
      if (durable) {
        let fh: FileHandle;
        try {
          fh = await open(tmp, constants.O_RDONLY | constants.O_NOFOLLOW);
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
      `the staged write of ${this.location}/${staged.key} disappeared before it was published (was gc run with a grace period shorter than the snapshot?); retry the snapshot`,
      { cause, details: { key: staged.key } },
    );
  }

  async get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer> {
    const path = this.pathOf(key);
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') throw notFound(key, this.location);
      throw storeIoError('reading', `${this.location}/${key}`, error);
    }
    try {
      const offset = range?.offset ?? 0;
      const length = range?.length ?? (await fh.stat()).size;
      const buf = into?.(length) ?? Buffer.allocUnsafe(length);
      const done = await readAt(fh, buf, offset);
      return done === length ? buf : buf.subarray(0, done);
    } catch (error) {
      throw storeIoError('reading', `${this.location}/${key}`, error);
    } finally {
      await fh.close();
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await lstat(this.pathOf(key));
      return st.isFile() ? { key, size: st.size, mtimeMs: st.mtimeMs } : undefined;
    } catch (error) {
      if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return undefined;
      throw storeIoError('inspecting', `${this.location}/${key}`, error);
    }
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.walk(prefix, false);
  }

  listIncomplete(prefix: string): AsyncIterable<ObjectInfo> {
    return this.walk(prefix, true);
  }

  private async *walk(prefix: string, temporary: boolean): AsyncIterable<ObjectInfo> {
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
        if (entry.name.startsWith(TEMP_PREFIX) !== temporary && !entry.isDirectory()) continue;
        const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
        if (entry.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) stack.push(key);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          try {
            const st = await stat(this.pathOf(key));
            yield { key, size: st.size, mtimeMs: st.mtimeMs };
          } catch (error) {
            if (errnoOf(error) !== 'ENOENT') throw storeIoError('listing', `${this.location}/${key}`, error);
          }
        }
      }
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    const parents = new Set<string>();
    for (const key of keys) {
      const path = this.pathOf(key);
      try {
        await unlink(path);
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT') throw storeIoError('deleting', `${this.location}/${key}`, error);
      }
      parents.add(dirname(path));
    }
    // Directories left empty (a removed chk-<n>/, a drained fan-out directory) go too;
    // area roots and the job root stay.
    for (const dir of [...parents].sort((a, b) => b.length - a.length)) {
      let current = dir;
      while (current.startsWith(this.root + sep) && !['shared', 'taskowned'].includes(current.slice(this.root.length + 1))) {
        try {
          await rmdir(current);
        } catch {
          break;
        }
        current = dirname(current);
      }
    }
  }

  async touch(keys: readonly string[]): Promise<void> {
    const now = new Date();
    for (const key of keys) {
      try {
        await utimes(this.pathOf(key), now, now);
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT') throw storeIoError('touching', `${this.location}/${key}`, error);
      }
    }
  }

  async syncNames(keys: readonly string[]): Promise<void> {
    const dirs = new Set(keys.map((key) => dirname(this.pathOf(key))));
    // A fan-out directory created by this batch must be durable in its parent too.
    for (const dir of [...dirs]) if (dir !== this.root) dirs.add(dirname(dir));
    dirs.add(this.root);
    for (const dir of dirs) {
      try {
        await fsyncDir(dir);
      } catch (error) {
        throw storeIoError('syncing', dir, error);
      }
    }
  }

  async exists(): Promise<boolean> {
    try {
      return (await stat(this.root)).isDirectory();
    } catch (error) {
      if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return false;
      throw storeIoError('inspecting', this.location, error);
    }
  }
}

/** Creates the temp file, making its directory; retried because gc may remove an empty directory in between. */
async function createTemp(tmp: string, dir: string): Promise<FileHandle> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT' || attempt >= 3) throw error;
      await mkdir(dir, { recursive: true });
    }
  }
}

async function createStaged(tmp: string, dir: string, parts: readonly Uint8Array[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      // Direct I/O where possible: nobody reads a new blob back soon, so it has no business in the page cache.
      await createWithContent(tmp, parts, 0o644);
      return;
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT' || attempt >= 3) throw error;
      await mkdir(dir, { recursive: true });
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
