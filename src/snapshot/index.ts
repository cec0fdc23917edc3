/**
 * Snapshot coordinator (main thread), by stage:
 *
 *   state-dir.ts  list the state directory
 *   (here)        find the base, take a writer session (lease.ts)
 *   plan.ts       decide what the base already holds soundly
 *   write.ts      store the rest in packs on the worker pool, publish them
 *   (here)        write the task's manifest -> a task snapshot
 *   commit.ts     commit the checkpoint from every task's snapshot, retention
 *
 * The coordinator never touches chunk bytes itself.
 */
import { join, resolve } from 'node:path';
import type { CacheOptions } from '../cache.js';
import { checkNotNested, loadCheckpoint, loadManifest, nextCheckpointId, readJobState, type JobState } from '../checkpoint.js';
import { buildDedupeIndex } from '../dedupe-index.js';
import { ChunkpointError, CorruptDataError, InternalError, InvalidInputError, abortedError, checkAborted } from '../errors.js';
import { isWithin, resolvedPath } from '../local-paths.js';
import { MAX_CHUNK_SIZE } from '../format/blob.js';
import type { Hasher } from '../format/content-key.js';
import { FORMAT_VERSION } from '../format/envelope.js';
import { KEY_ALGORITHM, encodeManifest, manifestChecksum, readManifest, type ChunkRef, type FileEntry, type PackRef, type TaskManifest } from '../format/manifest.js';
import { TASK_SNAPSHOT_FORMAT, type CheckpointMetadata, type TaskEntry, type TaskSnapshot } from '../format/metadata.js';
import { DEFAULT_TASK, checkTaskId, checkpointDirName, manifestKey } from '../format/names.js';
import { DEFAULT_PACK_SIZE, MAX_PACK_SIZE, MIN_PACK_SIZE } from '../format/pack.js';
import { DEFAULT_RETAIN } from '../gc.js';
import { DEFAULT_LEASE_MS, Lease, checkLeaseMs } from '../lease.js';
import type { JobRef, Runtime, TaskRef } from '../runtime.js';
import type { Store } from '../store/store.js';
import { commitOwnTask, type CommitOptions } from './commit.js';
import { packOf, planReuse, planRewrites, type PendingRun, type ReusePlan } from './plan.js';
import { DEFAULT_IMMUTABLE, immutableMatcher, listStateDir, type StateFile } from './state-dir.js';
import { keepLocalCopy, refuseLocalCopyInside, type LocalCopyOptions } from '../local-copy.js';
import { packBatches, writePending, type WriteOutcome } from './write.js';

export { commitTasks, type CommitOptions } from './commit.js';
export type { SnapshotResult, SnapshotStages } from './result.js';
import type { SnapshotResult, SnapshotStages } from './result.js';
export { DEFAULT_IMMUTABLE, immutableMatcher } from './state-dir.js';

export interface SnapshotProgress {
  /** Logical state bytes done: files reused without reading, plus chunks stored. Ends at `result.bytes`. */
  bytesDone: number;
  /** Logical size of the state directory. */
  bytesTotal: number;
  /** State bytes read by workers so far. Ends at `result.bytesRead`. */
  bytesRead: number;
  /** Pack bytes written to the store so far (without manifests and `_metadata`). */
  bytesWritten: number;
  /** Files reused or with every chunk stored. Ends at `result.files`. */
  filesDone: number;
  filesTotal: number;
  filesReused: number;
  chunksNew: number;
  chunksDeduped: number;
}

export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

