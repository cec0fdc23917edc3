/**
 * Restore coordinator (main thread). Given validated metadata, it stages
 * every file in a private directory inside the target, lets workers fetch
 * (local cache first, then the store), verify and write the chunks, and moves
 * the files into place only when every chunk of every file has verified. On
 * any failure the staging directory is removed and the target is left as it
 * was.
 *
 * Restore in place (`keepMatching`): files already in the target whose every
 * chunk hashes to the checkpoint's key are kept and not fetched; everything
 * else is restored, and entries the checkpoint does not have are removed.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, utimes } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { blobEntryPath, type CacheIndex } from './cache.js';
import { ChunkpointError, InvalidInputError, errnoOf, storeIoError } from './errors.js';
import { checkpointDirName, printable } from './handle.js';
import type { CheckpointMetadata, FileEntry, TaskState } from './metadata.js';
import { forEachBounded, type WorkerPool } from './pool.js';
import type { CacheUse } from './protocol.js';
import type { ProgressSink, RestoreProgress } from './events.js';
import { fsyncDir } from './store/fs.js';
import type { Store } from './store/store.js';

/** Prefix of the staging directory inside the target; a leftover one marks an interrupted restore. */
export const STAGING_PREFIX = '.chunkpoint-restore-';

export interface RestoreOptions {
  /**
   * Allow a non-empty target: its contents are replaced by the checkpoint's
   * (entries not in the checkpoint are deleted). Without it a non-empty target
   * is refused.
   */
  overwrite?: boolean;
  /**
   * Restore in place: keep target files whose content verifies against the
   * checkpoint, fetch only what is missing or different, and delete entries
   * the checkpoint does not have. Implies a non-empty target is allowed.
   */
  keepMatching?: boolean;
  /** Local cache: chunks are looked up there first and added after a fetch. */
  cache?: { dir: string; maxBytes?: number; ttlMs?: number };
  /** fsync restored files and directories before reporting success (default true). */
  durable?: boolean;
  signal?: AbortSignal;
  /** Which task's state to restore; may be left out when the checkpoint has one task. */
  task?: string;
}

export interface RestoreResult {
  checkpointId: number;
  checkpoint: string;
  /** The task whose state was restored. */
  task: string;
  files: number;
  /** Logical bytes of the restored state. */
  bytes: number;
  /** Chunks fetched and verified (from the cache or the store). */
  chunks: number;
  /** Stored bytes fetched from the store. */
  bytesFromRemote: number;
  /** Stored bytes read from the local cache (and verified). */
  bytesFromCache: number;
  /** Logical bytes of target files kept in place because they verified. */
  bytesKept: number;
  filesKept: number;
  /** Cache entries that failed verification, were deleted and refetched. */
  cacheEntriesDropped: number;
  /** The metadata came from the local cache because the store was unreachable. */
  metadataFromCache: boolean;
  durationMs: number;
  throughputMBps: number;
}

export interface RestoreSource {
  store: Store;
  metadata: CheckpointMetadata;
  metadataFromCache: boolean;
}

/** The one task a restore is about: named, or the only one. */
export function selectTask(metadata: CheckpointMetadata, task: string | undefined): TaskState {
  const names = metadata.tasks.map((t) => t.task).join(', ');
  if (task === undefined) {
    const [only, ...more] = metadata.tasks;
    if (only !== undefined && more.length === 0) return only;
    throw new InvalidInputError('TASK_REQUIRED', `${checkpointDirName(metadata.checkpointId)} holds ${metadata.tasks.length} tasks (${names}); pick the one to restore with --task <id>`);
  }
  const found = metadata.tasks.find((t) => t.task === task);
  if (found === undefined) throw new InvalidInputError('TASK_NOT_FOUND', `${checkpointDirName(metadata.checkpointId)} has no task '${printable(task)}' (tasks: ${names})`);
  return found;
}

