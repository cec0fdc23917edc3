/**
 * Retention and garbage collection, decided by invariants rather than by
 * timestamps a store keeps:
 *
 * - A pack or manifest is deleted only when no kept checkpoint references it,
 *   the writer session in its name is dead (lease.ts), and the time in its
 *   name is older than the grace period. No mtime or LastModified is read.
 * - The order of the listings is what makes this safe against writers
 *   running concurrently: packs are listed first, sessions second,
 *   checkpoints last. A writer writes its session before its first pack and
 *   deletes it only after its commit, so any pack gc listed either belongs
 *   to a session gc then sees live, or to one whose commit (if it made one)
 *   gc's later checkpoint listing sees.
 * - Retention never removes the newest checkpoint (retain >= 1) nor one it
 *   cannot read, keeps the newest `retain` it can read, removes a
 *   checkpoint by raising the fence (its tombstone) before deleting its
 *   metadata, and removes only checkpoints this job owns unless claimed.
 * - gc deletes only names it recognises as its own (format 2 packs,
 *   manifests, sessions, temp files); anything else under the job root — a
 *   nested job, an object of another format version, a stray file — is
 *   counted and reported, never deleted. An unreadable checkpoint, or one of
 *   a format this chunkpoint does not know, stops gc before it deletes
 *   anything: the mark would be incomplete.
 */
import { loadCheckpoint, readJobState, removeCheckpoints, type JobState } from './checkpoint.js';
import type { Hasher } from './format/content-key.js';
import { ChunkpointError, CorruptDataError, InvalidInputError, apiName } from './errors.js';
import { isFormat1BlobKey, parseStoreKey, sessionKey, SESSIONS_PREFIX, type StoreObjectName } from './format/names.js';
import type { CheckpointMetadata } from './format/metadata.js';
import { readSession, sessionLive } from './lease.js';
import type { SessionRecord } from './format/session.js';
import type { Store } from './store/store.js';
import type { JobRef, MainThreadRuntime } from './runtime.js';

/** gc streams the store's listing, so it has no totals: only running counts. */
export interface GcProgress {
  objectsScanned: number;
  /** Ends at `result.packsRemoved`. */
  packsRemoved: number;
  incompleteRemoved: number;
  bytesFreed: number;
  youngKept: number;
}

/** Long enough for any clock disagreement and any sane commit hand-off; unreferenced objects younger than this stay. */
export const DEFAULT_GRACE_MS = 60 * 60 * 1000;
/**
 * Interrupted writes that no session can protect — a session's own first
 * write, a commit's `_metadata`, a tombstone — are kept at least this long
 * whatever the grace period: such a write in progress has no other
 * protection, and a small put never takes minutes.
 */
export const DEFAULT_WRITE_GRACE_MS = 10 * 60 * 1000;
export const DEFAULT_RETAIN = 3;
const DELETE_BATCH = 1000;
const EXAMPLES = 5;

export interface GcOptions {
  /** Keep the newest N committed checkpoints, remove older owned ones (default: keep all). */
  retain?: number;
  /** Unreferenced objects younger than this (by the time in their name) are never deleted (default 1 hour). */
  graceMs?: number;
  /** Report what would be removed without removing anything. */
  dryRun?: boolean;
  /** Treat checkpoints written under other job ids as owned (Flink's CLAIM mode). */
  claim?: boolean;
  /** fsync the tombstones retention writes (default true). */
  durable?: boolean;
  /** Interrupted writes no live session protects are kept at least this long (default 10 min; 0 only when no writer runs). */
  writeGraceMs?: number;
}

export interface GcResult {
  dryRun: boolean;
  /** Checkpoints removed by retention. */
  checkpointsRemoved: string[];
  checkpointsKept: number;
  /** Kept because another job id wrote them (not claimed). */
  checkpointsNotOwned: number;
  packsRemoved: number;
  manifestsRemoved: number;
  /** Session objects of dead writers removed. */
  sessionsRemoved: number;
  /** Leftovers of interrupted writes (temp files, incomplete uploads) removed. */
  incompleteRemoved: number;
  bytesFreed: number;
  /** Unreferenced objects kept because they are younger than the grace period. */
  youngKept: number;
  /** Unreferenced objects kept because the session that wrote them is live (a snapshot in flight). */
  liveKept: number;
  /** Objects under the job root that are not chunkpoint's (never deleted), and a few of their keys. */
  unknownObjects: number;
  unknownExamples: string[];
  durationMs: number;
}

