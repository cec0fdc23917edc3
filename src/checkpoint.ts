/**
 * Committed checkpoints of a job: finding them, loading and verifying their
 * metadata and manifests, committing a new one, and removing old ones.
 *
 * A checkpoint exists exactly when its `chk-<n>/_metadata` object does. The
 * fence is a tombstone `chk-<n>/_removed` written before a checkpoint's
 * metadata is deleted; the highest tombstone is the highest id ever removed.
 * A tombstone is put-if-absent and the fence is a maximum, so raising it
 * needs no compare-and-swap and two removers never conflict: the fence is a
 * grow-only register that works on any store with put-if-absent and a
 * consistent listing. One LIST of `chk-` reads the committed ids and the
 * fence together.
 */
import { lstat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Hasher } from './format/content-key.js';
import { ConflictError, CorruptDataError, InvalidInputError, apiName, errnoOf, storeIoError } from './errors.js';
import { CHECKPOINT_DIR_RE, MAX_CHECKPOINT_ID, checkpointDirName, metadataKey, parseStoreKey, tombstoneKey } from './format/names.js';
import { MAX_METADATA_SIZE, decodeMetadata, encodeMetadata, type CheckpointMetadata, type TaskEntry } from './format/metadata.js';
import { MAX_MANIFEST_SIZE, decodeManifest, type TaskManifest } from './format/manifest.js';
import { jobRootSpec, jobRootSpecFromDir, openStore, storeSpecOf } from './store/open.js';
import { isS3Url, parseS3Url, s3Spec } from './store/s3/location.js';
import { isNotFound } from './store/not-found.js';
import type { Store } from './store/store.js';

/** Where a checkpoint is: by store, job and number, or by the path of a `chk-<n>` directory anywhere. */
export type CheckpointLocator = { store: string; job: string; checkpoint?: number | 'latest' } | { path: string };

export interface LocatedCheckpoint {
  store: Store;
  checkpointId: number;
}

/** What one listing of `chk-` says about a job. */
export interface JobState {
  /** Committed checkpoint ids, ascending. */
  ids: number[];
  /** The highest id ever removed (0: none): no checkpoint at or below it may be committed again. */
  fence: number;
  /** Ids with a tombstone (removed, or being removed). */
  tombstones: number[];
  /** Ids with a tombstone whose metadata is still there: a removal that was interrupted. */
  leftovers: number[];
}

export async function readJobState(store: Store): Promise<JobState> {
  const ids: number[] = [];
  const tombstones: number[] = [];
  for await (const object of store.list('chk-')) {
    const parsed = parseStoreKey(object.key);
    if (parsed?.kind === 'metadata') ids.push(parsed.checkpointId);
    else if (parsed?.kind === 'tombstone') tombstones.push(parsed.checkpointId);
  }
  const removed = new Set(tombstones);
  return {
    // A checkpoint whose tombstone is written is being removed: it is no longer committed.
    ids: ids.filter((id) => !removed.has(id)).sort((a, b) => a - b),
    fence: tombstones.reduce((max, id) => Math.max(max, id), 0),
    tombstones: tombstones.sort((a, b) => a - b),
    leftovers: ids.filter((id) => removed.has(id)).sort((a, b) => a - b),
  };
}

export async function committedCheckpointIds(store: Store): Promise<number[]> {
  return (await readJobState(store)).ids;
}

/** The id the next commit of this job takes: above every committed and every removed one. */
export function nextCheckpointId(state: JobState): number {
  const next = Math.max(state.ids.at(-1) ?? 0, state.fence) + 1;
  if (next > MAX_CHECKPOINT_ID) {
    throw new InvalidInputError('CHECKPOINT_ID_EXHAUSTED', `the next checkpoint of this job would be ${checkpointDirName(next)}, beyond the largest id chunkpoint writes (${MAX_CHECKPOINT_ID}); start a new job`);
  }
  return next;
}