export interface SnapshotOptions extends CommitOptions {
  /** Chunk size in bytes (default 1 MiB). */
  chunkSize?: number;
  /** Pack size: at most this many bytes of chunks per pack object (default 32 MiB). */
  packSize?: number;
  /**
   * Which files are never rewritten in place once they exist (basename globs
   * with `*` and `?`, or a predicate on the relative path). Such a file with the
   * same name, size and mtime as in the last checkpoint is reused without being read.
   * Default: `*.sst`, `*.blob`.
   */
  immutable?: readonly string[] | ((relPath: string) => boolean);
  /** The writer session's lease: renewed while the snapshot runs; a task snapshot must be committed within it (default 10 min). */
  leaseMs?: number;
  /** Every chunk this snapshot reads also goes into this local cache, with the metadata. */
  cache?: CacheOptions;
  /**
   * Task-local recovery: keep the snapshotted files in this directory
   * (immutable ones as hard links: put it on the state's volume), for a
   * restore on this machine to take them from there (`RestoreOptions.localCopy`).
   */
  localCopy?: LocalCopyOptions;
  /** Task id inside the checkpoint (default `main`). */
  task?: string;
}

export type TaskSnapshotOptions = Pick<SnapshotOptions, 'chunkSize' | 'packSize' | 'immutable' | 'durable' | 'leaseMs' | 'cache' | 'localCopy' | 'signal'>;

/** A task snapshot, and what this process still holds of it: its lease and the base it loaded. */
interface StoredTask {
  snapshot: TaskSnapshot;
  lease: Lease;
  leaseMs: number;
  base: CheckpointMetadata | undefined;
  warnings: string[];
  /** Brings the task-local copy up to this snapshot (with `localCopy`). */
  keepLocal: (() => Promise<{ files: number; bytes: number; warnings: string[] }>) | undefined;
  stages: Omit<SnapshotStages, 'commitMs' | 'localCopyMs'>;
}

/**
 * One task's part of a checkpoint: stores every chunk the base checkpoint
 * does not soundly hold, writes the task's manifest, and returns a task
 * snapshot (plain data) for `commitTasks`. Commits nothing; the session's
 * lease, extended at hand-over, keeps gc away until the commit.
 */
export async function snapshotTask(ctx: Runtime<SnapshotProgress>, stateDir: string, task: TaskRef, options: TaskSnapshotOptions = {}): Promise<TaskSnapshot> {
  const stored = await storeTask(ctx, stateDir, task, options);
  try {
    await stored.lease.renew();
  } catch (error) {
    await stored.lease.end();
    throw error;
  }
  stored.lease.stop();
  await stored.keepLocal?.();
  return { ...stored.snapshot, expiresAt: new Date(stored.lease.expires).toISOString() };
}

/** Snapshots one state directory as the job's next checkpoint: one task, committed at once. */
export async function snapshot(ctx: Runtime<SnapshotProgress>, stateDir: string, job: JobRef, options: SnapshotOptions = {}): Promise<SnapshotResult> {
  const retain = options.retain ?? DEFAULT_RETAIN;
  if (!Number.isSafeInteger(retain) || retain < 1) throw new InvalidInputError('INVALID_RETAIN', `retain ${retain} must be a whole number of checkpoints, at least 1`);
  const stored = await storeTask(ctx, stateDir, { ...job, task: options.task ?? DEFAULT_TASK }, options);
  try {
    const committing = performance.now();
    // The commit's cache is the opened index (ctx.cache), not the options that name it.
    const result = await commitOwnTask({ hasher: ctx.hasher, cache: ctx.cache }, job, { snapshot: stored.snapshot, lease: stored.lease, leaseMs: stored.leaseMs, base: stored.base }, options);
    result.warnings.unshift(...stored.warnings);
    const commitMs = Math.round(performance.now() - committing);
    const keeping = performance.now();
    const kept = await stored.keepLocal?.();
    if (kept !== undefined) result.warnings.push(...kept.warnings);
    const localCopy = kept === undefined ? null : { files: kept.files, bytes: kept.bytes };
    return { ...result, localCopy, stages: { ...stored.stages, commitMs, localCopyMs: Math.round(performance.now() - keeping) } };
  } catch (error) {
    await stored.lease.end();
    throw error;
  }
}

/** Validated settings of one task snapshot. */
interface TaskSettings {
  chunkSize: number;
  packSize: number;
  leaseMs: number;
  durable: boolean;
  isImmutable: (relPath: string) => boolean;
}