export async function restore(
  pool: WorkerPool,
  source: RestoreSource,
  targetDir: string,
  options: RestoreOptions,
  cache: CacheIndex | undefined,
  progress?: ProgressSink<RestoreProgress & { checkpoint: string; task: string }>,
): Promise<RestoreResult> {
  const started = performance.now();
  const durable = options.durable ?? true;
  const { store, metadata } = source;
  const state = selectTask(metadata, options.task);
  const inPlace = options.keepMatching === true;
  options.signal?.throwIfAborted();

  const { target, createdRoot } = await prepareTarget(resolve(targetDir), options.overwrite === true || inPlace);
  const staging = join(target, `${STAGING_PREFIX}${randomBytes(6).toString('hex')}`);
  let bytesFromRemote = 0;
  let bytesFromCache = 0;
  let cacheEntriesDropped = 0;
  let chunks = 0;
  let kept = new Set<string>();
  let bytesDone = 0;
  let filesDone = 0;
  const bytesTotal = state.files.reduce((sum, f) => sum + f.size, 0);
  const figures = (): RestoreProgress & { checkpoint: string; task: string } => ({
    checkpoint: checkpointDirName(metadata.checkpointId),
    task: state.task,
    bytesDone,
    bytesTotal,
    bytesFromRemote,
    bytesFromCache,
    filesDone,
    filesTotal: state.files.length,
    chunks,
  });
  try {
    if (inPlace) kept = await matchingFiles(pool, target, state, options.signal);
    const toRestore = state.files.filter((f) => !kept.has(f.path));
    await mkdir(staging, { mode: 0o700 });
    await stageLayout(staging, toRestore);
    const remaining = new Map(toRestore.map((f) => [f.path, f.chunks.length]));
    bytesDone = state.files.filter((f) => kept.has(f.path)).reduce((sum, f) => sum + f.size, 0);
    filesDone = state.files.length - toRestore.length + toRestore.filter((f) => f.chunks.length === 0).length;
    progress?.update(figures, true);

    function* tasks(): Generator<{ file: FileEntry; index: number; fileOffset: number }> {
      for (const file of toRestore) {
        let fileOffset = 0;
        for (const [index, chunk] of file.chunks.entries()) {
          yield { file, index, fileOffset };
          fileOffset += chunk.rawLength;
        }
      }
    }
    await forEachBounded(tasks(), pool.queueDepth, async (t) => {
      options.signal?.throwIfAborted();
      const chunk = t.file.chunks[t.index];
      if (chunk === undefined) throw new Error(`internal: no chunk ${t.index} in ${t.file.path}`);
      let use: CacheUse | undefined;
      let reserved = 0;
      const entry = cache === undefined ? undefined : blobEntryPath(cache.spec, chunk.key, chunk.rawLength);
      if (cache !== undefined && entry !== undefined) {
        // Room is reserved before the worker may insert, so the cap holds after every insert.
        const known = cache.has(entry);
        if (!known && (await cache.reserve(chunk.handle.length))) reserved = chunk.handle.length;
        use = { spec: cache.spec, insert: known || reserved > 0 };
      }
      const result = await pool.run(
        {
          op: 'restoreChunk',
          store: store.spec,
          handle: chunk.handle,
          key: chunk.key,
          rawLength: chunk.rawLength,
          target: join(staging, ...t.file.path.split('/')),
          fileOffset: t.fileOffset,
          relPath: t.file.path,
          chunkIndex: t.index,
          ...(use === undefined ? {} : { cache: use }),
        },
        options.signal,
      ).finally(() => {
        if (reserved > 0) cache?.release(reserved);
      });
      if (cache !== undefined && entry !== undefined) {
        if (result.source === 'cache') cache.record(entry, result.bytesFromCache);
        else if (result.cacheInserted > 0) cache.record(entry, result.cacheInserted);
        else if (result.cacheDropped) cache.forget(entry);
      }
      bytesFromRemote += result.bytesFetched;
      bytesFromCache += result.bytesFromCache;
      if (result.cacheDropped) cacheEntriesDropped++;
      chunks++;
      bytesDone += chunk.rawLength;
      const left = (remaining.get(t.file.path) ?? 1) - 1;
      remaining.set(t.file.path, left);
      if (left === 0) filesDone++;
      progress?.update(figures);
    });
    options.signal?.throwIfAborted();

    await finishFiles(staging, toRestore, durable);
    await moveIntoPlace(staging, target, state, kept, options.overwrite === true || inPlace, durable);
    progress?.update(figures, true);
  } catch (error) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    if (createdRoot !== undefined) await removeCreatedDirs(target, createdRoot);
    if (error instanceof ChunkpointError) throw error;
    throw storeIoError('restoring into', target, error);
  }

  const durationMs = performance.now() - started;
  const bytes = bytesTotal;
  const keptFiles = state.files.filter((f) => kept.has(f.path));
  return {
    checkpointId: metadata.checkpointId,
    checkpoint: checkpointDirName(metadata.checkpointId),
    task: state.task,
    files: state.files.length,
    bytes,
    chunks,
    bytesFromRemote,
    bytesFromCache,
    bytesKept: keptFiles.reduce((sum, f) => sum + f.size, 0),
    filesKept: keptFiles.length,
    cacheEntriesDropped,
    metadataFromCache: source.metadataFromCache,
    durationMs: Math.round(durationMs),
    throughputMBps: Math.round((bytes / 1e6 / (durationMs / 1000)) * 100) / 100,
  };
}

