/**
 * Restore coordinator (main thread). Given a validated checkpoint and its
 * task's manifest, it stages every file in a private directory inside the
 * target (target.ts), lets workers fetch (local cache first, then coalesced
 * pack reads: plan.ts), verify and write the chunks, and swaps the files
 * into place only when every chunk of every file has verified. On any
 * failure the staging directory is removed and the target is left as it was,
 * old entries included (target.ts: swapIntoPlace).
 *
 * Restore in place (`keepMatching`): files already in the target whose every
 * chunk hashes to the checkpoint's key are kept and not fetched; everything
 * else is restored, and entries the checkpoint does not have are removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ChunkpointError, CorruptDataError, InvalidInputError, abortedError, apiName, checkAborted, errnoOf, targetIoError } from '../errors.js';
import type { RestoreChunksResult, RestoreSpanResult } from '../protocol.js';
import type { Runtime } from '../runtime.js';
import type { FileEntry, TaskManifest } from '../format/manifest.js';
import type { CheckpointMetadata, TaskEntry } from '../format/metadata.js';
import { checkpointDirName, printable } from '../format/names.js';
import { forEachBounded } from '../bounded.js';
import type { WorkerPool } from '../pool.js';
import type { Store } from '../store/store.js';
import { findLocalCopies, refreshIdentity, refuseLocalCopyInside, rememberIdentity, stageLocalCopy, type LinkedCopy, type LocalCandidate, type LocalCopyOptions } from '../local-copy.js';
import { blobsOf, planReads, type PlannedBlob, type Span } from './plan.js';
import { STAGING_PREFIX, finishFiles, isPlainFile, prepareTarget, refuseGuardedTarget, removeCreatedDirs, stageDirectories, stageFiles, stagedPath, swapIntoPlace, syncFile, type GuardedDir } from './target.js';

export { STAGING_PREFIX } from './target.js';

const SETID_BITS = 0o6000;

export interface RestoreProgress {
  /** Logical bytes done: files kept in place, plus chunks written. Ends at `result.bytes`. */
  bytesDone: number;
  bytesTotal: number;
  /** Stored bytes fetched from the store / read from the local cache so far. */
  bytesFromRemote: number;
  bytesFromCache: number;
  /** Files kept, or with every chunk written. Ends at `result.files`. */
  filesDone: number;
  filesTotal: number;
  /** Chunks fetched and verified so far. Ends at `result.chunks`. */
  chunks: number;
}

export interface RestoreOptions {
  /**
   * Allow a non-empty target: its contents are replaced by the checkpoint's
   * (entries not in the checkpoint are deleted). Without it a non-empty target
   * is refused.
   */
  overwrite?: boolean;
  /**
   * Restore in place: keep target files whose content verifies against the
   * checkpoint, fetch only what is missing or different, and delete entries
   * the checkpoint does not have. Implies a non-empty target is allowed.
   */
  keepMatching?: boolean;
  /** Local cache: chunks are looked up there first and added after a fetch. */
  cache?: { dir: string; maxBytes?: number; ttlMs?: number };
  /**
   * Task-local copy kept by this machine's snapshots (`SnapshotOptions.localCopy`):
   * files whose copy there is proven unchanged are linked (or copied) from it
   * instead of fetched; a copy that cannot be proven is read and checked
   * chunk by chunk, and used only if every chunk matches.
   */
  localCopy?: LocalCopyOptions;
  /** fsync restored files and directories before reporting success (default true). */
  durable?: boolean;
  /**
   * Restore set-user-ID and set-group-ID bits as recorded (default false:
   * they are dropped, and the rest of the mode is kept).
   */
  preserveSetid?: boolean;
  signal?: AbortSignal;
  /** Which task's state to restore; may be left out when the checkpoint has one task. */
  task?: string;
}