function taskSettings(options: TaskSnapshotOptions): TaskSettings {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 4096 || chunkSize > MAX_CHUNK_SIZE) {
    throw new InvalidInputError('INVALID_CHUNK_SIZE', `chunk size ${chunkSize} is out of range; use 4 KiB..${MAX_CHUNK_SIZE / (1024 * 1024)} MiB`);
  }
  const packSize = options.packSize ?? DEFAULT_PACK_SIZE;
  if (!Number.isSafeInteger(packSize) || packSize < MIN_PACK_SIZE || packSize > MAX_PACK_SIZE || packSize < chunkSize) {
    throw new InvalidInputError('INVALID_PACK_SIZE', `pack size ${packSize} is out of range; use 1 MiB..1 GiB, and at least the chunk size`);
  }
  const leaseMs = checkLeaseMs(options.leaseMs ?? DEFAULT_LEASE_MS);
  const durable = options.durable ?? true;
  const isImmutable = immutableMatcher(options.immutable ?? DEFAULT_IMMUTABLE);
  return { chunkSize, packSize, leaseMs, durable, isImmutable };
}

/** What the stages after the lease share: where they write, under which session, and what stops them. */
interface TaskSession {
  ref: TaskRef;
  settings: TaskSettings;
  lease: Lease;
  /** The caller's signal, or the lease's loss. */
  signal: AbortSignal;
}

/**
 * The stages, in order: list the state directory and find the base (at
 * once), take the session's lease, plan reuse, store the rest, write the
 * manifest. Returns the task snapshot with what this process still holds of it.
 */