async function prepareTarget(target: string, allowNonEmpty: boolean): Promise<{ target: string; createdRoot: string | undefined }> {
  let st;
  try {
    st = await lstat(target);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw storeIoError('inspecting restore target', target, error);
    let createdRoot: string | undefined;
    try {
      createdRoot = await mkdir(target, { recursive: true });
    } catch (mkdirError) {
      throw storeIoError('creating restore target', target, mkdirError);
    }
    return { target: await realpath(target), createdRoot: createdRoot === undefined ? undefined : await realpath(createdRoot) };
  }
  // A target given as a symlink to a directory is the user's choice; resolve it once, here.
  const real = st.isSymbolicLink() ? await realpath(target) : target;
  if (!(await lstat(real)).isDirectory()) {
    throw new InvalidInputError('TARGET_NOT_DIRECTORY', `restore target ${target} exists and is not a directory; pass a new or empty directory`);
  }
  const entries = await readdir(real);
  if (entries.length > 0 && !allowNonEmpty) {
    throw new InvalidInputError(
      'TARGET_NOT_EMPTY',
      `restore target ${target} is not empty (${entries.length} entries); pass an empty directory, --keep-matching to restore in place, or --overwrite to replace its contents`,
    );
  }
  return { target: real, createdRoot: undefined };
}

/** Removes the directories this restore created, deepest first, and only while they are empty. */
async function removeCreatedDirs(target: string, createdRoot: string): Promise<void> {
  let dir = target;
  for (;;) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
    if (dir === createdRoot || !dir.startsWith(createdRoot + sep)) return;
    dir = dirname(dir);
  }
}

/** Every parent of `relPath` under `root` must be a real directory, not a link out of it. */
async function isPlainFile(root: string, relPath: string): Promise<{ size: number } | undefined> {
  const parts = relPath.split('/');
  let path = root;
  for (const [i, part] of parts.entries()) {
    path = join(path, part);
    let st;
    try {
      st = await lstat(path);
    } catch {
      return undefined;
    }
    if (i < parts.length - 1 ? !st.isDirectory() : !st.isFile()) return undefined;
    if (i === parts.length - 1) return { size: st.size };
  }
  return undefined;
}

