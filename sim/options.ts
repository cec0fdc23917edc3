/**
 * What a stress run can be told, and its defaults: plain data, light to
 * load, so the command line can show and check options without loading the
 * harness.
 */

/**
 * Violations to plant, to see the harness catch them: a pack of a committed
 * checkpoint deleted behind chunkpoint's back; the same for a pack only an
 * older retained checkpoint references (the newest still verifies); a commit
 * that skips the lease check, made after its sessions expired and gc took
 * their packs; and a store that loses a fresh pack (the commit is refused
 * TASK_SNAPSHOT_STALE although neither gc nor a fault can explain it).
 */
export const PLANTS = ['drop-pack', 'drop-old-pack', 'skip-lease-check', 'lose-fresh-pack'] as const;
export type Plant = (typeof PLANTS)[number];

export interface StressOptions {
  durationMs: number;
  seed: number;
  /** Task processes (default 4). */
  tasks: number;
  /** Store location (directory or s3://…); default a directory in the work directory. */
  store?: string;
  /** About this much RocksDB state per task. */
  stateBytes: number;
  chunkSize: number;
  /** Worker threads per task process and for the coordinator. */
  threads: number;
  retain: number;
  /** The grace period of retention after each commit. */
  graceMs: number;
  /** The grace period of the gc actor that runs beside the snapshots: short, so only leases protect what tasks write. */
  gcGraceMs: number;
  /** The task processes' session lease (short, so killed tasks' sessions die within a run). */
  leaseMs: number;
  /** Per round: probability that the newest checkpoint is dropped while the tasks snapshot (their base vanishes; its packs become orphans). */
  drop: number;
  /** Probability per store operation of a transient / permanent fault. */
  transient: number;
  permanent: number;
  /** Probability per blob write of a torn write (directory stores). */
  torn: number;
  maxLatencyMs: number;
  /** Per task and round: probability of a SIGKILL. */
  kill: number;
  /** Per round: probability of a gc run concurrent with the snapshots. */
  gc: number;
  /** Per round: expected number of restores (0..n). */
  restores: number;
  /** Per restore: probability that the warm cache gets a bad entry first (a flipped byte, a FIFO, or an entry grown to 100 GiB). */
  corruptCache: number;
  /**
   * Per commit: probability that an older retained checkpoint's `_metadata`
   * is damaged; the next commit must route around it (retention keeps it
   * without counting it, gc refuses as documented), then it is dropped.
   */
  damage: number;
  /** A directory on a (nearly) full volume: some restores use it as their cache, and every insert there may fail with ENOSPC. */
  fullCacheDir?: string;
  plant?: Plant;
  /**
   * fsync blobs and metadata. Off by default: the harness kills processes,
   * and the page cache outlives a process, so fsync only slows rounds down
   * without adding a checked invariant (power loss is out of scope).
   */
  durable: boolean;
  /** Keep the work directory and job root even when every invariant held. */
  keep: boolean;
}

export const DEFAULTS: Omit<StressOptions, 'durationMs' | 'seed'> = {
  tasks: 4,
  stateBytes: 4 * 1024 * 1024,
  chunkSize: 64 * 1024,
  threads: 1,
  retain: 3,
  graceMs: 30_000,
  gcGraceMs: 0,
  leaseMs: 10_000,
  drop: 0.1,
  transient: 0.02,
  permanent: 0.002,
  torn: 0.02,
  maxLatencyMs: 3,
  kill: 0.08,
  gc: 0.5,
  restores: 1.5,
  corruptCache: 0.3,
  damage: 0.1,
  durable: false,
  keep: false,
};
