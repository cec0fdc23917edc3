/**
 * The embedding API: one `Chunkpoint` owns a worker pool and runs snapshots,
 * restores and inspections against any store. Close it when done; the pool's
 * threads otherwise keep the process alive.
 */
import { CacheIndex, cachedCheckpointIds, type CacheOptions, type CacheStats, type PruneResult } from './cache.js';
import { loadCheckpoint, loadCheckpointBytes, locateCheckpoint, resolveLocator, type CheckpointLocator } from './checkpoint.js';
import { loadHasher, type Hasher } from './content-key.js';
import { ChunkpointError, InternalError, InvalidInputError } from './errors.js';
import { checkpointDirName } from './handle.js';
import { listCheckpoints, report, type CheckpointReport, type CheckpointSummary } from './inspect.js';
import { decodeMetadata, type TaskSnapshot } from './metadata.js';
import { collectGarbage, type GcOptions, type GcResult } from './gc.js';
import { WorkerPool } from './pool.js';
import { restore, type RestoreOptions, type RestoreResult, type RestoreSource } from './restore.js';
import { commitTasks, snapshot, snapshotTask, type CommitOptions, type SnapshotOptions, type SnapshotResult, type TaskSnapshotOptions } from './snapshot.js';
import { jobRootSpec, jobRootSpecFromLocation, openStore } from './store/open.js';
import { verifyCheckpoint, type VerifyOptions, type VerifyResult } from './verify.js';
import { copyJobRoot, type CopyOptions, type CopyResult } from './copy.js';

export interface ChunkpointOptions {
  /** Worker threads (default: available parallelism). */
  threads?: number;
}

export interface JobLocator {
  /** Store location: a directory path or `s3://<bucket>/<prefix>`. */
  store: string;
  /** Job id: one path segment of letters, digits, '.', '_' and '-'. */
  job: string;
}

export interface TaskLocator extends JobLocator {
  /** Task id, unique within the job: one path segment like a job id. */
  task: string;
}

/** A job root: store + job, or its own location (a directory, or `s3://<bucket>/<prefix>/<jobId>`). */
export type JobRoot = JobLocator | string;

/** Failures that mean "the store or the checkpoint cannot be read", as opposed to bad data. */
const UNREACHABLE_CODES = new Set(['JOB_NOT_FOUND', 'CHECKPOINT_NOT_FOUND', 'NO_CHECKPOINTS']);

export class Chunkpoint {
  private readonly pool: WorkerPool;
  private readonly hasher: Promise<Hasher>;
  private closed = false;

  constructor(options: ChunkpointOptions = {}) {
    this.pool = new WorkerPool(options.threads === undefined ? {} : { threads: options.threads });
    this.hasher = loadHasher();
  }

  get threads(): number {
    return this.pool.threads;
  }

