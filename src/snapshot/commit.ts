/**
 * The commit: one coordinator turns the task snapshots of all of a job's
 * tasks into checkpoint `chk-<n>`, then applies retention.
 *
 * What a commit refuses (each would let a checkpoint commit that cannot
 * restore): task snapshots of another job, of another checkpoint id (tasks
 * that started after different commits), a task listed twice, a task whose
 * session lease is not live any more (gc may have taken its packs), a
 * manifest or pack that is not in the store as the task snapshot says, a
 * chunk handle its pack's own index does not list as recorded, and —
 * unless the caller says the task is gone for good — a commit that lacks a
 * task its base checkpoint had (retention would later delete that task's
 * only copies).
 */
import { commitCheckpoint, loadCheckpoint, loadManifestBytes, type JobState } from '../checkpoint.js';
import type { Hasher } from '../format/content-key.js';
import { ConflictError, InvalidInputError, apiName, checkAborted } from '../errors.js';
import { applyRetention, DEFAULT_GRACE_MS, DEFAULT_RETAIN, type RetentionResult } from '../gc.js';
import { endSession, readSession, sessionCommittable, type Lease } from '../lease.js';
import { FORMAT_VERSION } from '../format/envelope.js';
import { KEY_ALGORITHM, readManifest, type BinaryManifest } from '../format/manifest.js';
import { readPackIndex, type PackTrailer } from '../format/pack.js';
import { checkpointDirName, printable } from '../format/names.js';
import { validateTaskSnapshot, type CheckpointMetadata, type TaskFigures, type TaskSnapshot } from '../format/metadata.js';
import { forEachBounded } from '../bounded.js';
import type { JobRef, MainThreadRuntime } from '../runtime.js';
import type { Store } from '../store/store.js';
import type { SnapshotResult } from './result.js';

export interface CommitOptions {
  /** fsync the metadata (default true). */
  durable?: boolean;
  /** After the commit keep the newest N checkpoints and delete what only older owned ones referenced (default 3). */
  retain?: number;
  /** Unreferenced objects younger than this are never deleted by retention (default 1 hour). */
  graceMs?: number;
  /** Let retention remove checkpoints written under other job ids (default: never). */
  claim?: boolean;
  /**
   * Tasks the base checkpoint has that this commit leaves out on purpose
   * (the task is gone for good: a job scaled down). Without this a commit
   * lacking a task of its base is refused, since retention would later
   * delete that task's only checkpoints.
   */
  dropTasks?: readonly string[];
  signal?: AbortSignal;
}

/** How a commit knows a task snapshot is its own work: the lease its process still holds, and the base it loaded. */
export interface TrustedTask {
  lease: Lease;
  leaseMs: number;
  base: CheckpointMetadata | undefined;
}

/**
 * Commits the checkpoint from task snapshots handed over by other processes
 * (or this one, as plain data): each is checked as strictly as a restore will
 * read it. With a cache in `ctx`, a copy of the committed metadata goes there too.
 */
export async function commitTasks(ctx: MainThreadRuntime, job: JobRef, taskSnapshots: readonly unknown[], options: CommitOptions = {}): Promise<SnapshotResult> {
  return commit(ctx, job, taskSnapshots, options, undefined);
}

/** Commits this process's own task snapshot, which it need not check: it holds the lease and the base. */
export async function commitOwnTask(ctx: MainThreadRuntime, job: JobRef, own: TrustedTask & { snapshot: TaskSnapshot }, options: CommitOptions = {}): Promise<SnapshotResult> {
  const { snapshot, ...trusted } = own;
  return commit(ctx, job, [snapshot], options, trusted);
}

