/**
 * Every message that crosses the thread boundary, in one place.
 *
 * Requests and results are small descriptors: chunk bytes never travel
 * between threads (a worker reads and writes them itself), so the main thread
 * stays a coordinator and memory is bounded by the chunks workers hold.
 * Errors come back as data (`SerializedError`) because structured clone drops
 * error subclasses, and with them `kind` and `code`.
 */
import type { CacheSpec } from './cache.js';
import type { SerializedError } from './errors.js';
import type { Handle } from './handle.js';
import type { StagedObject, StoreSpec } from './store/store.js';

export interface WriteChunkRequest {
  op: 'writeChunk';
  store: StoreSpec;
  /** Absolute path of the state file the worker reads itself. */
  file: string;
  /** Relative path, for messages. */
  relPath: string;
  chunkIndex: number;
  offset: number;
  length: number;
  /** The file as listed; a different size or mtime after reading means it changed under us. */
  expect: { size: number; mtimeMs: number };
  /** Store the blob in this task's `taskowned/` area instead of `shared/` (task-private files). */
  owner?: string;
  /** Task-local copy: also put the blob into this cache (room was reserved when `insert`). */
  cache?: CacheUse;
}

/** How a task may use the local cache. */
export interface CacheUse {
  spec: CacheSpec;
  /** The coordinator reserved room: the worker may insert a missing entry. */
  insert: boolean;
}

export interface WriteChunkResult {
  op: 'writeChunk';
  key: string;
  rawLength: number;
  handle: Handle;
  /** False when an identical blob was already stored (deduplicated). */
  created: boolean;
  /**
   * Set when this task wrote the blob: it is staged and becomes visible (and
   * `created` final) only when the coordinator publishes the task's batch,
   * durably, once for all blobs of the snapshot.
   */
  staged?: StagedObject;
  /** Bytes this task wrote to the store (0 when deduplicated). */
  bytesWritten: number;
  /** Bytes this task added to the local cache. */
  cacheInserted: number;
}

export interface RestoreChunkRequest {
  op: 'restoreChunk';
  store: StoreSpec;
  handle: Handle;
  key: string;
  rawLength: number;
  /** Absolute path of the staged file, already created by the coordinator. */
  target: string;
  fileOffset: number;
  relPath: string;
  chunkIndex: number;
  /** Look in this cache first; add what is fetched when `insert`. */
  cache?: CacheUse;
}

export interface RestoreChunkResult {
  op: 'restoreChunk';
  source: 'cache' | 'remote';
  /** Stored (possibly compressed) bytes fetched from the store. */
  bytesFetched: number;
  /** Stored bytes read from the local cache and used. */
  bytesFromCache: number;
  /** Bytes this task added to the local cache. */
  cacheInserted: number;
  /** A cache entry failed verification and was deleted (then refetched). */
  cacheDropped: boolean;
  rawLength: number;
}

/** Restore in place: does this range of an existing file hold the chunk with this key? */
export interface VerifyRangeRequest {
  op: 'verifyRange';
  file: string;
  relPath: string;
  offset: number;
  length: number;
  key: string;
}

export interface VerifyRangeResult {
  op: 'verifyRange';
  match: boolean;
}

/** Scrub: fetch one blob from the store and run every check a restore would. */
export interface CheckBlobRequest {
  op: 'checkBlob';
  store: StoreSpec;
  handle: Handle;
  key: string;
  rawLength: number;
}

export interface CheckBlobResult {
  op: 'checkBlob';
  /** Stored bytes fetched. */
  bytesFetched: number;
  /** What is wrong with the blob (missing or corrupt), as data so a scrub reports every problem. */
  problem?: { code: string; message: string };
}

/** Copy one object between job roots (chunkpoint copy); blobs are verified on the way. */
export interface CopyObjectRequest {
  op: 'copyObject';
  from: StoreSpec;
  to: StoreSpec;
  key: string;
  /** Size listed at the source; a different size read means the source changed under the copy. */
  size: number;
  durable: boolean;
}

export interface CopyObjectResult {
  op: 'copyObject';
  /** Bytes written to the destination (0 when an identical object appeared there meanwhile). */
  bytesCopied: number;
  /** The object was verified as a blob (header, length, content key). */
  verified: boolean;
}

export type WorkerRequest = WriteChunkRequest | RestoreChunkRequest | VerifyRangeRequest | CheckBlobRequest | CopyObjectRequest;
export type WorkerResult = WriteChunkResult | RestoreChunkResult | VerifyRangeResult | CheckBlobResult | CopyObjectResult;

export type ResultFor<R extends WorkerRequest> = Extract<WorkerResult, { op: R['op'] }>;

export type WorkerResponse = { ok: true; result: WorkerResult } | { ok: false; error: SerializedError };