  /** Snapshots `stateDir` as the job's next checkpoint. */
  async snapshot(stateDir: string, job: JobLocator, options: SnapshotOptions = {}): Promise<SnapshotResult> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    const cache = options.cache === undefined ? undefined : await CacheIndex.open(options.cache);
    return snapshot(this.pool, await this.hasher, store, job.job, stateDir, options, cache);
  }

  /**
   * One task of a multi-task job: stores this task's state directory (chunks
   * the job's last checkpoint lacks) and returns a task snapshot, plain
   * serializable data to hand to the coordinator's `commit`. Commits nothing;
   * its blobs are protected from gc for the grace period (default 1 hour).
   */
  async snapshotTask(stateDir: string, task: TaskLocator, options: TaskSnapshotOptions = {}): Promise<TaskSnapshot> {
    this.checkOpen();
    const store = openStore(jobRootSpec(task.store, task.job));
    const cache = options.cache === undefined ? undefined : await CacheIndex.open(options.cache);
    return snapshotTask(this.pool, await this.hasher, store, task.job, task.task, stateDir, options, cache);
  }

  /**
   * The coordinator: commits the job's next checkpoint from one task snapshot
   * per task (from this or other processes), then applies retention.
   */
  async commit(job: JobLocator, taskSnapshots: readonly TaskSnapshot[], options: CommitOptions = {}): Promise<SnapshotResult> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    const cache = options.cache === undefined ? undefined : await CacheIndex.open(options.cache);
    return commitTasks(store, await this.hasher, job.job, taskSnapshots, options, cache);
  }

  /**
   * Restores a committed checkpoint into `targetDir` (new or empty unless
   * `overwrite` or `keepMatching`). With a cache, chunks come from it first,
   * and if the store is unreachable the cached copy of the metadata is used.
   */
  async restore(from: CheckpointLocator, targetDir: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    this.checkOpen();
    const cache = options.cache === undefined ? undefined : await CacheIndex.open(options.cache);
    const source = await this.restoreSource(from, cache);
    return restore(this.pool, source, targetDir, options, cache);
  }

  /** Committed checkpoints of a job, oldest first. */
  async list(job: JobLocator): Promise<CheckpointSummary[]> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    if (!(await store.exists())) {
      throw new InvalidInputError('JOB_NOT_FOUND', `no job '${job.job}' in store ${job.store} (nothing at ${store.location}); check --store and --job`);
    }
    return listCheckpoints(store, await this.hasher);
  }

  /** Files, chunks and sizes of one checkpoint. */
  async inspect(from: CheckpointLocator): Promise<CheckpointReport> {
    this.checkOpen();
    const { store, checkpointId } = await locateCheckpoint(from);
    return report(await loadCheckpoint(store, checkpointId, await this.hasher), store.location);
  }

  /**
   * Scrubs a checkpoint: fetches every blob it references (or a sample) on the
   * worker pool and checks it as a restore would; reports every problem.
   */
  async verify(from: CheckpointLocator, options: VerifyOptions = {}): Promise<VerifyResult> {
    this.checkOpen();
    const { store, checkpointId } = await locateCheckpoint(from);
    return verifyCheckpoint(this.pool, store, await loadCheckpoint(store, checkpointId, await this.hasher), options);
  }

  /**
   * Removes what no kept checkpoint references: blobs of crashed or aborted
   * snapshots, temp files, and (with `retain`) checkpoints beyond the newest N.
   */
  async gc(job: JobLocator, options: GcOptions = {}): Promise<GcResult> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    if (!(await store.exists())) {
      throw new InvalidInputError('JOB_NOT_FOUND', `no job '${job.job}' in store ${job.store} (nothing at ${store.location}); check --store and --job`);
    }
    return collectGarbage(store, await this.hasher, job.job, options);
  }

  /**
   * Copies a job root, every committed checkpoint and its blobs, to another
   * job root in any store (blobs first, verified; metadata last). Resumable:
   * objects already at the destination are skipped. Refuses a destination
   * that holds different checkpoints.
   */
  async copy(from: JobRoot, to: JobRoot, options: CopyOptions = {}): Promise<CopyResult> {
    this.checkOpen();
    const open = (root: JobRoot) => openStore(typeof root === 'string' ? jobRootSpecFromLocation(root) : jobRootSpec(root.store, root.job));
    return copyJobRoot(this.pool, await this.hasher, open(from), open(to), options);
  }

  /** Size, entry count and age range of a local cache. */
  async cacheStats(options: CacheOptions): Promise<CacheStats> {
    this.checkOpen();
    return (await CacheIndex.open(options)).stats();
  }

  /** Applies a cache's TTL and size cap now. */
  async cachePrune(options: CacheOptions): Promise<PruneResult> {
    this.checkOpen();
    return (await CacheIndex.open(options)).prune();
  }

  /** Stops the worker threads. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  private async restoreSource(from: CheckpointLocator, cache: CacheIndex | undefined): Promise<RestoreSource> {
    const hasher = await this.hasher;
    try {
      const { store, checkpointId } = await locateCheckpoint(from);
      const { metadata, encoded } = await loadCheckpointBytes(store, checkpointId, hasher);
      await cache?.putMetadata(store.location, checkpointId, encoded);
      return { store, metadata, metadataFromCache: false };
    } catch (error) {
      if (cache === undefined || !(error instanceof ChunkpointError) || !(error.kind === 'store_unavailable' || UNREACHABLE_CODES.has(error.code))) throw error;
      // Local-first: the store is gone or unreachable, but this machine may hold the whole checkpoint.
      const { store, wanted } = resolveLocator(from);
      const ids = await cachedCheckpointIds(cache.spec, store.location);
      const id = wanted === 'latest' ? ids.at(-1) : ids.includes(wanted) ? wanted : undefined;
      if (id === undefined) throw error;
      const data = await cache.getMetadata(store.location, id);
      if (data === undefined) throw error;
      const metadata = decodeMetadata(data, hasher, `cached copy of ${store.location}/${checkpointDirName(id)}/_metadata`, id);
      return { store, metadata, metadataFromCache: true };
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new InternalError('CLOSED', 'this Chunkpoint instance was closed; create a new one');
  }
}
