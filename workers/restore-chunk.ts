/**
 * Restore of a chunk the local cache holds: the entry is read and verified
 * like a blob from the store (it is one), and a bad or vanished entry is
 * dropped, the chunk fetched alone from the store and, verified, put back
 * (an entry that vanished meanwhile is simply a miss). Local-first: a
 * restore whose chunks are all cached reads nothing remote.
 */
import { decodeBlob } from '../src/format/blob.js';
import { dropEntry, readEntry, blobEntryPath, writeEntry } from '../src/cache.js';
import { loadHasher } from '../src/format/content-key.js';
import { CorruptDataError, withContext } from '../src/errors.js';
import { handleKey } from '../src/format/names.js';
import type { RestoreChunkRequest, RestoreChunkResult } from '../src/protocol.js';
import { isNotFound } from '../src/store/not-found.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';
import { TargetFiles } from './restore-span.js';

const hasher = await loadHasher();

export async function restoreChunk(req: RestoreChunkRequest, scratch: Scratch): Promise<RestoreChunkResult> {
  const files = new TargetFiles();
  try {
    return await restoreOne(req, scratch, files);
  } finally {
    await files.close();
  }
}

async function restoreOne(req: RestoreChunkRequest, scratch: Scratch, files: TargetFiles): Promise<RestoreChunkResult> {
  const pack = handleKey(req.handle);
  const entry = blobEntryPath(req.cache, req.key, req.rawLength);
  const cached = await readEntry(entry, req.cache.ttlMs, (n) => scratch.buffer('blob', n));
  let cacheDropped = false;
  if (cached !== undefined) {
    let raw: Buffer | undefined;
    try {
      raw = decodeBlob(cached, req, hasher, (n) => scratch.buffer('raw', n), `cached copy of ${req.where}`);
    } catch (error) {
      if (!(error instanceof CorruptDataError)) throw error;
      await dropEntry(entry);
      cacheDropped = true;
    }
    if (raw !== undefined) {
      await files.write(req.targets, raw, req.where);
      return { op: 'restoreChunk', source: 'cache', bytesFetched: 0, bytesFromCache: cached.byteLength, cacheDropped, cacheInserted: 0 };
    }
  }

  const store = storeFor(req.store);
  let blob: Buffer;
  try {
    blob = await store.get(pack, { offset: req.handle.offset, length: req.handle.length }, (n) => scratch.buffer('blob', n));
  } catch (error) {
    if (isNotFound(error)) {
      throw new CorruptDataError('CHUNK_MISSING', `${req.where} (pack ${pack}) is missing from the store ${store.location}; the checkpoint is damaged: restore an older checkpoint or repair the store`, { cause: error });
    }
    throw withContext(error, `fetching ${req.where}`, { pack });
  }
  if (blob.byteLength !== req.handle.length) {
    throw new CorruptDataError('CHUNK_CORRUPT', `${req.where}: pack ${pack} ends before the blob at ${req.handle.offset}+${req.handle.length} (truncated); the checkpoint is damaged: restore an older checkpoint or repair the store`);
  }
  const raw = decodeBlob(blob, req, hasher, (n) => scratch.buffer('raw', n), `${req.where} (pack ${pack} at ${req.handle.offset})`);
  await files.write(req.targets, raw, req.where);
  // The verified copy replaces the bad (or vanished) entry; a cache that cannot be written stays without it.
  const cacheInserted = req.insert ? await writeEntry(entry, [blob]).then(() => blob.byteLength, () => 0) : 0;
  return { op: 'restoreChunk', source: 'remote', bytesFetched: blob.byteLength, bytesFromCache: 0, cacheDropped, cacheInserted };
}
