/**
 * What every coordinator is handed first: the runtime of one operation. Every
 * coordinator takes `(ctx, <what the operation is about>, options)`, so the
 * facade builds one of these per operation instead of threading the pool,
 * the hasher, the cache and the progress sink through long positional lists
 * that differ from one coordinator to the next.
 */
import type { CacheIndex } from './cache.js';
import type { Hasher } from './format/content-key.js';
import type { ProgressSink } from './progress.js';
import type { WorkerPool } from './pool.js';
import type { Store } from './store/store.js';

/** The runtime of an operation that stays on the main thread (gc, commit): it needs no worker pool. */
export interface MainThreadRuntime<P = never> {
  hasher: Hasher;
  /**
   * The opened index of the operation's local cache (the options only name
   * it): shared by a `Chunkpoint`'s operations on the same cache, so their
   * reservations add up against one cap.
   */
  cache?: CacheIndex | undefined;
  /** Where the operation reports its figures; absent when nobody listens, and then no figures are built. */
  progress?: ProgressSink<P> | undefined;
}

/** The runtime of an operation whose chunk work runs on the worker threads. */
export interface Runtime<P = never> extends MainThreadRuntime<P> {
  pool: WorkerPool;
}

/** A job, opened: its root's store, and the id its checkpoints record as their owner. */
export interface JobRef {
  store: Store;
  jobId: string;
}

/** One task of a job: the part of its state one process snapshots. */
export interface TaskRef extends JobRef {
  task: string;
}
