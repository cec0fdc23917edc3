/**
 * The embedding API: one `Chunkpoint` owns a worker pool and runs snapshots,
 * restores and inspections against any store. Close it when done; the pool's
 * threads otherwise keep the process alive.
 */
import { resolve } from 'node:path';
import { CacheIndex, type CacheOptions, type CacheStats, type PruneResult } from './cache.js';
import { loadCheckpoint, locateCheckpoint, readJobState, removeCheckpoints, resolveLocator, type CheckpointLocator } from './checkpoint.js';
import { loadHasher, type Hasher } from './format/content-key.js';
import { ChunkpointError, InternalError, InvalidInputError, apiName, toChunkpointError } from './errors.js';
import { DEFAULT_PROGRESS_INTERVAL_MS, throttledSink, type ChunkpointEvent, type EventListener, type ProgressSink } from './events.js';
import { DEFAULT_TASK, checkpointDirName } from './format/names.js';
import { listCheckpoints, report, type CheckpointReport, type CheckpointSummary } from './inspect.js';
import type { TaskSnapshot } from './format/metadata.js';
import { collectGarbage, type GcOptions, type GcResult } from './gc.js';
import { WorkerPool } from './pool.js';
import { restore, type RestoreOptions, type RestoreResult } from './restore/index.js';
import { restoreSource } from './restore/source.js';
import { commitTasks, snapshot, snapshotTask, type CommitOptions, type SnapshotOptions, type SnapshotResult, type TaskSnapshotOptions } from './snapshot/index.js';
import { jobRootSpec, jobRootSpecFromLocation, openStore } from './store/open.js';
import { rateLimitSpec } from './store/rate-limit.js';
import type { Store } from './store/store.js';
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
  requestsPerThread?: number;
  /**
   * Receives every lifecycle and progress event of every operation, on the
   * main thread, synchronously: keep it cheap. An exception it throws is
   * reported once as a process warning and otherwise ignored; it never fails
   * the operation.
   */
  onEvent?: EventListener;
  /** Minimum time between two progress events of one operation (default 100 ms; 0: after every chunk). */
  progressIntervalMs?: number;
  /** Pack reads a restore, verify or copy keeps in flight (default 8). */
  ioConcurrency?: number;
}

/** A bandwidth limit for one operation's store reads and writes, in bytes per second (restic's --limit-upload). */
export interface RateLimited {
  limitRate?: number;
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

/** Opens a job root's store, with the operation's rate limit when it has one. */
function openJob(spec: ReturnType<typeof jobRootSpec>, limitRate: number | undefined): Store {
  return openStore(limitRate === undefined ? spec : { ...spec, rateLimit: rateLimitSpec(limitRate) });
}

export class Chunkpoint {
  private readonly pool: WorkerPool;
  private readonly hasher: Promise<Hasher>;
  private closed = false;
  private readonly listener: EventListener | undefined;
  private readonly progressIntervalMs: number;
  private operations = 0;
  /**
   * One index per cache in use, shared by this instance's operations while
   * any runs: their reservations then add up against one cap, which holds at
   * every moment. (Processes sharing a cache each hold it for what they see;
   * the next operation to open the cache evicts back under it.)
   */
  private readonly caches = new Map<string, { index: Promise<CacheIndex | ChunkpointError>; users: number }>();
  private cacheWarned = false;
  private readonly cacheUnusableWarned = new Set<string>();
  private listenerFailed = false;

  constructor(options: ChunkpointOptions = {}) {
    this.pool = new WorkerPool({
      ...(options.threads === undefined ? {} : { threads: options.threads }),
      ...(options.requestsPerThread === undefined ? {} : { requestsPerThread: options.requestsPerThread }),
      ...(options.ioConcurrency === undefined ? {} : { ioConcurrency: options.ioConcurrency }),
    });
    this.hasher = loadHasher();
    this.listener = options.onEvent;
    this.progressIntervalMs = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  }