async function storeTask(ctx: Runtime<SnapshotProgress>, stateDir: string, ref: TaskRef, options: TaskSnapshotOptions): Promise<StoredTask> {
  const { pool, hasher, progress } = ctx;
  const { store, jobId, task } = ref;
  const started = performance.now();
  checkTaskId(task);
  const settings = taskSettings(options);
  checkAborted(options.signal);

  const root = resolve(stateDir);
  if (store.spec.type === 'fs') await refuseStoreInState(root, store.spec.root);
  if (options.localCopy !== undefined) await refuseLocalCopyInside(options.localCopy, root, 'state directory');
  pool.warm();
  // The state directory and the job are independent: list both at once.
  const listing = listStateDir(root, settings.isImmutable);
  listing.catch(() => undefined);
  const warnings: string[] = [];
  const found = await findBase(store, hasher, task, warnings);
  const { files, directories } = await listing;
  const listedAt = performance.now();
  if (files.length === 0) throw new InvalidInputError('STATE_DIR_EMPTY', `state directory ${root} holds no files; there is nothing to snapshot (check the path)`);
  const { state, base } = found;
  const checkpointId = nextCheckpointId(state);
  if (state.ids.length === 0 && state.fence === 0) await checkNotNested(store);

  // The session's lease (lost, it aborts everything this task does), taken while the base's manifest
  // and the listing of its packs come in: that listing tells which packs are still whole, so reuse
  // never spreads damage.
  const abort = new AbortController();
  const signal = options.signal === undefined ? abort.signal : AbortSignal.any([options.signal, abort.signal]);
  const baseTask = base?.tasks.find((t) => t.task === task);
  const loading = base === undefined || baseTask === undefined ? Promise.resolve(undefined) : loadBaseManifest(store, hasher, base, baseTask, warnings);
  const listing2 = baseTask === undefined ? Promise.resolve(new Map<string, number>()) : listPacks(store, task);
  loading.catch(() => undefined);
  listing2.catch(() => undefined);
  const lease = await Lease.acquire(store, hasher, { jobId, task, base: base?.checkpointId ?? null, checkpointId, leaseMs: settings.leaseMs, durable: settings.durable }, (error) => abort.abort(error));
  const session: TaskSession = { ref, settings, lease, signal };
  try {
    const baseManifest = await loading;
    const listed = await listing2;
    const plan = planReuse(files, baseManifest, listed, settings.chunkSize);
    for (const key of plan.packsDamaged) warnings.push(`pack ${key} of ${checkpointDirName(base?.checkpointId ?? 0)} is missing or damaged in the store; its chunks were read again from the state directory`);
    const figures = initialFigures(files, plan);
    progress?.update(() => ({ ...figures }), true);
    const plannedAt = performance.now();
    const stored = await storeChunks(ctx, session, files, plan, baseManifest, figures);
    const { written } = stored;
    const wroteAt = performance.now();

    const { key, encoded, packs } = await writeManifest(ctx, session, { base, directories, entries: plan.entries, baseManifest, written });
    progress?.update(() => ({ ...figures, bytesWritten: figures.bytesWritten + encoded.byteLength }), true);

    // The local copy is updated once the snapshot holds (snapshot: after its commit), so a failed
    // commit leaves it serving the last committed checkpoint.
    const localCopyOptions = options.localCopy;
    const absPaths = new Map(files.map((f) => [f.relPath, f.absPath]));
    const keepLocal =
      localCopyOptions === undefined
        ? undefined
        : () => keepLocalCopy(hasher, localCopyOptions, store.location, task, plan.entries.map((entry) => ({ entry, absPath: absPaths.get(entry.path) ?? join(root, ...entry.path.split('/')) })));

    const snapshot: TaskSnapshot = {
      format: TASK_SNAPSHOT_FORMAT,
      jobId,
      task,
      base: base?.checkpointId ?? null,
      checkpointId,
      session: lease.session,
      startedAt: new Date(lease.startedAt).toISOString(),
      expiresAt: new Date(lease.expires).toISOString(),
      keyAlgorithm: KEY_ALGORITHM,
      manifest: { key, size: encoded.byteLength, checksum: manifestChecksum(encoded) },
      packs,
      figures: {
        files: files.length,
        bytes: figures.bytesTotal,
        bytesRead: written.bytesRead,
        bytesWritten: written.bytesWritten + encoded.byteLength,
        filesReused: plan.filesReused,
        bytesReused: plan.bytesReused,
        chunksNew: written.chunksNew,
        chunksRewritten: written.chunksRewritten,
        chunksDeduped: written.chunksDeduped,
        chunks: plan.entries.reduce((n, f) => n + f.chunks.length, 0),
        bytesCached: written.bytesCached,
        rawBytesNew: written.rawBytesNew,
        packBytes: written.bytesWritten,
        packsWritten: written.packs.length,
        packsRewritten: plan.packsRewritten + stored.packsRewritten,
        bytesRewritten: plan.bytesRewritten + stored.bytesRewritten,
        durationMs: Math.round(performance.now() - started),
      },
    };
    const round = (ms: number): number => Math.round(ms);
    const stages = {
      listMs: round(listedAt - started),
      planMs: round(plannedAt - listedAt),
      writeMs: round(wroteAt - plannedAt - written.publishMs),
      publishMs: round(written.publishMs),
      manifestMs: round(performance.now() - wroteAt),
      workers: { readMs: round(written.stages.readMs), hashMs: round(written.stages.hashMs), compressMs: round(written.stages.compressMs), writeMs: round(written.stages.writeMs) },
    };
    return { snapshot, lease, leaseMs: settings.leaseMs, base, warnings, keepLocal, stages };
  } catch (error) {
    await lease.end();
    if (signal.aborted && !(error instanceof ChunkpointError && error.code === 'LEASE_LOST')) throw abortedError(signal);
    throw error;
  }
}

/** The progress figures once the plan is known: what it reuses is done already. */
function initialFigures(files: readonly StateFile[], plan: ReusePlan): SnapshotProgress {
  return {
    bytesDone: plan.bytesReused,
    bytesTotal: files.reduce((sum, f) => sum + f.size, 0),
    bytesRead: 0,
    bytesWritten: 0,
    filesDone: plan.filesReused + files.filter((f) => f.size === 0).length,
    filesTotal: files.length,
    filesReused: plan.filesReused,
    chunksNew: 0,
    chunksDeduped: 0,
  };
}