export interface RestoreResult {
  checkpointId: number;
  checkpoint: string;
  /** The task whose state was restored. */
  task: string;
  files: number;
  /** Logical bytes of the restored state. */
  bytes: number;
  /** Chunks written (from the cache or the store). */
  chunks: number;
  /** Stored bytes fetched from the store. */
  bytesFromRemote: number;
  /** Stored bytes read from the local cache (and verified). */
  bytesFromCache: number;
  /** Read requests sent to the store for chunk data (coalesced pack reads and single-chunk fallbacks). */
  storeReads: number;
  /** Logical bytes of target files kept in place because they verified. */
  bytesKept: number;
  filesKept: number;
  /** Cache entries that failed verification, were deleted and refetched. */
  cacheEntriesDropped: number;
  /** Files taken from the task-local copy, and their bytes; of those, how many had to be read to be trusted. */
  filesFromLocalCopy: number;
  bytesFromLocalCopy: number;
  localCopiesVerified: number;
  /** Local copies that did not hold the checkpoint's bytes (changed behind chunkpoint's back): not used. */
  localCopiesRejected: number;
  /** Some of the checkpoint's metadata (its `_metadata`, its task manifest) came from the local cache because the store could not be read. */
  metadataFromCache: boolean;
  /** What came from the cache, why, and which checkpoint it is; null when everything came from the store. */
  metadataNote: string | null;
  /**
   * Set when the target's previous entries, moved aside once the new ones
   * were in place, could not be deleted: the directory holding them. The
   * restore itself succeeded.
   */
  previousContentsLeftAt: string | null;
  durationMs: number;
  throughputMBps: number;
}

export interface RestoreSource {
  store: Store;
  metadata: CheckpointMetadata;
  manifest: TaskManifest;
  metadataFromCache: boolean;
  /** What came from the cache and why (see RestoreResult.metadataNote). */
  metadataNote?: string;
}

/** The one task a restore is about: named, or the only one. */
export function selectTask(metadata: CheckpointMetadata, task: string | undefined): TaskEntry {
  const names = metadata.tasks.map((t) => t.task).join(', ');
  if (task === undefined) {
    const [only, ...more] = metadata.tasks;
    if (only !== undefined && more.length === 0) return only;
    throw new InvalidInputError('TASK_REQUIRED', `${checkpointDirName(metadata.checkpointId)} holds ${metadata.tasks.length} tasks (${names}); pick the one to restore (${apiName('task')})`);
  }
  const found = metadata.tasks.find((t) => t.task === task);
  if (found === undefined) throw new InvalidInputError('TASK_NOT_FOUND', `${checkpointDirName(metadata.checkpointId)} has no task '${printable(task)}' (tasks: ${names})`);
  return found;
}

type RestoreFigures = RestoreProgress & { checkpoint: string; task: string };

/**
 * The stages, in order: check and prepare the target, find what need not be
 * fetched (files kept in place, proven local copies), stage every file,
 * fetch the rest into the staged files, swap them into place.
 */
