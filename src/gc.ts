/**
 * Retention and garbage collection: mark every blob a kept checkpoint
 * references, sweep the rest.
 *
 * Safety rules (Flink's FLINK-25395/26985/29913, kopia #1087):
 * - Nothing younger than the grace period is deleted. Snapshots make every
 *   blob they will reference young — new blobs by creation, deduplicated and
 *   reused ones by `touch` — so a snapshot in flight in another process keeps
 *   its blobs as long as it takes less than the grace period.
 * - A checkpoint is removed by deleting its `_metadata` first: it disappears
 *   atomically, then its blobs become unreferenced and are swept.
 * - Checkpoints written under another job id (a copied job root, a job
 *   started from another job's checkpoint) are not owned: they are never
 *   removed, so nothing they reference is deleted, unless claimed.
 * - If any committed checkpoint cannot be read, nothing is deleted: the mark
 *   phase would be incomplete.
 */
import { committedCheckpointIds, loadCheckpoint } from './checkpoint.js';
import type { Hasher } from './content-key.js';
import { CorruptDataError, InvalidInputError } from './errors.js';
import { handleKey, metadataKey } from './handle.js';
import { allFiles, type CheckpointMetadata } from './metadata.js';
import type { Store } from './store/store.js';
import type { GcProgress, ProgressSink } from './events.js';

/** Long enough for any sane snapshot to finish; blobs younger than this are never deleted. */
export const DEFAULT_GRACE_MS = 60 * 60 * 1000;
export const DEFAULT_RETAIN = 3;
const DELETE_BATCH = 1000;

export interface GcOptions {
  /** Keep the newest N committed checkpoints, remove older owned ones (default: keep all). */
  retain?: number;
  /** Objects younger than this are never deleted (default 1 hour). */
  graceMs?: number;
  /** Report what would be removed without removing anything. */
  dryRun?: boolean;
  /** Treat checkpoints written under other job ids as owned (Flink's CLAIM mode). */
  claim?: boolean;
  /**
   * 'full' (gc): list the whole store and sweep everything unreferenced.
   * 'removed' (retention after a commit): only the blobs of the checkpoints it
   * removes, so a commit costs O(change), not O(store).
   */
  sweep?: 'full' | 'removed';
}

export interface GcResult {
  dryRun: boolean;
  /** Checkpoints removed by retention. */
  checkpointsRemoved: string[];
  checkpointsKept: number;
  /** Kept because another job id wrote them (not claimed). */
  checkpointsNotOwned: number;
  blobsRemoved: number;
  /** Leftovers of interrupted writes (temp files) removed. */
  incompleteRemoved: number;
  bytesFreed: number;
  /** Unreferenced objects kept because they are younger than the grace period. */
  youngKept: number;
  durationMs: number;
}

export async function collectGarbage(store: Store, hasher: Hasher, jobId: string, options: GcOptions = {}, progress?: ProgressSink<GcProgress>): Promise<GcResult> {
  const started = performance.now();
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const dryRun = options.dryRun === true;
  if (!(graceMs >= 0)) throw new InvalidInputError('INVALID_GRACE', `grace period ${graceMs} ms is not a duration`);
  if (options.retain !== undefined && (!Number.isSafeInteger(options.retain) || options.retain < 1)) {
    throw new InvalidInputError('INVALID_RETAIN', `retain ${options.retain} must be a whole number of checkpoints, at least 1`);
  }

  const ids = await committedCheckpointIds(store);
  const checkpoints = new Map<number, CheckpointMetadata>();
  for (const id of ids) {
    try {
      checkpoints.set(id, await loadCheckpoint(store, id, hasher));
    } catch (error) {
      if (error instanceof InvalidInputError && error.code === 'CHECKPOINT_NOT_FOUND') continue; // removed concurrently
      throw new CorruptDataError('GC_UNREADABLE_CHECKPOINT', `garbage collection stopped without deleting anything: chk-${id} in ${store.location} cannot be read (${error instanceof Error ? error.message : String(error)}); repair or remove it first`, {
        cause: error,
      });
    }
  }

  const owned = (m: CheckpointMetadata): boolean => options.claim === true || m.jobId === jobId;
  const newestFirst = [...checkpoints.keys()].sort((a, b) => b - a);
  const remove: number[] = [];
  let notOwned = 0;
  if (options.retain !== undefined) {
    for (const id of newestFirst.slice(options.retain)) {
      const m = checkpoints.get(id);
      if (m === undefined) continue;
      if (owned(m)) remove.push(id);
      else notOwned++;
    }
  }
  if (!dryRun && remove.length > 0) await store.delete(remove.map(metadataKey));
  const removed = remove.map((id) => checkpoints.get(id)).filter((m): m is CheckpointMetadata => m !== undefined);
  for (const id of remove) checkpoints.delete(id);

  const live = new Set<string>();
  for (const m of checkpoints.values()) for (const f of allFiles(m)) for (const c of f.chunks) live.add(handleKey(c.handle));

  const now = Date.now();
  let blobsRemoved = 0;
  let incompleteRemoved = 0;
  let bytesFreed = 0;
  let youngKept = 0;
  let objectsScanned = 0;
  const figures = (): GcProgress => ({ objectsScanned, blobsRemoved, incompleteRemoved, bytesFreed, youngKept });
  let batch: string[] = [];
  const flush = async (): Promise<void> => {
    if (!dryRun && batch.length > 0) await store.delete(batch);
    batch = [];
  };
  const candidates = async function* (): AsyncIterable<{ key: string; size: number; mtimeMs: number }> {
    if (options.sweep === 'removed') {
      const seen = new Set<string>();
      for (const m of removed) {
        for (const f of allFiles(m)) {
          for (const c of f.chunks) {
            const key = handleKey(c.handle);
            if (live.has(key) || seen.has(key)) continue;
            seen.add(key);
            const info = await store.stat(key);
            if (info !== undefined) yield info;
          }
        }
      }
      return;
    }
    for (const area of ['shared/', 'taskowned/']) yield* store.list(area);
  };
  /** Deletes (in batches) every object older than the grace period; younger ones are counted and kept. */
  const sweep = async (objects: AsyncIterable<{ key: string; size: number; mtimeMs: number }>, skip: (key: string) => boolean, count: () => void): Promise<void> => {
    for await (const object of objects) {
      objectsScanned++;
      progress?.update(figures);
      if (skip(object.key)) continue;
      if (now - object.mtimeMs < graceMs) {
        youngKept++;
        continue;
      }
      batch.push(object.key);
      count();
      bytesFreed += object.size;
      if (batch.length >= DELETE_BATCH) await flush();
    }
  };
  await sweep(candidates(), (key) => live.has(key), () => blobsRemoved++);
  for (const prefix of options.sweep === 'removed' ? [] : ['shared/', 'taskowned/', 'chk-']) {
    await sweep(store.listIncomplete(prefix), () => false, () => incompleteRemoved++);
  }
  await flush();
  progress?.update(figures, true);

  return {
    dryRun,
    checkpointsRemoved: remove.sort((a, b) => a - b).map((id) => `chk-${id}`),
    checkpointsKept: checkpoints.size,
    checkpointsNotOwned: notOwned,
    blobsRemoved,
    incompleteRemoved,
    bytesFreed,
    youngKept,
    durationMs: Math.round(performance.now() - started),
  };
}
