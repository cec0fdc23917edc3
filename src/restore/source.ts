/**
 * Where a restore's checkpoint comes from: the store, with the local cache
 * keeping copies of its `_metadata` and manifest as they are read, and
 * standing in for them only when the store cannot be read, and then only
 * with copies that are provably the store's very checkpoint (or, with the
 * store unreachable, the newest the cache holds, said as such).
 */
import { cachedCheckpointIds, type CacheIndex } from '../cache.js';
import { loadCheckpointBytes, loadManifest, locateCheckpoint, resolveLocator, type CheckpointLocator, type LocatedCheckpoint } from '../checkpoint.js';
import { ChunkpointError, toChunkpointError, withReason } from '../errors.js';
import type { Hasher } from '../format/content-key.js';
import { decodeManifest, type TaskManifest } from '../format/manifest.js';
import { decodeMetadata, type CheckpointMetadata, type TaskEntry } from '../format/metadata.js';
import { checkpointDirName } from '../format/names.js';
import { openStore } from '../store/open.js';
import { rateLimitSpec } from '../store/rate-limit.js';
import type { Store } from '../store/store.js';
import { selectTask, type RestoreSource } from './index.js';

export interface SourceOptions {
  cache: CacheIndex | undefined;
  task: string | undefined;
  limitRate: number | undefined;
  /** Told of a cache that could not take a copy: never a failed restore. */
  warnCache: (error: unknown) => void;
}

export async function restoreSource(hasher: Hasher, from: CheckpointLocator, { cache, task, limitRate, warnCache }: SourceOptions): Promise<RestoreSource> {
  let located: LocatedCheckpoint | undefined;
  let store: Store;
  let loaded: { metadata: CheckpointMetadata; encoded: Buffer };
  try {
    located = await locateCheckpoint(from);
    store = limitRate === undefined ? located.store : openStore({ ...located.store.spec, rateLimit: rateLimitSpec(limitRate) });
    loaded = await loadCheckpointBytes(store, located.checkpointId, hasher);
  } catch (error) {
    if (cache === undefined || !isStoreUnavailable(error)) throw error;
    return fromCache(hasher, from, located, cache, task, error);
  }
  const { metadata, encoded } = loaded;
  const entry = selectTask(metadata, task);
  if (cache !== undefined) await cache.putMetadata(store.location, metadata.checkpointId, encoded).catch((error: unknown) => warnCache(error));
  let manifest;
  try {
    manifest = await loadManifest(store, entry, hasher);
  } catch (error) {
    if (cache === undefined || !isStoreUnavailable(error)) throw error;
    // The store's _metadata stays the truth: only the very manifest it names may stand in.
    const cached = await cachedManifest(cache, store.location, entry, hasher);
    if (cached === undefined) throw error;
    return { store, metadata, manifest: cached, metadataFromCache: true, metadataNote: `the task manifest from the local cache (the store could not be read: ${error.code}); _metadata from the store` };
  }
  if (cache !== undefined) await cache.putManifest(store.location, entry.manifest.key, manifest.encoded).catch((error: unknown) => warnCache(error));
  return { store, metadata, manifest: manifest.manifest, metadataFromCache: false };
}