export async function loadCheckpoint(store: Store, id: number, hasher: Hasher): Promise<CheckpointMetadata> {
  return (await loadCheckpointBytes(store, id, hasher)).metadata;
}

/** Loads and verifies a checkpoint's metadata, also returning the encoded bytes (for the cache's copy). */
export async function loadCheckpointBytes(store: Store, id: number, hasher: Hasher): Promise<{ metadata: CheckpointMetadata; encoded: Buffer }> {
  const key = metadataKey(id);
  const where = `${store.location}/${key}`;
  let data: Buffer;
  try {
    data = await store.get(key);
  } catch (error) {
    if (isNotFound(error)) {
      throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `checkpoint ${checkpointDirName(id)} has no committed _metadata at ${where}; list the committed checkpoints with ${apiName('list()')}`, { cause: error });
    }
    throw error;
  }
  if (data.byteLength > MAX_METADATA_SIZE) {
    throw new CorruptDataError('METADATA_TOO_LARGE', `checkpoint metadata ${where} is ${data.byteLength} bytes, over the ${MAX_METADATA_SIZE}-byte limit; it is not a chunkpoint checkpoint or it is damaged`);
  }
  return { metadata: decodeMetadata(data, hasher, where, id), encoded: data };
}

/** Loads one task's manifest and checks it is the very object the checkpoint committed (size and checksum). */
export async function loadManifest(store: Store, entry: TaskEntry, hasher: Hasher): Promise<{ manifest: TaskManifest; encoded: Buffer }> {
  const encoded = await loadManifestBytes(store, entry);
  return { manifest: decodeManifest(encoded, hasher, `${store.location}/${entry.manifest.key}`, { task: entry.task, session: entry.session }), encoded };
}

/** A manifest's bytes, checked to be the ones `entry` committed (size and checksum), not yet decoded. */
export async function loadManifestBytes(store: Store, entry: TaskEntry): Promise<Buffer> {
  const where = `${store.location}/${entry.manifest.key}`;
  const damaged = (why: string, cause?: unknown): CorruptDataError =>
    new CorruptDataError('MANIFEST_MISSING', `task manifest ${where} of task '${entry.task}' ${why}; the checkpoint is damaged: restore an older checkpoint or repair the store`, cause === undefined ? {} : { cause });
  if (entry.manifest.size > MAX_MANIFEST_SIZE) throw damaged(`is ${entry.manifest.size} bytes, over the limit`);
  let data: Buffer;
  try {
    data = await store.get(entry.manifest.key);
  } catch (error) {
    if (isNotFound(error)) throw damaged('is missing', error);
    throw error;
  }
  if (data.byteLength !== entry.manifest.size) throw damaged(`is ${data.byteLength} bytes, not the ${entry.manifest.size} committed`);
  if (data.subarray(16, 24).toString('hex') !== entry.manifest.checksum) {
    throw new CorruptDataError('MANIFEST_MISMATCH', `task manifest ${where} is not the manifest the checkpoint committed (checksum differs); the checkpoint cannot be used`);
  }
  return data;
}

/**
 * Commits `_metadata` put-if-absent, then reads the fence back: if the id was
 * removed (a stalled committer writing into a slot retention emptied) or the
 * base the tasks reused from was removed meanwhile, the commit is rolled back
 * and refused. Returns the encoded bytes and the job state after the commit.
 */