export async function restore(ctx: Runtime<RestoreFigures>, source: RestoreSource, targetDir: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  const { pool, progress } = ctx;
  const started = performance.now();
  const durable = options.durable ?? true;
  const { store, metadata } = source;
  // A restore often runs as root, and whoever could write the store would otherwise choose
  // which restored programs run setuid root: set-id bits are restored only when asked for.
  const manifest = options.preserveSetid === true ? source.manifest : { ...source.manifest, files: source.manifest.files.map((f) => ({ ...f, mode: f.mode & ~SETID_BITS })) };
  const inPlace = options.keepMatching === true;
  checkAborted(options.signal);

  const guarded: GuardedDir[] = [];
  if (store.spec.type === 'fs') guarded.push({ what: 'job root', path: store.spec.root });
  if (options.cache !== undefined) guarded.push({ what: 'cache', path: resolve(options.cache.dir) });
  await refuseGuardedTarget(resolve(targetDir), guarded);
  if (options.localCopy !== undefined) await refuseLocalCopyInside(options.localCopy, resolve(targetDir), 'restore target');
  const { target, createdRoot } = await prepareTarget(resolve(targetDir), options.overwrite === true || inPlace);
  const staging = join(target, `${STAGING_PREFIX}${randomBytes(6).toString('hex')}`);
  const bytesTotal = manifest.files.reduce((sum, f) => sum + f.size, 0);
  const figures: RestoreFigures = {
    checkpoint: checkpointDirName(metadata.checkpointId),
    task: manifest.task,
    bytesDone: 0,
    bytesTotal,
    bytesFromRemote: 0,
    bytesFromCache: 0,
    filesDone: 0,
    filesTotal: manifest.files.length,
    chunks: 0,
  };
  let fetched = { storeReads: 0, cacheEntriesDropped: 0 };
  let previousNotRemoved: string | undefined;
  let kept = new Set<string>();
  let local: LocalCandidate[] = [];
  const linked: LinkedCopy[] = [];
  let localFigures = { verified: 0, rejected: 0 };
  const syncing = new Map<string, Promise<void>>();
  try {
    if (inPlace) kept = await matchingFiles(pool, target, manifest.files, options.signal);
    if (options.localCopy !== undefined) ({ local, localFigures } = await provenLocalCopies(ctx, options.localCopy, store.location, manifest.task, manifest.files.filter((f) => !kept.has(f.path)), options.signal));
    await mkdir(staging, { mode: 0o700 });
    await stageDirectories(staging, manifest.files);
    local = await stageLocalCopies(staging, local, linked);
    const fromLocal = new Set(local.map((c) => c.file.path));
    const toRestore = manifest.files.filter((f) => !kept.has(f.path) && !fromLocal.has(f.path));
    await stageFiles(staging, toRestore);
    figures.bytesDone = manifest.files.filter((f) => kept.has(f.path) || fromLocal.has(f.path)).reduce((sum, f) => sum + f.size, 0);
    figures.filesDone = manifest.files.length - toRestore.length + toRestore.filter((f) => f.chunks.length === 0).length;
    progress?.update(() => ({ ...figures }), true);

    fetched = await fetchChunks(ctx, { store, staging, durable, signal: options.signal, syncing }, toRestore, figures, manifest);
    checkAborted(options.signal);

    await finishFiles(staging, [...toRestore, ...local.map((c) => c.file)], durable, syncing);
    previousNotRemoved = await swapIntoPlace(staging, target, manifest, kept, durable);
    for (const l of linked) await refreshIdentity(l).catch(() => undefined);
    progress?.update(() => ({ ...figures }), true);
  } catch (error) {
    await Promise.allSettled(syncing.values());
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    if (createdRoot !== undefined) await removeCreatedDirs(target, createdRoot);
    if (options.signal?.aborted === true && !(error instanceof ChunkpointError && error.code !== 'ABORTED')) throw abortedError(options.signal);
    if (error instanceof ChunkpointError) throw error;
    throw targetIoError('restoring into', target, error);
  }

  const durationMs = performance.now() - started;
  const keptFiles = manifest.files.filter((f) => kept.has(f.path));
  return {
    checkpointId: metadata.checkpointId,
    checkpoint: checkpointDirName(metadata.checkpointId),
    task: manifest.task,
    files: manifest.files.length,
    bytes: bytesTotal,
    chunks: figures.chunks,
    bytesFromRemote: figures.bytesFromRemote,
    bytesFromCache: figures.bytesFromCache,
    storeReads: fetched.storeReads,
    bytesKept: keptFiles.reduce((sum, f) => sum + f.size, 0),
    filesKept: keptFiles.length,
    cacheEntriesDropped: fetched.cacheEntriesDropped,
    filesFromLocalCopy: local.length,
    bytesFromLocalCopy: local.reduce((sum, c) => sum + c.file.size, 0),
    localCopiesVerified: localFigures.verified,
    localCopiesRejected: localFigures.rejected,
    metadataFromCache: source.metadataFromCache,
    metadataNote: source.metadataNote ?? null,
    previousContentsLeftAt: previousNotRemoved ?? null,
    durationMs: Math.round(durationMs),
    throughputMBps: Math.round((bytesTotal / 1e6 / (durationMs / 1000)) * 100) / 100,
  };
}