async function commit({ hasher, cache }: MainThreadRuntime, { store, jobId }: JobRef, taskSnapshots: readonly unknown[], options: CommitOptions, trusted: TrustedTask | undefined): Promise<SnapshotResult> {
  const started = performance.now();
  const durable = options.durable ?? true;
  const retain = options.retain ?? DEFAULT_RETAIN;
  if (!Number.isSafeInteger(retain) || retain < 1) throw new InvalidInputError('INVALID_RETAIN', `retain ${retain} must be a whole number of checkpoints, at least 1`);
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  if (taskSnapshots.length === 0) throw new InvalidInputError('NO_TASK_SNAPSHOTS', 'a checkpoint needs at least one task snapshot; pass what snapshotTask returned for each task');
  const parts = taskSnapshots.map((t, i) => (trusted !== undefined ? (t as TaskSnapshot) : validateTaskSnapshot(t, `task snapshot #${i + 1}`)));
  const seen = new Set<string>();
  for (const t of parts) {
    if (t.jobId !== jobId) throw new InvalidInputError('TASK_SNAPSHOT_WRONG_JOB', `the task snapshot of task '${t.task}' belongs to job '${printable(t.jobId)}', not '${jobId}'; commit it with its own job`);
    if (seen.has(t.task)) throw new InvalidInputError('DUPLICATE_TASK', `task '${t.task}' appears twice in one commit; pass exactly one task snapshot per task`);
    seen.add(t.task);
  }
  // The id was fixed when the tasks started, so a writer that lost a race (or a zombie coordinator)
  // gets a conflict rather than silently committing under a later number.
  const ids = new Set(parts.map((t) => t.checkpointId));
  const bases = new Set(parts.map((t) => t.base).filter((b): b is number => b !== null));
  if (ids.size > 1 || bases.size > 1) {
    const what = ids.size > 1 ? `for different checkpoints (${[...ids].map(checkpointDirName).join(', ')})` : `on different bases (${[...bases].map(checkpointDirName).join(', ')}; a checkpoint was removed while they ran)`;
    throw new ConflictError('TASK_SNAPSHOTS_MIXED', `the task snapshots were taken ${what}; take all of them after the same commit`);
  }
  const checkpointId = parts[0]?.checkpointId ?? 1;
  const base = [...bases][0] ?? null;

  let baseMetadata = trusted?.base;
  if (base !== null && baseMetadata === undefined) baseMetadata = await loadBase(store, hasher, base, checkpointId);
  if (baseMetadata !== undefined) {
    const dropping = new Set(options.dropTasks ?? []);
    const missing = baseMetadata.tasks.map((t) => t.task).filter((t) => !seen.has(t) && !dropping.has(t));
    if (missing.length > 0) {
      throw new InvalidInputError(
        'TASK_MISSING',
        `${checkpointDirName(checkpointId)} would lack task${missing.length > 1 ? 's' : ''} ${missing.map((t) => `'${t}'`).join(', ')} of ${checkpointDirName(baseMetadata.checkpointId)}: once retention removed the older checkpoints, no checkpoint would hold ${missing.length > 1 ? 'them' : 'it'}. Commit a task snapshot for every task, or, if a task is gone for good, say so (${apiName('dropTasks')})`,
        { details: { tasks: missing.join(',') } },
      );
    }
  }

  if (trusted === undefined) await checkHandOver(store, hasher, parts);
  checkAborted(options.signal);
  // This process's own lease must cover the commit itself: renewed now unless half of it is still ahead.
  if (trusted !== undefined) await trusted.lease.ensure(trusted.leaseMs / 2);

  const sum = (pick: (f: TaskFigures) => number): number => parts.reduce((total, t) => total + pick(t.figures), 0);
  const longestTask = Math.max(...parts.map((t) => t.figures.durationMs));
  const metadata: CheckpointMetadata = {
    formatVersion: FORMAT_VERSION,
    checkpointId,
    jobId,
    createdAt: new Date().toISOString(),
    keyAlgorithm: KEY_ALGORITHM,
    base,
    tasks: parts.map((t) => ({ task: t.task, session: t.session, manifest: t.manifest, packs: t.packs, files: t.figures.files, bytes: t.figures.bytes, chunks: t.figures.chunks })),
    snapshot: {
      bytesRead: sum((f) => f.bytesRead),
      bytesWritten: sum((f) => f.bytesWritten),
      filesReused: sum((f) => f.filesReused),
      chunksNew: sum((f) => f.chunksNew),
      chunksDeduped: sum((f) => f.chunksDeduped),
      durationMs: longestTask,
    },
  };
  const { encoded, state } = await commitCheckpoint(store, metadata, hasher, durable);
  // Committed: the sessions have done their job (their packs are referenced now); they end while retention runs.
  const ending = trusted !== undefined ? trusted.lease.end() : Promise.all(parts.map((t) => endSession(store, t.session)));

  const warnings: string[] = [];
  if (cache !== undefined) {
    // A cache that cannot be written never fails a commit; it only misses this copy.
    await cache.putMetadata(store.location, checkpointId, encoded).catch((error: unknown) => warnings.push(`the local cache did not take a copy of the metadata (${error instanceof Error ? error.message : String(error)})`));
  }
  const known = new Map<number, CheckpointMetadata>([[checkpointId, metadata]]);
  if (baseMetadata !== undefined) known.set(baseMetadata.checkpointId, baseMetadata);
  let retention: RetentionResult = { checkpointsRemoved: [], packsRemoved: 0, bytesFreed: 0, warnings: [] };
  try {
    retention = await applyRetention({ hasher }, { store, jobId }, { retain, graceMs, durable, ...(options.claim === undefined ? {} : { claim: options.claim }) }, { state: stateWith(state, checkpointId), checkpoints: known });
  } catch (error) {
    // The checkpoint is committed whatever retention does: say so, and what went wrong.
    warnings.push(`retention did not run to the end (${error instanceof Error ? error.message : String(error)}); ${checkpointDirName(checkpointId)} is committed, and gc will remove what retention left`);
  }
  warnings.push(...retention.warnings.map((w) => `retention: ${w}`));
  await ending;

  const durationMs = longestTask + (performance.now() - started);
  const writtenBytes = sum((f) => f.bytesWritten);
  const packBytes = sum((f) => f.packBytes);
  const bytes = sum((f) => f.bytes);
  return {
    checkpointId,
    checkpoint: checkpointDirName(checkpointId),
    base: base === null ? null : checkpointDirName(base),
    tasks: parts.length,
    files: sum((f) => f.files),
    bytes,
    bytesRead: sum((f) => f.bytesRead),
    bytesWritten: writtenBytes + encoded.byteLength,
    filesReused: sum((f) => f.filesReused),
    bytesReused: sum((f) => f.bytesReused),
    chunksNew: sum((f) => f.chunksNew),
    chunksRewritten: sum((f) => f.chunksRewritten),
    chunksDeduped: sum((f) => f.chunksDeduped),
    packsWritten: sum((f) => f.packsWritten),
    packsRewritten: sum((f) => f.packsRewritten),
    bytesRewritten: sum((f) => f.bytesRewritten),
    bytesCached: sum((f) => f.bytesCached),
    localCopy: null,
    stages: null,
    checkpointsRemoved: retention.checkpointsRemoved,
    packsRemoved: retention.packsRemoved,
    bytesFreed: retention.bytesFreed,
    compressionRatio: packBytes > 0 ? round2(sum((f) => f.rawBytesNew) / packBytes) : 1,
    durationMs: Math.round(durationMs),
    throughputMBps: round2(bytes / 1e6 / (durationMs / 1000)),
    warnings,
  };
}

