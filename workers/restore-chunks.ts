/**
 * Restore of chunks the local cache holds: each entry is read and verified
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
import type { CachedChunk, CachedChunkOutcome, RestoreChunksRequest, RestoreChunksResult } from '../src/protocol.js';
import { isNotFound } from '../src/store/not-found.js';
import type { Store } from '../src/store/store.js';
import type { Cancellation } from './cancellation.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';
import { TargetFiles } from './restore-span.js';

const hasher = await loadHasher();

export async function restoreChunks(req: RestoreChunksRequest, scratch: Scratch, cancel: Cancellation): Promise<RestoreChunksResult> {
  // One set of open target files for the whole run: consecutive chunks mostly land in the same file.
  const files = new TargetFiles();
  const result: RestoreChunksResult = { op: 'restoreChunks', bytesFetched: 0, bytesFromCache: 0, outcomes: [] };
  try {
    for (const chunk of req.chunks) {
      cancel.check();
      const outcome = await restoreOne(req, chunk, scratch, files, result);
      result.outcomes.push(outcome);
    }
  } finally {
    await files.close();
  }
  return result;
}

async function restoreOne(req: RestoreChunksRequest, chunk: CachedChunk, scratch: Scratch, files: TargetFiles, totals: RestoreChunksResult): Promise<CachedChunkOutcome> {
  const entry = blobEntryPath(req.cache.spec, chunk.key, chunk.rawLength);
  // The entry is the blob as the pack holds it: exactly the handle's length, never more.
  const cached = await readEntry(entry, req.cache.spec.ttlMs, chunk.handle.length, (n) => scratch.blob('blob', n));
  let dropped = false;
  if (cached !== undefined) {
    let raw: Buffer | undefined;
    try {
      raw = decodeBlob(cached, chunk, hasher, (n) => scratch.aligned('raw', n), `cached copy of ${chunk.where}`);
    } catch (error) {
      if (!(error instanceof CorruptDataError)) throw error;
      await dropEntry(entry);
      dropped = true;
    }
    if (raw !== undefined) {
      await files.write(chunk.targets, raw, chunk.where);
      totals.bytesFromCache += cached.byteLength;
      return { source: 'cache', dropped, entryBytes: cached.byteLength };
    }
  }

  const blob = await fetchChunk(storeFor(req.store), chunk, scratch);
  const raw = decodeBlob(blob, chunk, hasher, (n) => scratch.aligned('raw', n), `${chunk.where} (pack ${handleKey(chunk.handle)} at ${chunk.handle.offset})`);
  await files.write(chunk.targets, raw, chunk.where);
  totals.bytesFetched += blob.byteLength;
  // The verified copy replaces the bad (or vanished) entry; a cache that cannot be written stays without it.
  const entryBytes = req.cache.bytes > 0 ? await writeEntry(entry, [blob], req.cache.spec.shared === true).then(() => blob.byteLength, () => 0) : 0;
  return { source: 'remote', dropped, entryBytes };
}

async function fetchChunk(store: Store, chunk: CachedChunk, scratch: Scratch): Promise<Buffer> {
  const pack = handleKey(chunk.handle);
  let blob: Buffer;
  try {
    blob = await store.get(pack, { offset: chunk.handle.offset, length: chunk.handle.length }, (n) => scratch.blob('blob', n));
  } catch (error) {
    if (isNotFound(error)) {
      throw new CorruptDataError('CHUNK_MISSING', `${chunk.where} (pack ${pack}) is missing from the store ${store.location}; the checkpoint is damaged: restore an older checkpoint or repair the store`, { cause: error });
    }
    throw withContext(error, `fetching ${chunk.where}`, { pack });
  }
  if (blob.byteLength !== chunk.handle.length) {
    throw new CorruptDataError('CHUNK_CORRUPT', `${chunk.where}: pack ${pack} ends before the blob at ${chunk.handle.offset}+${chunk.handle.length} (truncated); the checkpoint is damaged: restore an older checkpoint or repair the store`);
  }
  return blob;
}