/**
 * Stores what the plan leaves pending on the pool, then rewrites what would
 * keep base packs alive for too few of their bytes. `figures` advance as
 * batches complete.
 */
async function storeChunks(
  { pool, cache, progress }: Runtime<SnapshotProgress>,
  { ref, settings, lease, signal }: TaskSession,
  files: readonly StateFile[],
  plan: ReusePlan,
  baseManifest: TaskManifest | undefined,
  figures: SnapshotProgress,
): Promise<{ written: WriteOutcome; packsRewritten: number; bytesRewritten: number }> {
  const batchesLeft = new Map<string, number>();
  /** Stores `pending` on the pool; `counted` says whether its bytes are new to the progress figures (a rewrite's were counted as reused). */
  const store_ = async (pending: PendingRun[], reusable: readonly ChunkRef[], counted: boolean): Promise<WriteOutcome> => {
    const batches = packBatches(pending, settings.packSize);
    if (counted) for (const batch of batches) for (const { run } of batch.parts) batchesLeft.set(run.file.relPath, (batchesLeft.get(run.file.relPath) ?? 0) + 1);
    return writePending(
      {
        pool,
        store: ref.store,
        task: ref.task,
        session: lease.session,
        packSize: settings.packSize,
        durable: settings.durable,
        signal,
        dedupe: reusable.length === 0 ? undefined : { table: buildDedupeIndex(reusable), chunks: reusable },
        cache,
        onBatch(batch, result) {
          if (counted) figures.bytesDone += batch.rawBytes;
          figures.bytesRead += result.bytesRead;
          figures.bytesWritten += result.bytesWritten;
          for (const c of result.chunks) if ('reused' in c || c.repeat === true) figures.chunksDeduped++;
          else figures.chunksNew++;
          if (counted) {
            for (const { run } of batch.parts) {
              const left = (batchesLeft.get(run.file.relPath) ?? 1) - 1;
              batchesLeft.set(run.file.relPath, left);
              if (left === 0) figures.filesDone++;
            }
          }
          progress?.update(() => ({ ...figures }));
        },
      },
      batches,
    ).catch((error: unknown) => {
      throw signal.aborted ? abortedError(signal) : error;
    });
  };
  const written = await store_(plan.pending, plan.reusable, true);
  // Space: base packs the new checkpoint would keep alive for less than half of their bytes are not
  // kept alive by it; their chunks go into new packs (and are not deduplicated back into them).
  const basePacks = new Map((baseManifest?.packs ?? []).filter((p) => !plan.packsDamaged.includes(p.key)).map((p) => [p.key, p.size] as const));
  const rewrites = planRewrites(files, plan.entries, basePacks);
  if (rewrites.pending.length > 0) {
    // The rewrite deduplicates only against what the new checkpoint keeps anyway (the base packs it still
    // uses, the packs the first pass wrote): never into a sparse pack, nor back into a base pack it had let go.
    const kept = plan.entries.flatMap((e) => e.chunks).filter((c) => !rewrites.sparse.has(packOf(c)));
    const again = await store_(rewrites.pending, kept, false);
    for (const k of ['bytesRead', 'bytesWritten', 'rawBytesNew', 'chunksNew', 'chunksRewritten', 'chunksDeduped', 'bytesCached', 'publishMs'] as const) written[k] += again[k];
    for (const k of ['readMs', 'hashMs', 'compressMs', 'writeMs'] as const) written.stages[k] += again.stages[k];
    written.packs.push(...again.packs);
  }
  return { written, packsRewritten: rewrites.sparse.size, bytesRewritten: rewrites.bytes };
}

/**
 * Writes the task's manifest: every file's chunks, and every pack a chunk
 * lives in with its size (checked at every reuse). What restore would refuse
 * is never written: the reader's own validator checks it first.
 */