/** The task-local copies of `files` that can be used: trusted as they are, or read and found to hold every chunk. */
async function provenLocalCopies(
  { pool, hasher }: Runtime<RestoreFigures>,
  localCopy: LocalCopyOptions,
  location: string,
  task: string,
  files: FileEntry[],
  signal: AbortSignal | undefined,
): Promise<{ local: LocalCandidate[]; localFigures: { verified: number; rejected: number } }> {
  const localFigures = { verified: 0, rejected: 0 };
  const candidates = await findLocalCopies(hasher, localCopy, location, task, files);
  const unproven = candidates.filter((c) => !c.trusted);
  const proven = await verifiedFiles(pool, unproven.map((c) => ({ file: c.file, path: c.path })), signal);
  for (const c of unproven) {
    if (proven.has(c.file.path)) {
      await rememberIdentity(c.path);
      localFigures.verified++;
    } else localFigures.rejected++;
  }
  return { local: candidates.filter((c) => c.trusted || proven.has(c.file.path)), localFigures };
}

/** Links or copies the local copies into the staging directory; returns those that were still there. */
async function stageLocalCopies(staging: string, local: readonly LocalCandidate[], linked: LinkedCopy[]): Promise<LocalCandidate[]> {
  // Local copies go in first: one that vanished or was replaced meanwhile (a snapshot replaced the local copy) is fetched instead.
  const staged: LocalCandidate[] = [];
  for (const c of local) {
    try {
      const l = await stageLocalCopy(c, stagedPath(staging, c.file.path));
      if (l === null) continue;
      if (l !== undefined) linked.push(l);
      staged.push(c);
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') throw error;
    }
  }
  return staged;
}

/** Where fetched chunks go, and what a file finished meanwhile leaves to await. */
interface FetchTarget {
  store: Store;
  staging: string;
  durable: boolean;
  signal: AbortSignal | undefined;
  /** The fsync of each file finished so far, started at once. */
  syncing: Map<string, Promise<void>>;
}

/**
 * Fetches every chunk of `toRestore` into its staged file on the pool:
 * coalesced pack reads from the store, and runs of chunks the cache holds.
 * `figures` advance as they land.
 */