function checkOptions(options: { retain?: number; graceMs?: number }): void {
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  if (!(graceMs >= 0) || !Number.isFinite(graceMs)) throw new InvalidInputError('INVALID_GRACE', `grace period ${graceMs} ms is not a duration`);
  if (options.retain !== undefined && (!Number.isSafeInteger(options.retain) || options.retain < 1)) {
    throw new InvalidInputError('INVALID_RETAIN', `retain ${options.retain} must be a whole number of checkpoints, at least 1`);
  }
}

/** Loads every committed checkpoint; any that cannot be read stops the caller before it deletes anything. */
async function loadAll(store: Store, hasher: Hasher, ids: readonly number[]): Promise<Map<number, CheckpointMetadata>> {
  const out = new Map<number, CheckpointMetadata>();
  for (const id of ids) {
    try {
      out.set(id, await loadCheckpoint(store, id, hasher));
    } catch (error) {
      if (error instanceof InvalidInputError && error.code === 'CHECKPOINT_NOT_FOUND') continue; // removed concurrently
      if (error instanceof ChunkpointError && error.code === 'FORMAT_UNSUPPORTED') throw error;
      throw new CorruptDataError('GC_UNREADABLE_CHECKPOINT', `garbage collection stopped without deleting anything: chk-${id} in ${store.location} cannot be read (${error instanceof Error ? error.message : String(error)}); repair it, or drop it with ${apiName('drop()')}, first`, {
        cause: error,
      });
    }
  }
  return out;
}

/** The checkpoints retention removes: beyond the newest `retain`, owned by this job. Never the newest. */
function toRemove(ids: readonly number[], retain: number | undefined, owned: (id: number) => boolean): { remove: number[]; notOwned: number } {
  const remove: number[] = [];
  let notOwned = 0;
  if (retain === undefined) return { remove, notOwned };
  for (const id of [...ids].sort((a, b) => b - a).slice(Math.max(1, retain))) {
    if (owned(id)) remove.push(id);
    else notOwned++;
  }
  return { remove, notOwned };
}

/** Every object (pack, manifest) a checkpoint keeps alive. */
function referenced(metadata: CheckpointMetadata): string[] {
  return metadata.tasks.flatMap((t) => [t.manifest.key, ...t.packs.map((p) => p.key)]);
}

function sizesOf(metadata: CheckpointMetadata): Map<string, number> {
  return new Map(metadata.tasks.flatMap((t) => [[t.manifest.key, t.manifest.size] as const, ...t.packs.map((p) => [p.key, p.size] as const)]));
}

