/**
 * Committed checkpoints of a job: finding them, loading and verifying their
 * metadata, and committing a new one. A checkpoint exists exactly when its
 * `chk-<n>/_metadata` object does; a `chk-<n>/` left without one by a crash
 * is invisible here (and garbage for gc).
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Hasher } from './content-key.js';
import { ConflictError, InvalidInputError, errnoOf } from './errors.js';
import { CHECKPOINT_DIR_RE, checkpointDirName, metadataKey } from './handle.js';
import { MAX_METADATA_SIZE, decodeMetadata, encodeMetadata, type CheckpointMetadata } from './metadata.js';
import { jobRootSpec, jobRootSpecFromDir, openStore } from './store/open.js';
import { isS3Url, parseS3Url, s3Spec } from './store/s3.js';
import { isNotFound, type Store } from './store/store.js';
import { CorruptDataError } from './errors.js';

/** Where a checkpoint is: by store, job and number, or by the path of a `chk-<n>` directory anywhere. */
export type CheckpointLocator = { store: string; job: string; checkpoint?: number | 'latest' } | { path: string };

export interface LocatedCheckpoint {
  store: Store;
  checkpointId: number;
}

const METADATA_KEY_RE = /^chk-([1-9]\d{0,14})\/_metadata$/;

export async function committedCheckpointIds(store: Store): Promise<number[]> {
  const ids: number[] = [];
  for await (const object of store.list('chk-')) {
    const match = METADATA_KEY_RE.exec(object.key);
    if (match?.[1] !== undefined) ids.push(Number(match[1]));
  }
  return ids.sort((a, b) => a - b);
}

export async function loadCheckpoint(store: Store, id: number, hasher: Hasher): Promise<CheckpointMetadata> {
  return (await loadCheckpointBytes(store, id, hasher)).metadata;
}

/** Loads and verifies a checkpoint's metadata, also returning the encoded bytes (for the cache's copy). */
export async function loadCheckpointBytes(store: Store, id: number, hasher: Hasher): Promise<{ metadata: CheckpointMetadata; encoded: Buffer }> {
  const key = metadataKey(id);
  const where = `${store.location}/${key}`;
  const info = await store.stat(key);
  if (info === undefined) {
    throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `checkpoint ${checkpointDirName(id)} has no committed _metadata at ${where}; run 'chunkpoint list' to see the committed checkpoints`);
  }
  if (info.size > MAX_METADATA_SIZE) {
    throw new CorruptDataError('METADATA_TOO_LARGE', `checkpoint metadata ${where} is ${info.size} bytes, over the ${MAX_METADATA_SIZE}-byte limit; it is not a chunkpoint checkpoint or it is damaged`);
  }
  let data: Buffer;
  try {
    data = await store.get(key);
  } catch (error) {
    if (isNotFound(error)) {
      throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `checkpoint ${checkpointDirName(id)} vanished from ${store.location} while being read`, { cause: error });
    }
    throw error;
  }
  return { metadata: decodeMetadata(data, hasher, where, id), encoded: data };
}

/** Commits `_metadata` (put-if-absent) and returns the encoded bytes. */
export async function commitCheckpoint(store: Store, metadata: CheckpointMetadata, hasher: Hasher, durable: boolean): Promise<Buffer> {
  const encoded = encodeMetadata(metadata, hasher);
  const key = metadataKey(metadata.checkpointId);
  const result = await store.put(key, [encoded], { ifAbsent: true, durable });
  if (result === 'exists') {
    throw new ConflictError(
      'CHECKPOINT_EXISTS',
      `checkpoint ${checkpointDirName(metadata.checkpointId)} was committed by another writer at ${store.location} while this snapshot ran; nothing was overwritten — retry the snapshot`,
      { details: { checkpointId: metadata.checkpointId } },
    );
  }
  return encoded;
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
    try {
      if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
    } catch (error) {
      throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `checkpoint directory ${dir} does not exist (${errnoOf(error) ?? 'not a directory'}); check the path`, { cause: error });
    }
    return { store, checkpointId: wanted as number };
  }
  if (!(await store.exists())) {
    throw new InvalidInputError('JOB_NOT_FOUND', `no job '${locator.job}' in store ${locator.store} (nothing at ${store.location}); check --store and --job`);
  }
  const ids = await committedCheckpointIds(store);
  if (wanted === 'latest') {
    const latest = ids.at(-1);
    if (latest === undefined) {
      throw new InvalidInputError('NO_CHECKPOINTS', `${label} has no committed checkpoint yet; run 'chunkpoint snapshot' first`);
    }
    return { store, checkpointId: latest };
  }
  if (!ids.includes(wanted)) {
    const known = ids.length === 0 ? 'none' : ids.map(checkpointDirName).join(', ');
    throw new InvalidInputError('CHECKPOINT_NOT_FOUND', `${label} has no committed checkpoint ${checkpointDirName(wanted)} (committed: ${known})`);
  }
  return { store, checkpointId: wanted };
}