async function writeManifest(
  { hasher }: Runtime<SnapshotProgress>,
  { ref, settings, lease }: TaskSession,
  parts: { base: CheckpointMetadata | undefined; directories: TaskManifest['directories']; entries: FileEntry[]; baseManifest: TaskManifest | undefined; written: WriteOutcome },
): Promise<{ key: string; encoded: Buffer; packs: PackRef[] }> {
  const { store, jobId, task } = ref;
  const { base, directories, entries, baseManifest, written } = parts;
  const sizes = new Map<string, number>([...(baseManifest?.packs ?? []).map((p) => [p.key, p.size] as const), ...written.packs.map((p) => [p.key, p.size] as const)]);
  const packs: PackRef[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    for (const c of entry.chunks) {
      const key = packOf(c);
      if (seen.has(key)) continue;
      seen.add(key);
      const size = sizes.get(key);
      if (size === undefined) throw new InternalError('UNPLACED_CHUNK', `internal: a chunk of ${entry.path} lives in pack ${key}, whose size is unknown`);
      packs.push({ key, size });
    }
  }
  const manifest: TaskManifest = {
    formatVersion: FORMAT_VERSION,
    jobId,
    task,
    session: lease.session,
    base: base?.checkpointId ?? null,
    createdAt: new Date().toISOString(),
    keyAlgorithm: KEY_ALGORITHM,
    chunkSize: settings.chunkSize,
    directories,
    packs,
    files: entries,
  };
  const encoded = encodeManifest(manifest, hasher);
  const key = manifestKey(task, lease.session);
  readManifest(encoded, hasher, `${store.location}/${key} (about to be written)`, { task, session: lease.session });
  lease.check();
  await store.put(key, [encoded], { ifAbsent: true, durable: settings.durable });
  return { key, encoded, packs };
}

/** The job's state and its base: the newest checkpoint that can be read (a damaged newest one is routed around, and said). */
async function findBase(store: Store, hasher: Hasher, task: string, warnings: string[]): Promise<{ state: JobState; base: CheckpointMetadata | undefined }> {
  const state = await readJobState(store);
  for (const id of [...state.ids].reverse()) {
    try {
      return { state, base: await loadCheckpoint(store, id, hasher) };
    } catch (error) {
      if (error instanceof InvalidInputError && error.code === 'CHECKPOINT_NOT_FOUND') continue; // removed meanwhile
      if (!(error instanceof CorruptDataError)) throw error;
      warnings.push(`${checkpointDirName(id)} is damaged (${error.message}); this snapshot does not build on it (task ${task})`);
    }
  }
  return { state, base: undefined };
}

async function loadBaseManifest(store: Store, hasher: Hasher, base: CheckpointMetadata, entry: TaskEntry, warnings: string[]): Promise<TaskManifest | undefined> {
  try {
    return (await loadManifest(store, entry, hasher)).manifest;
  } catch (error) {
    if (!(error instanceof CorruptDataError)) throw error;
    warnings.push(`the manifest of task '${entry.task}' in ${checkpointDirName(base.checkpointId)} is damaged (${error.message}); every file is read again`);
    return undefined;
  }
}

/** Every pack a task may reuse, with its size: one listing of each area it can reference, both at once. */
async function listPacks(store: Store, task: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await Promise.all(
    ['shared/', `taskowned/${task}/`].map(async (prefix) => {
      for await (const o of store.list(prefix)) out.set(o.key, o.size);
    }),
  );
  return out;
}

/**
 * A job root inside the state directory would be snapshotted into itself
 * (its packs read as state, growing every checkpoint) and would change under
 * the snapshot as it writes (STATE_CHANGED on a file that is the store's own):
 * refused before anything is read or written.
 */
async function refuseStoreInState(stateDir: string, jobRoot: string): Promise<void> {
  const [state, root] = await Promise.all([resolvedPath(stateDir).catch(() => stateDir), resolvedPath(jobRoot).catch(() => jobRoot)]);
  if (state === root || isWithin(root, state)) {
    throw new InvalidInputError('STORE_INSIDE_STATE', `the job root ${jobRoot} is inside the state directory ${stateDir}; put the store outside the state directory`);
  }
}