export async function collectGarbage({ hasher, progress }: MainThreadRuntime<GcProgress>, { store, jobId }: JobRef, options: GcOptions = {}): Promise<GcResult> {
  const started = performance.now();
  checkOptions(options);
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const dryRun = options.dryRun === true;
  const result: GcResult = {
    dryRun,
    checkpointsRemoved: [],
    checkpointsKept: 0,
    checkpointsNotOwned: 0,
    packsRemoved: 0,
    manifestsRemoved: 0,
    sessionsRemoved: 0,
    incompleteRemoved: 0,
    bytesFreed: 0,
    youngKept: 0,
    liveKept: 0,
    unknownObjects: 0,
    unknownExamples: [],
    durationMs: 0,
  };
  let objectsScanned = 0;
  const figures = (): GcProgress => ({ objectsScanned, packsRemoved: result.packsRemoved, incompleteRemoved: result.incompleteRemoved, bytesFreed: result.bytesFreed, youngKept: result.youngKept });

  // 1. Objects first (see the module comment for why this order).
  const objects: { key: string; size: number; name: StoreObjectName | undefined }[] = [];
  const unknown = (key: string): void => {
    result.unknownObjects++;
    if (result.unknownExamples.length < EXAMPLES) result.unknownExamples.push(key);
  };
  for (const area of ['shared/', 'taskowned/']) {
    for await (const o of store.list(area)) {
      objectsScanned++;
      progress?.update(figures);
      const name = parseStoreKey(o.key);
      if (name?.kind === 'pack' || name?.kind === 'manifest') objects.push({ ...o, name });
      else unknown(o.key);
    }
  }
  const incomplete: { key: string; target: string; timeMs: number }[] = [];
  for await (const w of store.listIncomplete('')) incomplete.push(w);
  // 2. Then the sessions: every pack listed above had its session written before it.
  const sessions = new Map<string, { record: SessionRecord | undefined; timeMs: number; readable: boolean }>();
  for await (const o of store.list(SESSIONS_PREFIX)) {
    const name = parseStoreKey(o.key);
    if (name?.kind !== 'session') {
      unknown(o.key);
      continue;
    }
    let record: SessionRecord | undefined;
    let readable = true;
    try {
      record = await readSession(store, hasher, name.session);
    } catch (error) {
      if (!(error instanceof CorruptDataError)) throw error;
      readable = false;
    }
    sessions.set(name.session, { record, timeMs: name.timeMs, readable });
  }
  // 3. Then the checkpoints.
  const state = await readJobState(store);
  const checkpoints = await loadAll(store, hasher, state.ids);
  const now = Date.now();
  const live = (session: string): boolean => {
    const s = sessions.get(session);
    if (s === undefined) return false;
    // A session object gc cannot read is trusted as live while it is young: it may be a writer's.
    return s.readable ? sessionLive(s.record, now) : now - s.timeMs < graceMs;
  };

  const { remove, notOwned } = toRemove([...checkpoints.keys()], options.retain, (id) => options.claim === true || checkpoints.get(id)?.jobId === jobId);
  result.checkpointsNotOwned = notOwned;
  if (!dryRun && (remove.length > 0 || state.leftovers.length > 0)) await removeCheckpoints(store, remove, state, options.durable ?? true);
  for (const id of remove) checkpoints.delete(id);
  result.checkpointsRemoved = remove.sort((a, b) => a - b).map((id) => `chk-${id}`);
  result.checkpointsKept = checkpoints.size;
  const marked = new Set([...checkpoints.values()].flatMap(referenced));

  let batch: string[] = [];
  const flush = async (): Promise<void> => {
    if (!dryRun && batch.length > 0) await store.delete(batch);
    batch = [];
  };
  const drop = async (key: string): Promise<void> => {
    batch.push(key);
    if (batch.length >= DELETE_BATCH) await flush();
  };
  for (const o of objects) {
    const name = o.name;
    if (name === undefined || (name.kind !== 'pack' && name.kind !== 'manifest')) continue;
    if (marked.has(o.key)) continue;
    if (live(name.session)) {
      result.liveKept++;
      continue;
    }
    if (now - name.timeMs < graceMs) {
      result.youngKept++;
      continue;
    }
    await drop(o.key);
    if (name.kind === 'pack') result.packsRemoved++;
    else result.manifestsRemoved++;
    result.bytesFreed += o.size;
    progress?.update(figures);
  }
  const writeGraceMs = Math.max(graceMs, options.writeGraceMs ?? DEFAULT_WRITE_GRACE_MS);
  for (const w of incomplete) {
    const target = parseStoreKey(w.target);
    if (target !== undefined && 'session' in target && live(target.session)) {
      result.liveKept++;
      continue;
    }
    // A pack's or manifest's session was written before it, so a dead session means an abandoned write;
    // anything else (a session's own first write, a commit's metadata, a tombstone) gets the write grace.
    const sessionBound = target?.kind === 'pack' || target?.kind === 'manifest';
    if (now - w.timeMs < (sessionBound ? graceMs : writeGraceMs)) {
      result.youngKept++;
      continue;
    }
    await drop(w.key);
    result.incompleteRemoved++;
  }
  for (const [session, s] of sessions) {
    // A dead session's object tells nothing its absence does not, once its writer's objects are judged by age alone.
    const ended = s.record === undefined ? now - s.timeMs >= graceMs : now - Date.parse(s.record.expiresAt) >= graceMs;
    if (!live(session) && ended) {
      await drop(sessionKey(session));
      result.sessionsRemoved++;
    }
  }
  await flush();
  progress?.update(figures, true);
  result.durationMs = Math.round(performance.now() - started);
  return result;
}

export interface RetentionResult {
  checkpointsRemoved: string[];
  packsRemoved: number;
  bytesFreed: number;
  /** What retention could not do, said rather than thrown: the commit itself succeeded. */
  warnings: string[];
}