async function fetchChunks(
  { pool, cache, progress }: Runtime<RestoreFigures>,
  { store, staging, durable, signal, syncing }: FetchTarget,
  toRestore: readonly FileEntry[],
  figures: RestoreFigures,
  manifest: TaskManifest,
): Promise<{ storeReads: number; cacheEntriesDropped: number }> {
  let storeReads = 0;
  let cacheEntriesDropped = 0;
  const plan = planReads(blobsOf(toRestore, staging), (b) => cache?.holds(b.key, b.rawLength) === true);
  // Checked while the packs are read, not before: nothing restored is visible until the swap, so
  // a refusal that arrives during the reads loses nothing, and the listing's round trip (~50 ms on
  // S3) leaves the critical path. No new read starts once it has refused.
  let refused: { error: unknown } | undefined;
  const packsChecked = refuseResizedPacks(store, manifest, plan.spans).catch((error: unknown) => {
    refused = { error };
  });
  // A file is done when every blob writing into it is.
  const left = new Map(toRestore.map((f) => [stagedPath(staging, f.path), f.chunks.length]));
  const done = (blobs: readonly PlannedBlob[]): void => {
    for (const b of blobs) {
      for (const t of b.targets) {
        const n = (left.get(t.path) ?? 1) - 1;
        left.set(t.path, n);
        if (n === 0) {
          figures.filesDone++;
          // Synced now, while the other files are still being restored, rather than all at the end.
          if (durable) syncing.set(t.path, background(syncFile(t.path)));
        }
        figures.bytesDone += b.rawLength;
        figures.chunks++;
      }
    }
    progress?.update(() => ({ ...figures }));
  };

  type Item = { span: Span } | { cached: PlannedBlob[] };
  const items: Item[] = [...plan.spans.map((span) => ({ span })), ...runsOf(plan.cached, pool.threads).map((cached) => ({ cached }))];
  await forEachBounded(items, pool.ioConcurrency, async (item) => {
    checkAborted(signal);
    if (refused !== undefined) throw refused.error;
    if ('span' in item) {
      const { span } = item;
      // A span larger than the room the cache has gets its first blobs cached, not none.
      const grant = await cache?.grantUpTo(span.blobs.reduce((sum, b) => sum + b.length, 0));
      let result: RestoreSpanResult | undefined;
      try {
        result = await pool.run(
          {
            op: 'restoreSpan',
            store: store.spec,
            key: span.key,
            offset: span.offset,
            length: span.length,
            blobs: span.blobs.map(({ at, length, key, rawLength, targets, where }) => ({ at, length, key, rawLength, targets, where })),
            ...(grant !== undefined && grant.bytes > 0 ? { cache: grant.use } : {}),
          },
          signal,
        );
      } finally {
        grant?.settle(result?.inserted);
      }
      storeReads++;
      figures.bytesFromRemote += result.bytesFetched;
      done(span.blobs);
      return;
    }
    const { cached } = item;
    if (cache === undefined) throw new Error('internal: a cached chunk without a cache');
    // The request settles what it leaves of these entries; room for the case an entry is bad and the
    // store's copy goes back in its place.
    for (const b of cached) cache.forgetBlob(b.key, b.rawLength);
    const grant = await cache.grant(cached.reduce((sum, b) => sum + b.length, 0));
    let result: RestoreChunksResult | undefined;
    try {
      result = await pool.run(
        {
          op: 'restoreChunks',
          store: store.spec,
          chunks: cached.map(({ handle, key, rawLength, targets, where }) => ({ handle, key, rawLength, targets, where })),
          cache: grant.use,
        },
        signal,
      );
    } finally {
      grant.settle(
        result?.outcomes.flatMap((o, i) => {
          const b = cached[i];
          return b === undefined ? [] : [{ key: b.key, rawLength: b.rawLength, size: o.entryBytes }];
        }),
      );
    }
    result.outcomes.forEach((outcome) => {
      if (outcome.source === 'remote') storeReads++;
      if (outcome.dropped) cacheEntriesDropped++;
    });
    figures.bytesFromRemote += result.bytesFetched;
    figures.bytesFromCache += result.bytesFromCache;
    done(cached);
  });
  await packsChecked;
  if (refused !== undefined) throw refused.error;
  return { storeReads, cacheEntriesDropped };
}

/**
 * One rule for every pack, in every command: a pack is whole only at the
 * size its checkpoint records (snapshot reuse, commit, verify and copy check
 * it by listing; so does restore). Bytes after the recorded end — appended,
 * or another object in its place — mean the pack is not the one committed,
 * even though every chunk restore reads is verified by its content key. The
 * check costs one listing of each area the restore reads packs from, and
 * only when it reads any (a restore served by the cache pays nothing). An
 * absent pack, or one cut short inside what is read, is left to the read,
 * which says more: missing, a link or a FIFO; which file and chunk lost bytes.
 */