/** Target files whose size matches and every chunk hashes to the checkpoint's key. */
async function matchingFiles(pool: WorkerPool, target: string, state: TaskState, signal: AbortSignal | undefined): Promise<Set<string>> {
  const candidates: FileEntry[] = [];
  for (const file of state.files) {
    const st = await isPlainFile(target, file.path);
    if (st !== undefined && st.size === file.size) candidates.push(file);
  }
  const mismatched = new Set<string>();
  function* tasks(): Generator<{ file: FileEntry; offset: number; length: number; key: string }> {
    for (const file of candidates) {
      let offset = 0;
      for (const chunk of file.chunks) {
        yield { file, offset, length: chunk.rawLength, key: chunk.key };
        offset += chunk.rawLength;
      }
    }
  }
  await forEachBounded(tasks(), pool.queueDepth, async (t) => {
    if (mismatched.has(t.file.path)) return;
    signal?.throwIfAborted();
    const result = await pool.run({ op: 'verifyRange', file: join(target, ...t.file.path.split('/')), relPath: t.file.path, offset: t.offset, length: t.length, key: t.key }, signal);
    if (!result.match) mismatched.add(t.file.path);
  });
  return new Set(candidates.filter((f) => !mismatched.has(f.path)).map((f) => f.path));
}

/** Creates every needed directory and an empty, pre-sized file for every file, refusing to follow anything planted there. */
async function stageLayout(staging: string, files: readonly FileEntry[]): Promise<void> {
  const dirs = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/');
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
  }
  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
    await mkdir(join(staging, ...dir.split('/')), { mode: 0o700 });
  }
  for (const file of files) {
    const fh = await open(join(staging, ...file.path.split('/')), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      if (file.size > 0) await fh.truncate(file.size);
    } finally {
      await fh.close();
    }
  }
}

async function finishFiles(staging: string, files: readonly FileEntry[], durable: boolean): Promise<void> {
  for (const file of files) {
    const path = join(staging, ...file.path.split('/'));
    if (durable) {
      const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    await applyAttributes(path, file);
  }
}

async function applyAttributes(path: string, file: FileEntry): Promise<void> {
  await chmod(path, file.mode);
  const mtime = new Date(file.mtimeMs);
  await utimes(path, mtime, mtime);
}

/**
 * Makes the target hold exactly the checkpoint: when `clean`, first removes
 * what the checkpoint does not have (links are removed, never followed), then
 * creates directories and renames staged files into place.
 */
async function moveIntoPlace(staging: string, target: string, state: TaskState, kept: ReadonlySet<string>, clean: boolean, durable: boolean): Promise<void> {
  const files = new Set(state.files.map((f) => f.path));
  const dirs = new Set(state.directories);
  for (const file of state.files) {
    const parts = file.path.split('/');
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
  }
  if (clean) {
    const stagingRel = relative(target, staging);
    const sweep = async (rel: string): Promise<void> => {
      for (const entry of await readdir(rel === '' ? target : join(target, ...rel.split('/')), { withFileTypes: true })) {
        const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
        if (relPath === stagingRel) continue;
        const abs = join(target, ...relPath.split('/'));
        if (entry.isDirectory() && dirs.has(relPath)) await sweep(relPath);
        else if (entry.isFile() && kept.has(relPath)) continue;
        else await rm(abs, { recursive: true, force: true });
      }
    };
    await sweep('');
  }
  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
    try {
      await mkdir(join(target, ...dir.split('/')), { mode: 0o755 });
    } catch (error) {
      if (errnoOf(error) !== 'EEXIST') throw error;
    }
  }
  for (const path of files) {
    if (kept.has(path)) continue;
    await rename(join(staging, ...path.split('/')), join(target, ...path.split('/')));
  }
  for (const file of state.files) if (kept.has(file.path)) await applyAttributes(join(target, ...file.path.split('/')), file);
  await rm(staging, { recursive: true, force: true });
  if (durable) {
    for (const dir of ['', ...dirs]) await fsyncDir(dir === '' ? target : join(target, ...dir.split('/')));
  }
}
