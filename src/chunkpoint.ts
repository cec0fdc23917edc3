/**
 * The embedding API: one `Chunkpoint` owns a worker pool and runs snapshots,
 * restores and inspections against any store. Close it when done; the pool's
 * threads otherwise keep the process alive.
 */
import { locateCheckpoint, loadCheckpoint, type CheckpointLocator } from './checkpoint.js';
import { loadHasher, type Hasher } from './content-key.js';
import { InternalError, InvalidInputError } from './errors.js';
import { listCheckpoints, report, type CheckpointReport, type CheckpointSummary } from './inspect.js';
import { WorkerPool } from './pool.js';
import { restore, type RestoreOptions, type RestoreResult } from './restore.js';
import { snapshot, type SnapshotOptions, type SnapshotResult } from './snapshot.js';
import { jobRootSpec, openStore } from './store/open.js';

export interface ChunkpointOptions {
  /** Worker threads (default: available parallelism). */
  threads?: number;
}

export interface JobLocator {
  /** Store location: a directory path. */
  store: string;
  /** Job id: one path segment of letters, digits, '.', '_' and '-'. */
  job: string;
}

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
    return snapshot(this.pool, await this.hasher, store, job.job, stateDir, options);
  }

  /** Restores a committed checkpoint into `targetDir` (new or empty unless `overwrite`). */
  async restore(from: CheckpointLocator, targetDir: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    this.checkOpen();
    return restore(this.pool, await this.hasher, await locateCheckpoint(from), targetDir, options);
  }

  /** Committed checkpoints of a job, oldest first. */
  async list(job: JobLocator): Promise<CheckpointSummary[]> {
    this.checkOpen();
    const store = openStore(jobRootSpec(job.store, job.job));
    if (!(await store.exists())) {
      throw new InvalidInputError('JOB_NOT_FOUND', `no job '${job.job}' in store ${job.store} (no directory ${store.location}); check --store and --job`);
    }
    return listCheckpoints(store, await this.hasher);
  }

  /** Files, chunks and sizes of one checkpoint. */
  async inspect(from: CheckpointLocator): Promise<CheckpointReport> {
    this.checkOpen();
    const { store, checkpointId } = await locateCheckpoint(from);
    return report(await loadCheckpoint(store, checkpointId, await this.hasher), store.location);
  }

  /** Stops the worker threads. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new InternalError('CLOSED', 'this Chunkpoint instance was closed; create a new one');
  }
}