async function refuseResizedPacks(store: Store, manifest: TaskManifest, spans: readonly Span[]): Promise<void> {
  if (spans.length === 0) return;
  const recorded = new Map(manifest.packs.map((p) => [p.key, p.size]));
  const read = new Set(spans.map((s) => s.key));
  const reach = new Map<string, number>();
  for (const s of spans) reach.set(s.key, Math.max(reach.get(s.key) ?? 0, s.offset + s.length));
  const prefixes = new Set([...read].map((key) => key.slice(0, key.lastIndexOf('/') + 1)));
  const stored = new Map<string, number>();
  await Promise.all(
    [...prefixes].map(async (prefix) => {
      for await (const o of store.list(prefix)) if (read.has(o.key)) stored.set(o.key, o.size);
    }),
  );
  for (const key of read) {
    const found = stored.get(key);
    const size = recorded.get(key);
    if (found === undefined || size === undefined || found === size) continue;
    // Cut short where this restore reads: the read itself says which file and chunk lost bytes.
    if (found < size && (reach.get(key) ?? 0) > found) continue;
    throw new CorruptDataError(
      'PACK_SIZE',
      `pack ${key} is ${found} bytes in ${store.location}, not the ${size} the checkpoint recorded (truncated, overwritten or replaced); the checkpoint is damaged: restore an older checkpoint or repair the store`,
      { details: { key, size: found, recorded: size } },
    );
  }
}

/** A promise awaited later: its rejection is handled there (or dropped with a failed restore), never unhandled. */
function background(promise: Promise<void>): Promise<void> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * Cached chunks in runs, one request each: a request per chunk spent more on
 * messages and on opening target files than on reading the entries. Runs
 * follow the plan's (file) order and stay small enough that every thread
 * gets several.
 */
function runsOf(blobs: readonly PlannedBlob[], threads: number): PlannedBlob[][] {
  const perRun = Math.max(1, Math.min(MAX_CACHED_RUN_CHUNKS, Math.ceil(blobs.length / (4 * threads))));
  const runs: PlannedBlob[][] = [];
  let run: PlannedBlob[] = [];
  let bytes = 0;
  for (const blob of blobs) {
    if (run.length > 0 && (run.length >= perRun || bytes + blob.length > MAX_CACHED_RUN_BYTES)) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(blob);
    bytes += blob.length;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

const MAX_CACHED_RUN_CHUNKS = 32;
const MAX_CACHED_RUN_BYTES = 16 * 1024 * 1024;

/** Target files whose size matches and every chunk hashes to the checkpoint's key. */
async function matchingFiles(pool: WorkerPool, target: string, files: readonly FileEntry[], signal: AbortSignal | undefined): Promise<Set<string>> {
  const candidates: Array<{ file: FileEntry; path: string }> = [];
  for (const file of files) {
    const st = await isPlainFile(target, file.path);
    if (st !== undefined && st.size === file.size) candidates.push({ file, path: join(target, ...file.path.split('/')) });
  }
  return verifiedFiles(pool, candidates, signal);
}

/** The checkpoint paths of those `candidates` whose local file hashes, chunk by chunk, to the checkpoint's keys. */
async function verifiedFiles(pool: WorkerPool, candidates: ReadonlyArray<{ file: FileEntry; path: string }>, signal: AbortSignal | undefined): Promise<Set<string>> {
  const mismatched = new Set<string>();
  function* ranges(): Generator<{ file: FileEntry; path: string; offset: number; length: number; key: string }> {
    for (const { file, path } of candidates) {
      let offset = 0;
      for (const chunk of file.chunks) {
        yield { file, path, offset, length: chunk.rawLength, key: chunk.key };
        offset += chunk.rawLength;
      }
    }
  }
  await forEachBounded(ranges(), pool.queueDepth, async (r) => {
    if (mismatched.has(r.file.path)) return;
    checkAborted(signal);
    const result = await pool.run({ op: 'verifyRange', file: r.path, relPath: r.file.path, offset: r.offset, length: r.length, key: r.key }, signal);
    if (!result.match) mismatched.add(r.file.path);
  });
  return new Set(candidates.filter((c) => !mismatched.has(c.file.path)).map((c) => c.file.path));
}