/** The cache's copies of a checkpoint the store could not give (`failure`: why), when they are provably the store's checkpoint or the store cannot be asked. */
async function fromCache(hasher: Hasher, from: CheckpointLocator, located: LocatedCheckpoint | undefined, cache: CacheIndex, task: string | undefined, failure: ChunkpointError): Promise<RestoreSource> {
  const { store, wanted } = resolveLocator(from);
  const refuse = (why: string): ChunkpointError => withReason(failure, why);
  const copies = await cachedCheckpoints(cache, store.location, hasher);
  // Ids grow with time within one job's history; a copy committed before a lower-numbered one the cache also holds is of an earlier job under this id.
  const newerLower = (c: CachedCheckpoint): CachedCheckpoint | undefined => copies.find((o) => o.id < c.id && o.createdAtMs > c.createdAtMs);
  const id = located?.checkpointId ?? (wanted === 'latest' ? undefined : wanted);
  let copy: CachedCheckpoint | undefined;
  let note = `_metadata and the task manifest from the local cache (the store could not be read: ${failure.code})`;
  if (id === undefined) {
    // 'latest' with no listing of the store: the newest checkpoint the cache has seen, said as such.
    copy = copies.reduce<CachedCheckpoint | undefined>((best, c) => (best === undefined || c.createdAtMs > best.createdAtMs || (c.createdAtMs === best.createdAtMs && c.id > best.id) ? c : best), undefined);
    if (copy === undefined) throw failure;
    note += `: ${checkpointDirName(copy.id)}, the newest checkpoint of ${store.location} the local cache holds; the store could not be asked for its latest`;
  } else {
    copy = copies.find((c) => c.id === id);
    if (copy === undefined) throw failure;
    const later = newerLower(copy);
    if (later !== undefined) {
      throw refuse(`the local cache's copy of ${checkpointDirName(copy.id)} was committed before ${checkpointDirName(later.id)}, which the cache also holds: it is of an earlier job under this id, so it is not used`);
    }
  }
  const { metadata } = copy;
  const entry = selectTask(metadata, task);
  // Ask the store, if it answers at all, whether it holds this checkpoint's manifest: a recreated job does not.
  let held;
  try {
    held = await store.stat(entry.manifest.key);
  } catch (error) {
    if (!isStoreUnavailable(error)) throw refuse(`the local cache's copy of ${checkpointDirName(copy.id)} could not be checked against the store (${toChunkpointError(error).message}), so it is not used`);
    held = 'unknown' as const;
  }
  if (held !== 'unknown' && (held === undefined || held.size !== entry.manifest.size)) {
    throw refuse(`the local cache's copy of ${checkpointDirName(copy.id)} is not the store's ${checkpointDirName(copy.id)} (the store does not hold its manifest ${entry.manifest.key} at its size: the job was recreated under this id, or the store lost it), so it is not used`);
  }
  if (held === 'unknown') note += '; the store could not confirm it';
  const manifest = await cachedManifest(cache, store.location, entry, hasher);
  if (manifest === undefined) throw failure;
  return { store, metadata, manifest, metadataFromCache: true, metadataNote: note };
}

/** A failure to reach or read the store (as opposed to damage, a refusal or a missing object): the only reason to turn to the cache's copies. */
function isStoreUnavailable(error: unknown): error is ChunkpointError {
  return error instanceof ChunkpointError && error.kind === 'store_unavailable';
}

interface CachedCheckpoint {
  id: number;
  metadata: CheckpointMetadata;
  createdAtMs: number;
}

/** Every cached `_metadata` copy of a job root that decodes; one that does not is dropped (it can never be used). */
async function cachedCheckpoints(cache: CacheIndex, location: string, hasher: Hasher): Promise<CachedCheckpoint[]> {
  const out: CachedCheckpoint[] = [];
  for (const id of await cachedCheckpointIds(cache.spec, location).catch(() => [])) {
    const data = await cache.getMetadata(location, id).catch(() => undefined);
    if (data === undefined) continue;
    try {
      const metadata = decodeMetadata(data, hasher, `cached copy of ${location}/${checkpointDirName(id)}/_metadata`, id);
      out.push({ id, metadata, createdAtMs: Date.parse(metadata.createdAt) });
    } catch {
      await cache.dropMetadata(location, id);
    }
  }
  return out;
}

/** The cache's copy of the manifest `entry` names, only if it is that very manifest (size and checksum). */
async function cachedManifest(cache: CacheIndex, location: string, entry: TaskEntry, hasher: Hasher): Promise<TaskManifest | undefined> {
  const data = await cache.getManifest(location, entry.manifest.key).catch(() => undefined);
  if (data?.byteLength !== entry.manifest.size || data.subarray(16, 24).toString('hex') !== entry.manifest.checksum) return undefined;
  try {
    return decodeManifest(data, hasher, `cached copy of ${location}/${entry.manifest.key}`, { task: entry.task, session: entry.session });
  } catch {
    return undefined;
  }
}
