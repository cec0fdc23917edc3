/**
 * Snapshot coordinator (main thread). Lists the state directory, reuses
 * immutable files the last committed checkpoint already holds, splits the
 * rest into chunk tasks for the worker pool, and commits `_metadata` last.
 * It never touches chunk bytes itself.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BLOB_HEADER_SIZE, MAX_CHUNK_SIZE } from './blob.js';
import { blobEntryPath, type CacheIndex, type CacheOptions } from './cache.js';
import { committedCheckpointIds, commitCheckpoint, loadCheckpoint } from './checkpoint.js';
import type { Hasher } from './content-key.js';
import { ConflictError, InvalidInputError, errnoOf, storeIoError } from './errors.js';
import { DEFAULT_TASK, checkTaskId, checkpointDirName, handleKey, printable, unsafeNameReason } from './handle.js';
import {
  KEY_ALGORITHM,
  METADATA_VERSION,
  TASK_SNAPSHOT_FORMAT,
  allFiles,
  validateTaskSnapshot,
  type CheckpointMetadata,
  type ChunkRef,
  type FileEntry,
  type TaskFigures,
  type TaskSnapshot,
  type TaskState,
} from './metadata.js';
import { DEFAULT_GRACE_MS, DEFAULT_RETAIN, collectGarbage } from './gc.js';
import { forEachBounded, type WorkerPool } from './pool.js';
import type { ProgressSink, SnapshotProgress } from './events.js';
import type { StagedObject, Store } from './store/store.js';

export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const DEFAULT_IMMUTABLE = ['*.sst', '*.blob'];

export interface SnapshotOptions {
  /** Chunk size in bytes (default 1 MiB). */
  chunkSize?: number;
  /**
   * Which files are never rewritten in place once they exist (basename globs
   * with `*` and `?`, or a predicate on the relative path). Such a file with the
   * same name, size and mtime as in the last checkpoint is reused without being read.
   * Default: `*.sst`, `*.blob`.
   */
  immutable?: readonly string[] | ((relPath: string) => boolean);
  /** fsync blobs and metadata before committing (default true). */
  durable?: boolean;
  /** After the commit keep the newest N checkpoints and delete what only older owned ones referenced (default 3). */
  retain?: number;
  /** Blobs younger than this are never deleted by retention (default 1 hour); see gc. */
  graceMs?: number;
  /** Let retention remove checkpoints written under other job ids (default: never). */
  claim?: boolean;
  /** Task-local copy: every blob of this checkpoint also goes into this local cache, with its metadata. */
  cache?: CacheOptions;
  signal?: AbortSignal;
  /** Task id inside the checkpoint (default `main`). */
  task?: string;
}

export interface SnapshotResult {
  checkpointId: number;
  /** Directory name of the checkpoint, e.g. `chk-3`. */
  checkpoint: string;
  /** Tasks in the checkpoint (1 for `snapshot`). */
  tasks: number;
  files: number;
  /** Logical size of the state directory. */
  bytes: number;
  /** State bytes read by workers (only new or changed files). */
  bytesRead: number;
  /** Bytes written to the store: new blobs plus `_metadata`. */
  bytesWritten: number;
  filesReused: number;
  bytesReused: number;
  chunksNew: number;
  chunksDeduped: number;
  /** Bytes added to the local cache (with `cache`). */
  bytesCached: number;
  /** Checkpoints removed by retention after this commit, and what that freed. */
  checkpointsRemoved: string[];
  blobsRemoved: number;
  bytesFreed: number;
  /** Raw bytes / stored bytes of the blobs this snapshot wrote. */
  compressionRatio: number;
  durationMs: number;
  /** Logical state MB (10^6) per second. */
  throughputMBps: number;
}

export type TaskSnapshotOptions = Pick<SnapshotOptions, 'chunkSize' | 'immutable' | 'durable' | 'cache' | 'signal'>;

