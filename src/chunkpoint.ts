/**
 * The embedding API: one `Chunkpoint` owns a worker pool and runs snapshots,
 * restores and inspections against any store. Close it when done; the pool's
 * threads otherwise keep the process alive.
 */
import { CacheIndex, cachedCheckpointIds, type CacheOptions, type CacheStats, type PruneResult } from './cache.js';
import { loadCheckpoint, loadCheckpointBytes, locateCheckpoint, resolveLocator, type CheckpointLocator } from './checkpoint.js';
import { loadHasher, type Hasher } from './content-key.js';
import { ChunkpointError, InternalError, InvalidInputError, toChunkpointError } from './errors.js';
import { DEFAULT_PROGRESS_INTERVAL_MS, throttledSink, type ChunkpointEvent, type EventListener, type ProgressSink } from './events.js';
import { DEFAULT_TASK, checkpointDirName } from './handle.js';
import { listCheckpoints, report, type CheckpointReport, type CheckpointSummary } from './inspect.js';
import { decodeMetadata, type TaskSnapshot } from './metadata.js';
import { collectGarbage, type GcOptions, type GcResult } from './gc.js';
import { WorkerPool } from './pool.js';
import { restore, type RestoreOptions, type RestoreResult, type RestoreSource } from './restore.js';
import { commitTasks, snapshot, snapshotTask, type CommitOptions, type SnapshotOptions, type SnapshotResult, type TaskSnapshotOptions } from './snapshot.js';
import { jobRootSpec, jobRootSpecFromLocation, openStore } from './store/open.js';
import { verifyCheckpoint, type VerifyOptions, type VerifyResult } from './verify.js';
import { copyJobRoot, type CopyOptions, type CopyResult } from './copy.js';
import type { CopyProgress, GcProgress, RestoreProgress, SnapshotProgress, VerifyProgress } from './events.js';

export interface ChunkpointOptions {
  /** Worker threads (default: available parallelism). */
  threads?: number;
  /**
   * Chunks each worker thread works on at once (default 2): one is hashed
   * and compressed while another is read or written. Each costs a few
   * chunks of memory per thread. See docs/PERFORMANCE.md, Tuning.
   */
  tasksPerThread?: number;
  /**
   * Receives every lifecycle and progress event of every operation, on the
   * main thread, synchronously: keep it cheap. An exception it throws is
   * reported once as a process warning and otherwise ignored; it never fails
   * the operation.
   */
  onEvent?: EventListener;
  /** Minimum time between two progress events of one operation (default 100 ms; 0: after every chunk). */
  progressIntervalMs?: number;
}

/** Identity and timing of one operation, stamped on each of its events. */
interface OperationScope {
  emit(event: DistributiveOmit<ChunkpointEvent, 'operationId' | 'location' | 'elapsedMs'>): void;
  sink<P>(build: (figures: P) => DistributiveOmit<ChunkpointEvent, 'operationId' | 'location' | 'elapsedMs'>): ProgressSink<P> | undefined;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

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
  private readonly listener: EventListener | undefined;
  private readonly progressIntervalMs: number;
  private operations = 0;
  private listenerFailed = false;

  constructor(options: ChunkpointOptions = {}) {
    this.pool = new WorkerPool({
      ...(options.threads === undefined ? {} : { threads: options.threads }),
      ...(options.tasksPerThread === undefined ? {} : { tasksPerThread: options.tasksPerThread }),
    });
    this.hasher = loadHasher();
    this.listener = options.onEvent;
    this.progressIntervalMs = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  }

  get threads(): number {
    return this.pool.threads;
  }