  get threads(): number {
    return this.pool.threads;
  }

  /** Snapshots `stateDir` as the job's next checkpoint. */
  async snapshot(stateDir: string, job: JobLocator, options: SnapshotOptions & RateLimited = {}): Promise<SnapshotResult> {
    this.checkOpen();
    const store = openJob(jobRootSpec(job.store, job.job), options.limitRate);
    const task = options.task ?? DEFAULT_TASK;
    const op = this.scope(store.location);
    op.emit({ type: 'snapshot.started', job: job.job, task, stateDir });
    try {
      const progress = op.sink<SnapshotProgress>((p) => ({ type: 'snapshot.progress', job: job.job, task, ...p }));
      const result = await this.withCache(options.cache, async (cache, unusable) => {
        const done = await snapshot({ pool: this.pool, hasher: await this.hasher, cache, progress }, stateDir, { store, jobId: job.job }, options);
        if (unusable !== undefined) done.warnings.push(`${unusable}; the snapshot went on without it`);
        return done;
      });
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
   * its session's lease keeps gc away from what it stored until
   * `expiresAt` (default 10 minutes after it ends): commit before then.
   */
  async snapshotTask(stateDir: string, task: TaskLocator, options: TaskSnapshotOptions & RateLimited = {}): Promise<TaskSnapshot> {
    this.checkOpen();
    const store = openJob(jobRootSpec(task.store, task.job), options.limitRate);
    const op = this.scope(store.location);
    op.emit({ type: 'snapshot.started', job: task.job, task: task.task, stateDir });
    try {
      const progress = op.sink<SnapshotProgress>((p) => ({ type: 'snapshot.progress', job: task.job, task: task.task, ...p }));
      const part = await this.withCache(options.cache, async (cache, unusable) => {
        this.warnCacheUnusable(unusable, 'snapshot');
        return snapshotTask({ pool: this.pool, hasher: await this.hasher, cache, progress }, stateDir, { store, jobId: task.job, task: task.task }, options);
      });
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
  async commit(job: JobLocator, taskSnapshots: readonly TaskSnapshot[], options: CommitOptions & { cache?: CacheOptions } = {}): Promise<SnapshotResult> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    const op = this.scope(store.location);
    try {
      const { cache: cacheOptions, ...rest } = options;
      const result = await this.withCache(cacheOptions, async (cache, unusable) => {
        const done = await commitTasks({ hasher: await this.hasher, cache }, { store, jobId: job.job }, taskSnapshots, rest);
        if (unusable !== undefined) done.warnings.push(`${unusable}; the commit went on without it`);
        return done;
      });
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
  async restore(from: CheckpointLocator, targetDir: string, options: RestoreOptions & RateLimited = {}): Promise<RestoreResult> {
    this.checkOpen();
    const op = this.scope(locationOf(from));
    op.emit({ type: 'restore.started', targetDir });
    try {
      const result = await this.withCache(options.cache, async (cache, unusable) => {
        this.warnCacheUnusable(unusable, 'restore');
        // The threads load their modules while the metadata is read from the store. Not for a restore
        // from a task-local copy: it usually links every file and needs no thread, and threads
        // loading beside it would take the CPU it runs on (they start on first use if it does).
        if (options.localCopy === undefined) this.pool.warm();
        const source = await restoreSource(await this.hasher, from, { cache, task: options.task, limitRate: options.limitRate, warnCache: (error) => this.warnCache(error) });
        return restore({ pool: this.pool, hasher: await this.hasher, cache, progress: op.sink<RestoreProgress & { checkpoint: string; task: string }>((p) => ({ type: 'restore.progress', ...p })) }, source, targetDir, options);
      });
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
      throw new InvalidInputError('JOB_NOT_FOUND', `no job '${job.job}' in store ${job.store} (nothing at ${store.location}); check ${apiName('store')} and ${apiName('job')}`);
    }
    return listCheckpoints({ hasher: await this.hasher }, store);
  }

  /** Files, chunks and sizes of one checkpoint. */
  async inspect(from: CheckpointLocator): Promise<CheckpointReport> {
    this.checkOpen();
    const { store, checkpointId } = await locateCheckpoint(from);
    const hasher = await this.hasher;
    return report({ hasher }, store, await loadCheckpoint(store, checkpointId, hasher));
  }

  /**
   * Scrubs a checkpoint: fetches every blob it references (or a sample) on the
   * worker pool and checks it as a restore would; reports every problem.
   */
  async verify(from: CheckpointLocator, options: VerifyOptions & RateLimited = {}): Promise<VerifyResult> {
    this.checkOpen();
    const op = this.scope(locationOf(from));
    op.emit({ type: 'verify.started' });
    try {
      const located = await locateCheckpoint(from);
      this.pool.warm();
      const store = options.limitRate === undefined ? located.store : openStore({ ...located.store.spec, rateLimit: rateLimitSpec(options.limitRate) });
      const hasher = await this.hasher;
      const metadata = await loadCheckpoint(store, located.checkpointId, hasher);
      const result = await verifyCheckpoint({ pool: this.pool, hasher, progress: op.sink<VerifyProgress & { checkpoint: string }>((p) => ({ type: 'verify.progress', ...p })) }, store, metadata, options);
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
        throw new InvalidInputError('JOB_NOT_FOUND', `no job '${job.job}' in store ${job.store} (nothing at ${store.location}); check ${apiName('store')} and ${apiName('job')}`);
      }
      const result = await collectGarbage({ hasher: await this.hasher, progress: op.sink<GcProgress>((p) => ({ type: 'gc.progress', job: job.job, ...p })) }, { store, jobId: job.job }, options);
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
  async copy(from: JobRoot, to: JobRoot, options: CopyOptions & RateLimited = {}): Promise<CopyResult> {
    this.checkOpen();
    const open = (root: JobRoot): Store => openJob(typeof root === 'string' ? jobRootSpecFromLocation(root) : jobRootSpec(root.store, root.job), options.limitRate);
    const source = open(from);
    const destination = open(to);
    const op = this.scope(source.location);
    op.emit({ type: 'copy.started', to: destination.location });
    try {
      const result = await copyJobRoot({ pool: this.pool, hasher: await this.hasher, progress: op.sink<CopyProgress & { to: string }>((p) => ({ type: 'copy.progress', ...p })) }, source, destination, options);
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
    return (await CacheIndex.openExisting(options)).stats();
  }

  /** Applies a cache's TTL and size cap now. */
  async cachePrune(options: CacheOptions): Promise<PruneResult> {
    this.checkOpen();
    return (await CacheIndex.openExisting(options)).prune();
  }

  /** Stops the worker threads. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  /**
   * Removes one checkpoint explicitly — the way to get rid of a damaged one
   * (retention never removes what it cannot read). It is fenced like any
   * removal: its id is never used again. What only it referenced is freed by
   * the next gc.
   */
  async drop(job: JobLocator, checkpointId: number): Promise<{ checkpoint: string; dropped: boolean }> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    const state = await readJobState(store);
    if (!state.ids.includes(checkpointId) && !state.leftovers.includes(checkpointId)) {
      throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `job '${job.job}' in store ${job.store} has no committed checkpoint ${checkpointDirName(checkpointId)}; list them with ${apiName('list()')}`);
    }
    await removeCheckpoints(store, [checkpointId], state, true);
    return { checkpoint: checkpointDirName(checkpointId), dropped: true };
  }

  /**
   * The checkpoint and its task's manifest: from the store, and — local-first —
   * from the cache's copies only when reading the store fails for want of the
   * store (never for damage, a missing job or any other refusal). A copy the
   * cache fails to take is a warning, never a reason to read an old one.
   *
   * A cached copy must be the store's very checkpoint, not one an earlier job
   * of the same id left at the same location: once the store's `_metadata`
   * was read, it is kept and only the manifest it names (size and checksum)
   * may come from the cache; a cached `_metadata` is used for the id the
   * store listed (never simply the highest cached one), must not predate a
   * copy the cache took later of a lower id (that order only arises when the
   * job was recreated), and is refused when the store, asked, does not hold
   * its manifest.
   */
  /**
   * Runs `use` with this instance's shared index of the cache `options` names
   * (none without options). Options that make no sense are the caller's
   * mistake and fail; a cache that cannot be created or read (a read-only or
   * full volume, a path through a file, another user's directory) is not: a
   * cache is never needed for correctness, so `use` runs without one and is
   * told why (`unusable`), to say so in its result or as a warning.
   */
  private async withCache<T>(options: CacheOptions | undefined, use: (cache: CacheIndex | undefined, unusable?: string) => Promise<T>): Promise<T> {
    if (options === undefined) return use(undefined);
    CacheIndex.checkOptions(options);
    const key = JSON.stringify([resolve(options.dir), options.maxBytes ?? null, options.ttlMs ?? null]);
    let shared = this.caches.get(key);
    if (shared === undefined) {
      const index = CacheIndex.open(options).catch((error: unknown) => {
        if (error instanceof ChunkpointError && error.details['place'] === 'cache') return error;
        throw error;
      });
      shared = { index, users: 0 };
      this.caches.set(key, shared);
    }
    shared.users++;
    try {
      const opened = await shared.index;
      if (opened instanceof CacheIndex) return await use(opened);
      return await use(undefined, `the local cache at ${resolve(options.dir)} cannot be used (${opened.code}: ${opened.message})`);
    } finally {
      if (--shared.users === 0) this.caches.delete(key);
    }
  }

  /** Says once per cache directory and instance that an operation goes on without its cache. */
  private warnCacheUnusable(unusable: string | undefined, operation: string): void {
    if (unusable === undefined || this.cacheUnusableWarned.has(unusable)) return;
    this.cacheUnusableWarned.add(unusable);
    process.emitWarning(`chunkpoint: ${unusable}; the ${operation} goes on without it`, 'ChunkpointWarning');
  }

  private warnCache(error: unknown): void {
    // Once per instance: a full cache volume would otherwise repeat this on every restore.
    if (this.cacheWarned) return;
    this.cacheWarned = true;
    process.emitWarning(`chunkpoint: the local cache did not take a copy of the checkpoint metadata (${error instanceof Error ? error.message : String(error)}); the restore goes on without it`, 'ChunkpointWarning');
  }

  /** Stamps one operation's events; without a listener everything is skipped, progress figures are never even built. */
  private scope(location: string): OperationScope {
    const operationId = ++this.operations;
    const started = performance.now();
    const deliver = (event: DistributiveOmit<ChunkpointEvent, 'operationId' | 'location' | 'elapsedMs'>): void => {
      if (this.listener === undefined) return;
      const failed = (error: unknown): void => {
        // A metrics hook must never fail a checkpoint; say so once, without a flood.
        if (this.listenerFailed) return;
        this.listenerFailed = true;
        process.emitWarning(`a chunkpoint onEvent listener threw (${error instanceof Error ? error.message : String(error)}); its exceptions are ignored`, 'ChunkpointWarning');
      };
      try {
        const returned: unknown = this.listener({ ...event, operationId, location, elapsedMs: Math.round(performance.now() - started) });
        // An async listener's rejection is the same as a throw: caught here, never an unhandled rejection.
        if (typeof returned === 'object' && returned !== null && typeof (returned as { then?: unknown }).then === 'function') {
          (returned as PromiseLike<unknown>).then(undefined, failed);
        }
      } catch (error) {
        failed(error);
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
