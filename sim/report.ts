/**
 * What a stress run reports: the counters every part of the harness adds
 * to, the figures throughput and space are computed from, and the result
 * `chunkpoint stress` prints (as a summary or as JSON).
 */
import type { Violation } from './violation.js';

export interface Counters {
  rounds: number;
  checkpointsCommitted: number;
  /** Commits that reported a failure although the checkpoint was written (e.g. a fault during retention). */
  committedDespiteError: number;
  roundsNotCommitted: number;
  taskSnapshotsFailed: number;
  commitsFailed: number;
  restoresVerified: number;
  restoresColdCache: number;
  restoresWarmCache: number;
  restoresNoCache: number;
  restoresCorruptedCache: number;
  restoresStaleTarget: number;
  cacheEntriesDropped: number;
  verifies: number;
  gcRuns: number;
  gcFailed: number;
  /** Newest checkpoints dropped while tasks snapshotted. */
  drops: number;
  /** Commits refused as documented (a lease that really ran out, a base the harness dropped). */
  commitsRefused: number;
  kills: number;
  faultsTransient: number;
  faultsPermanent: number;
  faultsTorn: number;
  cacheCorruptions: number;
  /** Older checkpoints whose metadata the harness damaged, and gc runs refused (as documented) while one was there. */
  checkpointsDamaged: number;
  gcRefused: number;
  /** Restores whose cache sat on a full volume. */
  restoresFullCache: number;
  bytesSnapshotted: number;
  bytesWritten: number;
  bytesRead: number;
  /** Restored bytes (whatever their source). */
  bytesRestored: number;
}

export interface StressResult {
  seed: number;
  ok: boolean;
  store: string;
  job: string;
  jobRoot: string;
  workDir: string;
  log: string;
  durationMs: number;
  counters: Counters;
  snapshotMBps: number;
  restoreMBps: number;
  /** At the end, after gc: bytes of the packs in the store, of the chunks the kept checkpoints use, and their ratio. */
  storedBytes: number;
  liveBytes: number;
  spaceAmplification: number;
  violation?: Violation;
  /** Kept on a violation (or with `keep`): where the evidence is. */
  evidenceKept: boolean;
}

export interface StressEvents {
  /** Called after every round and restore with the counters so far. */
  progress?(counters: Counters, elapsedMs: number): void;
}

/** What the rates and the space amplification are computed from. */
export interface Figures {
  /** Time from the start of a committed round to its commit, summed. */
  snapshotMs: number;
  /** Time spent in restores, summed. */
  restoreMs: number;
  /** Measured at the end, after the final gc. */
  storedBytes: number;
  liveBytes: number;
}

export function zeroCounters(): Counters {
  return {
    rounds: 0,
    checkpointsCommitted: 0,
    committedDespiteError: 0,
    roundsNotCommitted: 0,
    taskSnapshotsFailed: 0,
    commitsFailed: 0,
    restoresVerified: 0,
    restoresColdCache: 0,
    restoresWarmCache: 0,
    restoresNoCache: 0,
    restoresCorruptedCache: 0,
    restoresStaleTarget: 0,
    cacheEntriesDropped: 0,
    verifies: 0,
    gcRuns: 0,
    gcFailed: 0,
    drops: 0,
    commitsRefused: 0,
    kills: 0,
    faultsTransient: 0,
    faultsPermanent: 0,
    faultsTorn: 0,
    cacheCorruptions: 0,
    checkpointsDamaged: 0,
    gcRefused: 0,
    restoresFullCache: 0,
    bytesSnapshotted: 0,
    bytesWritten: 0,
    bytesRead: 0,
    bytesRestored: 0,
  };
}

export function zeroFigures(): Figures {
  return { snapshotMs: 0, restoreMs: 0, storedBytes: 0, liveBytes: 0 };
}

/** Where a run happened; the rest of the result is computed. */
export type RunPlace = Pick<StressResult, 'seed' | 'store' | 'job' | 'jobRoot' | 'workDir' | 'log' | 'durationMs'>;

export function stressResult(place: RunPlace, counters: Counters, figures: Figures, violation: Violation | undefined, evidenceKept: boolean): StressResult {
  const { storedBytes, liveBytes } = figures;
  return {
    seed: place.seed,
    ok: violation === undefined,
    store: place.store,
    job: place.job,
    jobRoot: place.jobRoot,
    workDir: place.workDir,
    log: place.log,
    durationMs: place.durationMs,
    counters,
    snapshotMBps: figures.snapshotMs > 0 ? round2(counters.bytesSnapshotted / 1e6 / (figures.snapshotMs / 1000)) : 0,
    restoreMBps: figures.restoreMs > 0 ? round2(counters.bytesRestored / 1e6 / (figures.restoreMs / 1000)) : 0,
    storedBytes,
    liveBytes,
    spaceAmplification: liveBytes > 0 ? round2(storedBytes / liveBytes) : 0,
    evidenceKept,
    ...(violation === undefined ? {} : { violation }),
  };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