/**
 * Retention right after a commit: removes checkpoints beyond the newest
 * `retain` readable ones, and the packs and manifests only they referenced — decided from
 * `_metadata` alone (one read per checkpoint, the ones the commit already
 * holds not even that), so a commit costs O(change), not O(store). Objects
 * younger than the grace period stay for gc; so does everything when a kept
 * checkpoint cannot be read.
 */
export async function applyRetention(
  { hasher }: MainThreadRuntime,
  { store, jobId }: JobRef,
  options: { retain: number; graceMs?: number; claim?: boolean; durable: boolean },
  known: { state: JobState; checkpoints: ReadonlyMap<number, CheckpointMetadata> },
): Promise<RetentionResult> {
  checkOptions(options);
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const out: RetentionResult = { checkpointsRemoved: [], packsRemoved: 0, bytesFreed: 0, warnings: [] };
  const { state } = known;
  const metadata = new Map(known.checkpoints);
  const unreadable = new Set<number>();
  const load = async (id: number): Promise<CheckpointMetadata | undefined> => {
    const have = metadata.get(id);
    if (have !== undefined || unreadable.has(id)) return have;
    try {
      const m = await loadCheckpoint(store, id, hasher);
      metadata.set(id, m);
      return m;
    } catch (error) {
      unreadable.add(id);
      if (error instanceof InvalidInputError && error.code === 'CHECKPOINT_NOT_FOUND') return undefined;
      out.warnings.push(`chk-${id} cannot be read (${error instanceof Error ? error.message : String(error)}); it is kept, and does not count as one of the ${options.retain} retained: drop it with ${apiName('drop()')} once it is not needed`);
      return undefined;
    }
  };
  const retain = Math.max(1, options.retain);
  const newestFirst = [...state.ids].sort((a, b) => b - a);
  if (newestFirst.length <= retain && state.leftovers.length === 0) return out;
  // The newest `retain` checkpoints that can be restored are kept: a damaged one is kept too (only an
  // explicit drop removes it) but is not counted, or a damaged newest checkpoint would cost a good one.
  const kept: number[] = [];
  const candidates: number[] = [];
  let restorable = 0;
  for (const id of newestFirst) {
    if (restorable >= retain) {
      candidates.push(id);
      continue;
    }
    kept.push(id);
    if ((await load(id)) !== undefined) restorable++;
  }
  const remove: number[] = [];
  const removed: CheckpointMetadata[] = [];
  for (const id of candidates) {
    const m = await load(id);
    // An unreadable checkpoint is not removed by retention: its owner is unknown (drop it explicitly).
    if (m === undefined || !(options.claim === true || m.jobId === jobId)) {
      kept.push(id);
      continue;
    }
    remove.push(id);
    removed.push(m);
  }
  for (const id of state.leftovers) {
    const m = await load(id);
    if (m !== undefined) removed.push(m);
  }
  let sweepable = true;
  const live = new Set<string>();
  for (const id of kept) {
    const m = await load(id);
    if (m === undefined) sweepable = false;
    else for (const key of referenced(m)) live.add(key);
  }
  const now = Date.now();
  const sweep = new Map<string, number>();
  if (sweepable) {
    for (const m of removed) {
      for (const [key, size] of sizesOf(m)) {
        const name = parseStoreKey(key);
        if (live.has(key) || name === undefined || !('timeMs' in name) || now - name.timeMs < graceMs) continue;
        sweep.set(key, size);
      }
    }
  } else if (remove.length > 0) {
    out.warnings.push('no packs were freed: a kept checkpoint cannot be read, so what it references is unknown; run gc after repairing or dropping it');
  }
  await removeCheckpoints(store, remove, state, options.durable, [...sweep.keys()]);
  out.checkpointsRemoved = remove.sort((a, b) => a - b).map((id) => `chk-${id}`);
  out.packsRemoved = [...sweep.keys()].filter((key) => parseStoreKey(key)?.kind === 'pack').length;
  out.bytesFreed = [...sweep.values()].reduce((a, b) => a + b, 0);
  return out;
}

/** For messages about job roots of another format: how many format-1 blobs a listing holds. */
export function countFormat1(keys: Iterable<string>): number {
  let n = 0;
  for (const key of keys) if (isFormat1BlobKey(key)) n++;
  return n;
}