export type CommitOptions = Pick<SnapshotOptions, 'durable' | 'retain' | 'graceMs' | 'claim' | 'cache'>;

interface StateFile {
  relPath: string;
  absPath: string;
  size: number;
  mode: number;
  mtimeMs: number;
  immutable: boolean;
}

/**
 * One task's part of a checkpoint: stores every chunk the job's last
 * committed checkpoint does not already hold, makes their names durable, and
 * returns a task snapshot (plain data) for `commitTasks`. Commits nothing.
 */
export async function snapshotTask(
  pool: WorkerPool,
  hasher: Hasher,
  store: Store,
  jobId: string,
  task: string,
  stateDir: string,
  options: TaskSnapshotOptions = {},
  cache?: CacheIndex,
  progress?: ProgressSink<SnapshotProgress>,
): Promise<TaskSnapshot> {
  const started = performance.now();
  checkTaskId(task);
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 4096 || chunkSize > MAX_CHUNK_SIZE) {
    throw new InvalidInputError('INVALID_CHUNK_SIZE', `chunk size ${chunkSize} is out of range; use 4 KiB..${MAX_CHUNK_SIZE / (1024 * 1024)} MiB`);
  }
  const durable = options.durable ?? true;
  const isImmutable = immutableMatcher(options.immutable ?? DEFAULT_IMMUTABLE);
  options.signal?.throwIfAborted();

  const root = resolve(stateDir);
  const { files, directories } = await listStateDir(root, isImmutable);
  if (files.length === 0) {
    throw new InvalidInputError('STATE_DIR_EMPTY', `state directory ${root} holds no files; there is nothing to snapshot (check the path)`);
  }

  const ids = await committedCheckpointIds(store);
  const base = ids.at(-1) ?? null;
  const previous = base === null ? undefined : (await loadCheckpoint(store, base, hasher)).tasks.find((t) => t.task === task);

  // Reuse only what a committed checkpoint references (FLINK-25395: reusing
  // unconfirmed uploads lost files), by name, size and mtime for immutable files.
  const previousFiles = new Map(previous?.files.map((f) => [f.path, f]) ?? []);
  const createdBy = new Map<string, number>();
  for (const f of previous?.files ?? []) for (const c of f.chunks) createdBy.set(handleKey(c.handle), c.createdBy);

  const entries: FileEntry[] = [];
  const pending: { file: StateFile; entry: FileEntry }[] = [];
  const reusedBlobs = new Set<string>();
  let filesReused = 0;
  let bytesReused = 0;
  for (const file of files) {
    const old = previousFiles.get(file.relPath);
    const entry: FileEntry = { path: file.relPath, size: file.size, mode: file.mode, mtimeMs: file.mtimeMs, immutable: file.immutable, chunks: [] };
    // Name, size and mtime, as rsync does: two databases snapshotted into one job can both have
    // a 000008.sst of the same size (RocksDB numbers files per database), never the same mtime too.
    if (file.immutable && old !== undefined && old.immutable && old.size === file.size && old.mtimeMs === file.mtimeMs) {
      entry.chunks = old.chunks;
      for (const c of old.chunks) reusedBlobs.add(handleKey(c.handle));
      filesReused++;
      bytesReused += file.size;
    } else {
      pending.push({ file, entry });
    }
    entries.push(entry);
  }
  // Reused blobs become young again, so a concurrent gc's grace period protects them until the commit.
  await store.touch([...reusedBlobs]);

  let bytesRead = 0;
  let bytesWritten = 0;
  let chunksNew = 0;
  let chunksDeduped = 0;
  let rawBytesNew = 0;
  let bytesCached = 0;
  const staged: { object: StagedObject; chunk: ChunkRef }[] = [];
  const bytesTotal = files.reduce((sum, f) => sum + f.size, 0);
  // Chunks still to store per file: a file is done when its count reaches zero.
  const remaining = new Map(pending.map(({ file }) => [file.relPath, Math.ceil(file.size / chunkSize)]));
  let filesDone = filesReused + pending.filter(({ file }) => file.size === 0).length;
  const figures = (): SnapshotProgress => ({
    bytesDone: bytesReused + bytesRead,
    bytesTotal,
    bytesRead,
    bytesWritten,
    filesDone,
    filesTotal: files.length,
    filesReused,
    chunksNew,
    chunksDeduped,
  });
  progress?.update(figures, true);
  function* tasks(): Generator<{ file: StateFile; entry: FileEntry; index: number; offset: number; length: number }> {
    for (const { file, entry } of pending) {
      const count = Math.ceil(file.size / chunkSize);
      entry.chunks = new Array<ChunkRef>(count);
      for (let index = 0; index < count; index++) {
        const offset = index * chunkSize;
        yield { file, entry, index, offset, length: Math.min(chunkSize, file.size - offset) };
      }
    }
  }
  try {
    await forEachBounded(tasks(), pool.queueDepth, async (t) => {
      options.signal?.throwIfAborted();
      // The blob's key is known only after hashing: reserve its largest possible size.
      const reserve = cache === undefined ? 0 : BLOB_HEADER_SIZE + t.length + Math.ceil(t.length / 255) + 16;
      const insert = cache !== undefined && (await cache.reserve(reserve));
      let result;
      try {
        result = await pool.run(
          {
            op: 'writeChunk',
            store: store.spec,
            file: t.file.absPath,
            relPath: t.file.relPath,
            chunkIndex: t.index,
            offset: t.offset,
            length: t.length,
            expect: { size: t.file.size, mtimeMs: t.file.mtimeMs },
            // Mutable files (MANIFEST, OPTIONS, CURRENT…) are private to the task: nothing else shares them.
            ...(t.file.immutable ? {} : { owner: task }),
            ...(cache === undefined ? {} : { cache: { spec: cache.spec, insert } }),
          },
          options.signal,
        );
      } finally {
        if (insert) cache?.release(reserve);
      }
      if (cache !== undefined && result.cacheInserted > 0) cache.record(blobEntryPath(cache.spec, result.key, result.rawLength), result.cacheInserted);
      bytesCached += result.cacheInserted;
      bytesRead += t.length;
      if (result.created) {
        chunksNew++;
        bytesWritten += result.bytesWritten;
        rawBytesNew += result.rawLength;
      } else {
        chunksDeduped++;
      }
      const left = (remaining.get(t.file.relPath) ?? 1) - 1;
      remaining.set(t.file.relPath, left);
      if (left === 0) filesDone++;
      progress?.update(figures);
      // 0: first stored for the checkpoint this task snapshot becomes part of.
      const chunk: ChunkRef = { key: result.key, rawLength: result.rawLength, handle: result.handle, createdBy: result.created ? 0 : (createdBy.get(handleKey(result.handle)) ?? 0) };
      t.entry.chunks[t.index] = chunk;
      if (result.staged !== undefined) staged.push({ object: result.staged, chunk });
    });
    options.signal?.throwIfAborted();
    // One batch: every blob's bytes and name become durable before any metadata can reference them.
    const published = await store.publish(
      staged.map((s) => s.object),
      { durable },
    );
    for (const [i, outcome] of published.entries()) {
      if (outcome !== 'exists') continue;
      // Another writer (or another chunk of this snapshot) stored the same content first: count it as deduplicated, and describe what is really stored.
      const { object, chunk } = staged[i] as { object: StagedObject; chunk: ChunkRef };
      const info = await store.stat(object.key);
      if (info !== undefined) chunk.handle = { ...chunk.handle, length: info.size };
      chunksNew--;
      chunksDeduped++;
      bytesWritten -= object.size;
      rawBytesNew -= chunk.rawLength;
    }
  } catch (error) {
    // Leftovers would wait for gc's grace period; nothing can reference them, so remove them now.
    const leftovers = staged.map((s) => s.object.token).filter((token) => token !== '');
    if (leftovers.length > 0) await store.delete(leftovers).catch(() => undefined);
    throw error;
  }
  progress?.update(figures, true);

  return {
    format: TASK_SNAPSHOT_FORMAT,
    jobId,
    task,
    base,
    createdAt: new Date().toISOString(),
    keyAlgorithm: KEY_ALGORITHM,
    chunkSize,
    directories,
    files: entries,
    figures: {
      files: files.length,
      bytes: bytesTotal,
      bytesRead,
      bytesWritten,
      filesReused,
      bytesReused,
      chunksNew,
      chunksDeduped,
      bytesCached,
      rawBytesNew,
      durationMs: Math.round(performance.now() - started),
    },
  };
}