export async function commitCheckpoint(store: Store, metadata: CheckpointMetadata, hasher: Hasher, durable: boolean): Promise<{ encoded: Buffer; state: JobState }> {
  const encoded = encodeMetadata(metadata, hasher);
  // Every writer checks what it commits with the reader's own validator.
  decodeMetadata(encoded, hasher, `${store.location}/${metadataKey(metadata.checkpointId)} (about to be committed)`, metadata.checkpointId);
  const id = metadata.checkpointId;
  const name = checkpointDirName(id);
  const result = await store.put(metadataKey(id), [encoded], { ifAbsent: true, durable });
  if (result === 'exists') {
    throw new ConflictError('CHECKPOINT_EXISTS', `checkpoint ${name} was committed by another writer at ${store.location} while this snapshot ran; nothing was overwritten — retry the snapshot`, {
      details: { checkpointId: id },
    });
  }
  const state = await readJobState(store);
  const fenced = state.fence >= id;
  const baseGone = metadata.base !== null && !state.ids.includes(metadata.base);
  if (fenced || baseGone) {
    // Ours, never valid: withdraw it, and fence its id so it is never taken again.
    await store.put(tombstoneKey(id), [Buffer.alloc(0)], { ifAbsent: true, durable });
    await store.delete([metadataKey(id)]);
    const why = fenced
      ? `${name} had already been used and removed (the job's fence is at chk-${state.fence}): this writer stalled while others committed`
      : `the checkpoint it builds on, ${checkpointDirName(metadata.base ?? 0)}, was removed while it ran`;
    throw new ConflictError(fenced ? 'CHECKPOINT_FENCED' : 'BASE_REMOVED', `commit of ${name} to ${store.location} was withdrawn: ${why}; retry the snapshot`, { details: { checkpointId: id } });
  }
  return { encoded, state };
}

/**
 * Removes checkpoints: a tombstone for each first (the checkpoint stops being
 * committed, and the fence rises, before anything disappears), then their
 * metadata in one batch. A tombstone whose metadata the listing showed gone
 * says nothing the highest tombstone does not, so those below the fence go
 * in the same batch; the tombstones written now wait for the next removal,
 * so no tombstone ever disappears before its metadata.
 */
export async function removeCheckpoints(store: Store, ids: readonly number[], state: JobState, durable: boolean, alsoDelete: readonly string[] = []): Promise<void> {
  // Removals an earlier run left half-done are finished on the way.
  const gone = [...new Set([...ids, ...state.leftovers])];
  if (gone.length === 0) {
    if (alsoDelete.length > 0) await store.delete(alsoDelete);
    return;
  }
  for (const id of ids) await store.put(tombstoneKey(id), [Buffer.alloc(0)], { ifAbsent: true, durable });
  const fence = Math.max(state.fence, ...ids);
  const obsolete = state.tombstones.filter((t) => t < fence && !state.leftovers.includes(t));
  // What only these checkpoints referenced may go in the same batch: it is deleted after their metadata.
  await store.delete([...gone.map(metadataKey), ...alsoDelete, ...obsolete.map(tombstoneKey)]);
}

/**
 * Refuses to start a job whose store is itself a job root (`--store
 * s3://b/p/j --job x` where `p/j` is job j's root): job j's gc would see the
 * nested job's objects under its own areas. Checked when a job gets its
 * first checkpoint; a few requests, once.
 */
export async function checkNotNested(store: Store): Promise<void> {
  const parent = storeSpecOf(store.spec);
  if (parent === undefined) return;
  const outer = openStore(parent);
  for (const prefix of ['chk-', 'shared/', 'sessions/', 'taskowned/']) {
    for await (const o of outer.list(prefix)) {
      const name = parseStoreKey(o.key);
      if (name === undefined) continue;
      throw new InvalidInputError(
        'STORE_INSIDE_JOB',
        `the store ${outer.location} is itself a job root (it holds ${o.key}): jobs must not nest (the outer job's copies and removals would take the inner job's objects for its own). Use another store location (e.g. the parent of ${outer.location})`,
        { details: { store: outer.location, found: o.key } },
      );
    }
  }
}

export interface ResolvedLocator {
  store: Store;
  wanted: number | 'latest';
  /** How the user named the job, for messages. */
  label: string;
}