/** The job state as the commit left it: its own checkpoint counted even if a listing raced it. */
function stateWith(state: JobState, id: number): JobState {
  return state.ids.includes(id) ? state : { ...state, ids: [...state.ids, id].sort((a, b) => a - b) };
}

async function loadBase(store: Store, hasher: Hasher, base: number, checkpointId: number): Promise<CheckpointMetadata> {
  try {
    return await loadCheckpoint(store, base, hasher);
  } catch (error) {
    if (error instanceof InvalidInputError && error.code === 'CHECKPOINT_NOT_FOUND') {
      throw new ConflictError('BASE_REMOVED', `the task snapshots for ${checkpointDirName(checkpointId)} build on ${checkpointDirName(base)}, which ${store.location} no longer has; take new ones`, { cause: error });
    }
    throw error;
  }
}

/**
 * A task snapshot from another process is checked as strictly as a restore
 * will read it: its session still holds its lease (with the margin gc
 * allows), its manifest is in the store, intact, and names the packs the
 * task snapshot does, and every one of those packs is in the store at its size.
 */
async function checkHandOver(store: Store, hasher: Hasher, parts: readonly TaskSnapshot[]): Promise<void> {
  const now = Date.now();
  const sizes = new Map(parts.flatMap((t) => t.packs.map((p) => [p.key, p.size] as const)));
  await forEachBounded(parts, 16, async (t) => {
    const record = await readSession(store, hasher, t.session);
    if (record === undefined || record.task !== t.task || record.checkpointId !== t.checkpointId || !sessionCommittable(record, now)) {
      const why = record === undefined ? 'its session is gone (it expired and gc removed it)' : `its session's lease ${sessionCommittable(record, now) ? 'belongs to another task' : `ran out at ${record.expiresAt}`}`;
      throw new ConflictError('TASK_SNAPSHOT_EXPIRED', `the task snapshot of task '${t.task}' cannot be committed: ${why}, so gc may have removed what it stored; take a new one (and commit within the lease, see ${apiName('leaseMs')})`, {
        details: { task: t.task, session: t.session },
      });
    }
    let manifest: BinaryManifest;
    try {
      const entry = { task: t.task, session: t.session, manifest: t.manifest, packs: t.packs, files: 0, bytes: 0, chunks: 0 };
      manifest = readManifest(await loadManifestBytes(store, entry), hasher, `${store.location}/${t.manifest.key}`, t);
    } catch (error) {
      throw new ConflictError('TASK_SNAPSHOT_STALE', `the task snapshot of task '${t.task}' references a manifest the store does not hold intact (${error instanceof Error ? error.message : String(error)}); take a new task snapshot`, { cause: error });
    }
    const listed = new Map(manifest.packs.map((p) => [p.key, p.size]));
    if (listed.size !== t.packs.length || t.packs.some((p) => listed.get(p.key) !== p.size) || manifest.chunks.count !== t.figures.chunks) {
      throw new InvalidInputError('INVALID_TASK_SNAPSHOT', `the task snapshot of task '${t.task}' does not match its manifest ${t.manifest.key} (packs or chunks differ); pass the object snapshotTask returned, unchanged`);
    }
    // Checked while this task's manifest is at hand: a thousand tasks' manifests never sit in memory together.
    await checkHandles(store, hasher, { task: t.task, manifest }, sizes);
  });
  const stored = new Map<string, number>();
  for (const area of ['shared/', 'taskowned/']) for await (const o of store.list(area)) stored.set(o.key, o.size);
  for (const t of parts) {
    for (const p of t.packs) {
      const size = stored.get(p.key);
      if (size !== p.size) {
        throw new ConflictError('TASK_SNAPSHOT_STALE', `the task snapshot of task '${t.task}' references pack ${p.key}, which ${size === undefined ? 'is missing from' : `has ${size} bytes, not ${p.size}, in`} ${store.location}; take a new task snapshot`, {
          details: { key: p.key, task: t.task },
        });
      }
    }
  }
}