/**
 * The coordinator's step: commits the job's next checkpoint from the task
 * snapshots of all its tasks, then applies retention. Task snapshots are
 * validated like stored metadata, and every blob the latest checkpoint does
 * not already keep alive is checked to exist: a task snapshot older than the
 * gc grace period may have lost blobs to gc and is refused.
 */
export async function commitTasks(store: Store, hasher: Hasher, jobId: string, taskSnapshots: readonly unknown[], options: CommitOptions = {}, cache?: CacheIndex, trusted = false): Promise<SnapshotResult> {
  const started = performance.now();
  const durable = options.durable ?? true;
  const retain = options.retain ?? DEFAULT_RETAIN;
  if (!Number.isSafeInteger(retain) || retain < 1) throw new InvalidInputError('INVALID_RETAIN', `retain ${retain} must be a whole number of checkpoints, at least 1`);
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  if (taskSnapshots.length === 0) throw new InvalidInputError('NO_TASK_SNAPSHOTS', 'a checkpoint needs at least one task snapshot; pass what snapshotTask returned for each task');
  const parts = taskSnapshots.map((t, i) => (trusted ? (t as TaskSnapshot) : validateTaskSnapshot(t, `task snapshot #${i + 1}`)));
  const seen = new Set<string>();
  for (const t of parts) {
    if (t.jobId !== jobId) {
      throw new InvalidInputError('TASK_SNAPSHOT_WRONG_JOB', `the task snapshot of task '${t.task}' belongs to job '${t.jobId}', not '${jobId}'; commit it with its own job`);
    }
    if (seen.has(t.task)) throw new InvalidInputError('DUPLICATE_TASK', `task '${t.task}' appears twice in one commit; pass exactly one task snapshot per task`);
    seen.add(t.task);
    // With no grace period the caller opted out of this protection; the existence check below still applies.
    const age = Date.now() - Date.parse(t.createdAt);
    if (graceMs > 0 && age > graceMs) {
      throw new ConflictError('TASK_SNAPSHOT_EXPIRED', `the task snapshot of task '${t.task}' is ${Math.round(age / 1000)} s old, older than the gc grace period (${Math.round(graceMs / 1000)} s), so gc may have removed its blobs; take a new one`);
    }
  }

  // The id follows the checkpoint the tasks built on, fixed when they started, so a writer that
  // lost a race (or a zombie coordinator) gets a conflict rather than silently committing later.
  const bases = new Set(parts.map((t) => t.base));
  if (bases.size > 1) {
    throw new ConflictError('TASK_SNAPSHOTS_MIXED', `the task snapshots build on different checkpoints (${[...bases].map((b) => (b === null ? 'none' : `chk-${b}`)).join(', ')}); take all of them after the same commit`);
  }
  const base = parts[0]?.base ?? null;
  const checkpointId = (base ?? 0) + 1;
  const latest = (await committedCheckpointIds(store)).at(-1);
  if ((latest ?? 0) > (base ?? 0)) {
    throw new ConflictError(
      'CHECKPOINT_EXISTS',
      `checkpoint ${checkpointDirName(checkpointId)} cannot be committed: another writer committed ${checkpointDirName(latest ?? 0)} to ${store.location} while this snapshot ran (it built on ${base === null ? 'no checkpoint' : checkpointDirName(base)}); nothing was overwritten — retry the snapshot`,
      { details: { checkpointId } },
    );
  }
  if (base !== null && latest !== base) {
    throw new ConflictError('TASK_SNAPSHOT_STALE', `the task snapshots build on ${checkpointDirName(base)}, which ${store.location} no longer has (latest: ${latest === undefined ? 'none' : checkpointDirName(latest)}); take new ones`);
  }
  if (!trusted) await checkBlobsExist(store, hasher, base ?? undefined, parts);

  const tasks: TaskState[] = parts.map((t) => ({
    task: t.task,
    chunkSize: t.chunkSize,
    directories: t.directories,
    files: t.files.map((f) => ({ ...f, chunks: f.chunks.map((c) => (c.createdBy === 0 ? { ...c, createdBy: checkpointId } : c)) })),
  }));
  const sum = (pick: (f: TaskFigures) => number): number => parts.reduce((total, t) => total + pick(t.figures), 0);
  const longestTask = Math.max(...parts.map((t) => t.figures.durationMs));
  const metadata: CheckpointMetadata = {
    formatVersion: METADATA_VERSION,
    checkpointId,
    jobId,
    createdAt: new Date().toISOString(),
    keyAlgorithm: KEY_ALGORITHM,
    tasks,
    snapshot: {
      bytesRead: sum((f) => f.bytesRead),
      bytesWritten: sum((f) => f.bytesWritten),
      filesReused: sum((f) => f.filesReused),
      chunksNew: sum((f) => f.chunksNew),
      chunksDeduped: sum((f) => f.chunksDeduped),
      durationMs: longestTask,
    },
  };
  const encoded = await commitCheckpoint(store, metadata, hasher, durable);
  await cache?.putMetadata(store.location, checkpointId, encoded);
  const retention = await collectGarbage(store, hasher, jobId, {
    retain,
    sweep: 'removed',
    graceMs,
    ...(options.claim === undefined ? {} : { claim: options.claim }),
  });

  const durationMs = longestTask + (performance.now() - started);
  const blobBytes = sum((f) => f.bytesWritten);
  const bytes = sum((f) => f.bytes);
  return {
    checkpointId,
    checkpoint: checkpointDirName(checkpointId),
    tasks: parts.length,
    files: sum((f) => f.files),
    bytes,
    bytesRead: sum((f) => f.bytesRead),
    bytesWritten: blobBytes + encoded.byteLength,
    filesReused: sum((f) => f.filesReused),
    bytesReused: sum((f) => f.bytesReused),
    chunksNew: sum((f) => f.chunksNew),
    chunksDeduped: sum((f) => f.chunksDeduped),
    bytesCached: sum((f) => f.bytesCached),
    checkpointsRemoved: retention.checkpointsRemoved,
    blobsRemoved: retention.blobsRemoved,
    bytesFreed: retention.bytesFreed,
    compressionRatio: blobBytes > 0 ? round2(sum((f) => f.rawBytesNew) / blobBytes) : 1,
    durationMs: Math.round(durationMs),
    throughputMBps: round2(bytes / 1e6 / (durationMs / 1000)),
  };
}