/** Turns a locator into a job-root store and the wanted checkpoint, without touching storage. */
export function resolveLocator(locator: CheckpointLocator): ResolvedLocator {
  if ('path' in locator && isS3Url(locator.path)) {
    // s3://bucket/prefix/<job>/chk-<n>[/_metadata]: the job root is everything before chk-<n>.
    const { bucket, segments } = parseS3Url(locator.path);
    if (segments.at(-1) === '_metadata') segments.pop();
    const match = CHECKPOINT_DIR_RE.exec(segments.at(-1) ?? '');
    if (match?.[1] === undefined || segments.length < 2) {
      throw new InvalidInputError('INVALID_CHECKPOINT_PATH', `'${locator.path}' is not a checkpoint location; pass s3://<bucket>/<prefix>/<jobId>/chk-<n> (e.g. s3://backups/prod/my-job/chk-3)`);
    }
    const store = openStore(s3Spec(bucket, segments.slice(0, -1)));
    return { store, wanted: Number(match[1]), label: `${store.location}/${segments.at(-1) ?? ''}` };
  }
  if ('path' in locator) {
    let dir = resolve(locator.path);
    if (basename(dir) === '_metadata') dir = dirname(dir);
    const match = CHECKPOINT_DIR_RE.exec(basename(dir));
    if (match?.[1] === undefined) {
      throw new InvalidInputError('INVALID_CHECKPOINT_PATH', `'${locator.path}' is not a checkpoint directory; pass a chk-<n> directory inside a job root (e.g. /backups/my-job/chk-3)`);
    }
    return { store: openStore(jobRootSpecFromDir(dirname(dir))), wanted: Number(match[1]), label: dir };
  }
  return { store: openStore(jobRootSpec(locator.store, locator.job)), wanted: locator.checkpoint ?? 'latest', label: `job '${locator.job}' in store ${locator.store}` };
}

/** Resolves a locator to a job-root store and a committed checkpoint id. */
export async function locateCheckpoint(locator: CheckpointLocator): Promise<LocatedCheckpoint> {
  const { store, wanted, label } = resolveLocator(locator);
  if ('path' in locator && isS3Url(locator.path)) {
    // No directory to check: a missing checkpoint is reported when its _metadata is read.
    return { store, checkpointId: wanted as number };
  }
  if ('path' in locator) {
    const dir = label;
    let isDirectory: boolean;
    try {
      isDirectory = (await lstat(dir)).isDirectory();
    } catch (error) {
      const errno = errnoOf(error);
      if (errno === 'ENOENT' || errno === 'ENOTDIR' || errno === 'ELOOP' || errno === 'ENAMETOOLONG') {
        throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `checkpoint directory ${dir} does not exist (${errno}); check the path`, { cause: error });
      }
      // EACCES on a directory above it, an I/O error: the store cannot be read, which says nothing about the checkpoint.
      throw storeIoError('inspecting', dir, error);
    }
    if (!isDirectory) throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `checkpoint directory ${dir} does not exist (not a directory); check the path`);
    return { store, checkpointId: wanted as number };
  }
  const { ids } = await readJobState(store);
  // Whether the job exists at all is asked only when it lists no checkpoint, for the error's sake: on
  // S3 that is one round trip fewer before a restore's first read (~40-50 ms against a local RGW).
  if (ids.length === 0 && !(await store.exists())) {
    throw new InvalidInputError('JOB_NOT_FOUND', `no job '${locator.job}' in store ${locator.store} (nothing at ${store.location}); check the store location and the job id`);
  }
  if (wanted === 'latest') {
    const latest = ids.at(-1);
    if (latest === undefined) {
      throw new InvalidInputError('NO_CHECKPOINTS', `${label} has no committed checkpoint yet; take a snapshot first`);
    }
    return { store, checkpointId: latest };
  }
  if (!ids.includes(wanted)) {
    const known = ids.length === 0 ? 'none' : ids.map(checkpointDirName).join(', ');
    throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `${label} has no committed checkpoint ${checkpointDirName(wanted)} (committed: ${known})`);
  }
  return { store, checkpointId: wanted };
}