/**
 * Every chunk handle of a handed-over manifest must be a blob its pack's own
 * trailer lists, at that offset, with that length and content key: the same
 * facts restore relies on, checked with one small read per pack instead of
 * reading the data.
 */
async function checkHandles(store: Store, hasher: Hasher, { task, manifest }: { task: string; manifest: BinaryManifest }, sizes: ReadonlyMap<string, number>): Promise<void> {
  // By position in the manifest's pack table, which is what a chunk record names.
  const trailers = new Array<PackTrailer | undefined>(manifest.packs.length);
  await forEachBounded(manifest.packs.map((p, i) => ({ key: p.key, i })), 4, async ({ key, i }) => {
    const size = sizes.get(key) ?? -1;
    const { index } = await readPackIndex(store, key, size, hasher).catch((error: unknown) => {
      throw new ConflictError('TASK_SNAPSHOT_STALE', `pack ${key}, which the task snapshot of task '${task}' references, cannot be read intact from ${store.location} (${error instanceof Error ? error.message : String(error)}); take a new task snapshot`, { cause: error, details: { key, task } });
    });
    trailers[i] = index;
  });
  // Millions of chunks: compared in their binary records, no string or object made per chunk.
  const { chunks } = manifest;
  let pack = -1;
  let next = -1;
  for (const file of manifest.files) {
    for (let j = 0; j < file.chunkCount; j++) {
      const i = file.firstChunk + j;
      const p = chunks.pack(i);
      if (p !== pack) next = -1;
      pack = p;
      const trailer = trailers[p];
      const offset = chunks.offset(i);
      const at = trailer?.find(offset, next) ?? -1;
      next = at + 1;
      if (trailer === undefined || at < 0 || !trailer.matches(at, chunks.data, chunks.rawLength(i), chunks.length(i), chunks.keyAt(i))) {
        const key = manifest.packs[p]?.key ?? `#${p}`;
        throw new InvalidInputError(
          'INVALID_TASK_SNAPSHOT',
          `the task snapshot of task '${task}' references chunk ${j} of ${printable(file.path)} at offset ${offset} of pack ${key}, which that pack's index ${at < 0 ? 'does not list' : 'lists with another key or length'}; the checkpoint could not restore. Take a new task snapshot`,
          { details: { task, pack: key, offset } },
        );
      }
    }
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