  /** Snapshots `stateDir` as the job's next checkpoint. */
  async snapshot(stateDir: string, job: JobLocator, options: SnapshotOptions = {}): Promise<SnapshotResult> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    const task = options.task ?? DEFAULT_TASK;
    const op = this.scope(store.location);
    op.emit({ type: 'snapshot.started', job: job.job, task, stateDir });
    try {
      const cache = options.cache === undefined ? undefined : await CacheIndex.open(options.cache);
      const progress = op.sink<SnapshotProgress>((p) => ({ type: 'snapshot.progress', job: job.job, task, ...p }));
      const result = await snapshot(this.pool, await this.hasher, store, job.job, stateDir, options, cache, progress);
      // The last progress event carries the committed figures (bytesWritten now includes _metadata).
      progress?.update(
        () => ({ bytesDone: result.bytes, bytesTotal: result.bytes, bytesRead: result.bytesRead, bytesWritten: result.bytesWritten, filesDone: result.files, filesTotal: result.files, filesReused: result.filesReused, chunksNew: result.chunksNew, chunksDeduped: result.chunksDeduped }),
        true,
      );
      op.emit({ type: 'snapshot.committed', job: job.job, result });
      return result;
    } catch (error) {
      op.emit({ type: 'snapshot.failed', job: job.job, error: toChunkpointError(error) });
      throw error;
    }
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
    const op = this.scope(store.location);
    op.emit({ type: 'snapshot.started', job: task.job, task: task.task, stateDir });
    try {
      const cache = options.cache === undefined ? undefined : await CacheIndex.open(options.cache);
      const progress = op.sink<SnapshotProgress>((p) => ({ type: 'snapshot.progress', job: task.job, task: task.task, ...p }));
      const part = await snapshotTask(this.pool, await this.hasher, store, task.job, task.task, stateDir, options, cache, progress);
      op.emit({ type: 'snapshot.stored', job: task.job, task: task.task, figures: part.figures });
      return part;
    } catch (error) {
      op.emit({ type: 'snapshot.failed', job: task.job, error: toChunkpointError(error) });
      throw error;
    }
  }

  /**
   * The coordinator: commits the job's next checkpoint from one task snapshot
   * per task (from this or other processes), then applies retention.
   */
  async commit(job: JobLocator, taskSnapshots: readonly TaskSnapshot[], options: CommitOptions = {}): Promise<SnapshotResult> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    const op = this.scope(store.location);
    try {
      const cache = options.cache === undefined ? undefined : await CacheIndex.open(options.cache);
      const result = await commitTasks(store, await this.hasher, job.job, taskSnapshots, options, cache);
      op.emit({ type: 'snapshot.committed', job: job.job, result });
      return result;
    } catch (error) {
      op.emit({ type: 'snapshot.failed', job: job.job, error: toChunkpointError(error) });
      throw error;
    }
  }

  /**
   * Restores a committed checkpoint into `targetDir` (new or empty unless
   * `overwrite` or `keepMatching`). With a cache, chunks come from it first,
   * and if the store is unreachable the cached copy of the metadata is used.
   */
  async restore(from: CheckpointLocator, targetDir: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    this.checkOpen();
    const op = this.scope(locationOf(from));
    op.emit({ type: 'restore.started', targetDir });
    try {
      const cache = options.cache === undefined ? undefined : await CacheIndex.open(options.cache);
      const source = await this.restoreSource(from, cache);
      const result = await restore(this.pool, source, targetDir, options, cache, op.sink<RestoreProgress & { checkpoint: string; task: string }>((p) => ({ type: 'restore.progress', ...p })));
      op.emit({ type: 'restore.completed', result });
      return result;
    } catch (error) {
      op.emit({ type: 'restore.failed', error: toChunkpointError(error) });
      throw error;
    }
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
    const op = this.scope(locationOf(from));
    op.emit({ type: 'verify.started' });
    try {
      const { store, checkpointId } = await locateCheckpoint(from);
      const metadata = await loadCheckpoint(store, checkpointId, await this.hasher);
      const result = await verifyCheckpoint(this.pool, store, metadata, options, op.sink<VerifyProgress & { checkpoint: string }>((p) => ({ type: 'verify.progress', ...p })));
      op.emit({ type: 'verify.completed', result });
      return result;
    } catch (error) {
      op.emit({ type: 'verify.failed', error: toChunkpointError(error) });
      throw error;
    }
  }

  /**
   * Removes what no kept checkpoint references: blobs of crashed or aborted
   * snapshots, temp files, and (with `retain`) checkpoints beyond the newest N.
   */
  async gc(job: JobLocator, options: GcOptions = {}): Promise<GcResult> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    const op = this.scope(store.location);
    op.emit({ type: 'gc.started', job: job.job, dryRun: options.dryRun === true });
    try {
      if (!(await store.exists())) {
        throw new InvalidInputError('JOB_NOT_FOUND', `no job '${job.job}' in store ${job.store} (nothing at ${store.location}); check --store and --job`);
      }
      const result = await collectGarbage(store, await this.hasher, job.job, options, op.sink<GcProgress>((p) => ({ type: 'gc.progress', job: job.job, ...p })));
      op.emit({ type: 'gc.completed', job: job.job, result });
      return result;
    } catch (error) {
      op.emit({ type: 'gc.failed', job: job.job, error: toChunkpointError(error) });
      throw error;
    }
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
    const source = open(from);
    const destination = open(to);
    const op = this.scope(source.location);
    op.emit({ type: 'copy.started', to: destination.location });
    try {
      const result = await copyJobRoot(this.pool, await this.hasher, source, destination, options, op.sink<CopyProgress & { to: string }>((p) => ({ type: 'copy.progress', ...p })));
      op.emit({ type: 'copy.completed', result });
      return result;
    } catch (error) {
      op.emit({ type: 'copy.failed', error: toChunkpointError(error) });
      throw error;
    }
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

  /** Stamps one operation's events; without a listener everything is skipped, progress figures are never even built. */
  private scope(location: string): OperationScope {
    const operationId = ++this.operations;
    const started = performance.now();
    const deliver = (event: DistributiveOmit<ChunkpointEvent, 'operationId' | 'location' | 'elapsedMs'>): void => {
      if (this.listener === undefined) return;
      try {
        this.listener({ ...event, operationId, location, elapsedMs: Math.round(performance.now() - started) });
      } catch (error) {
        // A metrics hook must never fail a checkpoint; say so once, without a flood.
        if (!this.listenerFailed) {
          this.listenerFailed = true;
          process.emitWarning(`a chunkpoint onEvent listener threw (${error instanceof Error ? error.message : String(error)}); its exceptions are ignored`, 'ChunkpointWarning');
        }
      }
    };
    return {
      emit: deliver,
      sink: (build) => (this.listener === undefined ? undefined : throttledSink(this.progressIntervalMs, (figures) => deliver(build(figures)))),
    };
  }

  private checkOpen(): void {
    if (this.closed) throw new InternalError('CLOSED', 'this Chunkpoint instance was closed; create a new one');
  }
}

/** Where a locator points, for events emitted before (or without) opening it. */
function locationOf(from: CheckpointLocator): string {
  try {
    return resolveLocator(from).store.location;
  } catch {
    return 'path' in from ? from.path : `${from.store}/${from.job}`;
  }
}