/** Snapshots one state directory as the job's next checkpoint: one task, committed at once. */
export async function snapshot(
  pool: WorkerPool,
  hasher: Hasher,
  store: Store,
  jobId: string,
  stateDir: string,
  options: SnapshotOptions = {},
  cache?: CacheIndex,
  progress?: ProgressSink<SnapshotProgress>,
): Promise<SnapshotResult> {
  const retain = options.retain ?? DEFAULT_RETAIN;
  if (!Number.isSafeInteger(retain) || retain < 1) throw new InvalidInputError('INVALID_RETAIN', `retain ${retain} must be a whole number of checkpoints, at least 1`);
  const part = await snapshotTask(pool, hasher, store, jobId, options.task ?? DEFAULT_TASK, stateDir, options, cache, progress);
  options.signal?.throwIfAborted();
  // Trusted: this process wrote every new blob and synced its name just now.
  return commitTasks(store, hasher, jobId, [part], options, cache, true);
}

/**
 * Blobs a commit relies on that the latest checkpoint does not keep alive:
 * all must exist, or the task snapshot outlived its blobs (gc) and is refused.
 */
async function checkBlobsExist(store: Store, hasher: Hasher, latest: number | undefined, parts: readonly TaskSnapshot[]): Promise<void> {
  const live = new Set<string>();
  if (latest !== undefined) for (const f of allFiles(await loadCheckpoint(store, latest, hasher))) for (const c of f.chunks) live.add(handleKey(c.handle));
  const needed = new Map<string, { task: string; file: string; size: number }>();
  for (const t of parts) {
    for (const f of t.files) {
      for (const c of f.chunks) {
        const key = handleKey(c.handle);
        if (!live.has(key)) needed.set(key, { task: t.task, file: f.path, size: c.handle.length });
      }
    }
  }
  await forEachBounded(needed, 16, async ([key, use]) => {
    const info = await store.stat(key);
    if (info === undefined || info.size !== use.size) {
      throw new ConflictError(
        'TASK_SNAPSHOT_STALE',
        `the task snapshot of task '${use.task}' references blob ${key} (file ${use.file}), which ${info === undefined ? 'is missing from' : 'has another size in'} ${store.location}; take a new task snapshot`,
        { details: { key, task: use.task } },
      );
    }
  });
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

async function listStateDir(root: string, isImmutable: (relPath: string) => boolean): Promise<{ files: StateFile[]; directories: string[] }> {
  try {
    // The root itself may be a link to the state (the caller named it); entries inside may not.
    const st = await stat(root);
    if (!st.isDirectory()) {
      throw new InvalidInputError('STATE_DIR_NOT_DIRECTORY', `state directory ${root} is not a directory; pass the directory that holds the state files`);
    }
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') {
      throw new InvalidInputError('STATE_DIR_MISSING', `state directory ${root} does not exist; check the path`, { cause: error });
    }
    if (error instanceof InvalidInputError) throw error;
    throw storeIoError('reading state directory', root, error);
  }
  const files: StateFile[] = [];
  const directories: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const abs = rel === '' ? root : join(root, rel);
    const names = (await readdir(abs)).sort();
    for (const name of names) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const reason = unsafeNameReason(relPath);
      if (reason !== undefined) {
        throw new InvalidInputError('STATE_UNSAFE_NAME', `state file '${printable(relPath)}' in ${root} cannot be snapshotted because ${reason}; rename it`);
      }
      const absPath = join(abs, name);
      const st = await lstat(absPath);
      if (st.isDirectory()) {
        directories.push(relPath);
        await walk(relPath);
      } else if (st.isFile()) {
        files.push({ relPath, absPath, size: st.size, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, immutable: isImmutable(relPath) });
      } else if (st.isSymbolicLink()) {
        throw new InvalidInputError('STATE_SYMLINK', `state directory entry ${relPath} is a symbolic link; chunkpoint does not follow links (snapshot a RocksDB checkpoint directory, which has none)`);
      } else {
        throw new InvalidInputError('STATE_SPECIAL_FILE', `state directory entry ${relPath} is not a regular file or directory; remove it or snapshot another directory`);
      }
    }
  };
  try {
    await walk('');
  } catch (error) {
    if (error instanceof InvalidInputError) throw error;
    throw storeIoError('listing state directory', root, error);
  }
  return { files, directories };
}

export function immutableMatcher(spec: readonly string[] | ((relPath: string) => boolean)): (relPath: string) => boolean {
  if (typeof spec === 'function') return spec;
  const patterns = spec.map((glob) => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`));
  return (relPath) => {
    const base = relPath.slice(relPath.lastIndexOf('/') + 1);
    return patterns.some((re) => re.test(base));
  };
}
