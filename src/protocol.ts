/**
 * Every message that crosses the thread boundary, in one place.
 *
 * Requests and results are small descriptors: chunk bytes never travel
 * between threads (a worker reads and writes them itself), so the main thread
 * stays a coordinator and memory is bounded by the chunks workers hold.
 * Errors come back as data (`SerializedError`) because structured clone drops
 * error subclasses, and with them `kind` and `code`.
 */
import type { CacheUse, CachedBlob } from './cache.js';

export type { CacheUse, CachedBlob } from './cache.js';
import type { CodeOfKind, SerializedError } from './errors.js';
import type { Area, Handle } from './format/names.js';
import type { ByteRange, ObjectInfo, StagedObject, StoreSpec } from './store/store.js';
import type { MessagePort } from 'node:worker_threads';

/** A run of chunks of one state file, all to be stored. */
export interface FileRun {
  /** Absolute path of the state file the worker reads itself. */
  file: string;
  /** Relative path, for messages. */
  relPath: string;
  /** The file as listed; a different size or mtime after reading means it changed under us. */
  expect: { size: number; mtimeMs: number };
  chunks: { index: number; offset: number; length: number }[];
}

/**
 * Snapshot: read runs of chunks, hash each, reuse it when the base holds its
 * content (the shared dedupe table), else compress it and append it to a
 * pack of this session, cutting a new pack when the next blob would pass
 * `packSize`. Chunks of a file stay together and in file order.
 */
export interface WritePackRequest {
  op: 'writePack';
  store: StoreSpec;
  area: Area;
  task: string;
  session: string;
  runs: FileRun[];
  packSize: number;
  /** Each pack's bytes are made durable as it is finished, in the worker (publish then syncs only names). */
  durable: boolean;
  /** The base's reusable chunks (dedupe-index.ts), or none on a full snapshot. */
  dedupe?: SharedArrayBuffer;
  /** Task-local copy: also put every chunk stored into this cache. */
  cache?: CacheUse;
}

/**
 * One chunk's outcome, in request order: stored in a pack of this result
 * (`repeat`: the same content as an earlier chunk of this request, stored
 * once), or found in the base (an index into the dedupe table).
 */
export type WrittenChunk =
  | { key: string; rawLength: number; pack: number; offset: number; length: number; repeat?: true }
  | { key: string; rawLength: number; reused: number };

export interface WritePackResult {
  op: 'writePack';
  /** Packs written (staged: visible after the coordinator publishes them). */
  packs: { staged: StagedObject; blobs: number }[];
  chunks: WrittenChunk[];
  bytesRead: number;
  /** Pack bytes written to the store. */
  bytesWritten: number;
  /** Raw bytes of the chunks stored (for the compression ratio). */
  rawBytesNew: number;
  /** Cache entries inserted (task-local copy), for the coordinator's index. */
  inserted: CachedBlob[];
  /** Where this request's time went inside the worker, ms. */
  stages: WorkerStages;
}

/** A worker's time per stage of a `writePack` request: reading state files, hashing, compressing, writing to the store (the cache insert counts as write). */
export interface WorkerStages {
  readMs: number;
  hashMs: number;
  compressMs: number;
  writeMs: number;
}

/** Where a chunk's raw bytes go in the restored state: one or more staged files (the same content may recur). */
export interface ChunkTarget {
  /** Absolute path of the staged file, already created by the coordinator. */
  path: string;
  offset: number;
}

export interface SpanBlob {
  /** Offset of the blob in the pack, and its stored length. */
  at: number;
  length: number;
  key: string;
  rawLength: number;
  targets: ChunkTarget[];
  /** For messages: the first file and chunk index using it. */
  where: string;
}

/**
 * Restore: one ranged read of a pack, streamed: each blob is verified,
 * decompressed and written to its targets as it arrives, so memory is a
 * chunk, not a span.
 */
export interface RestoreSpanRequest {
  op: 'restoreSpan';
  store: StoreSpec;
  key: string;
  offset: number;
  length: number;
  /** In pack order, within [offset, offset + length). */
  blobs: SpanBlob[];
  /** Blobs go into this cache too, in pack order, while the grant lasts. */
  cache?: CacheUse;
}

export interface RestoreSpanResult {
  op: 'restoreSpan';
  bytesFetched: number;
  /** Cache entries inserted, for the coordinator's index. */
  inserted: CachedBlob[];
}

/** A chunk the local cache holds, and where the store has it should the entry fail. */
export interface CachedChunk {
  handle: Handle;
  key: string;
  rawLength: number;
  targets: ChunkTarget[];
  where: string;
}

/**
 * Restore of a run of chunks the local cache holds, in one request (a request
 * per chunk cost more in messages and target-file opens than the reads): each is
 * verified there, and fetched alone from the store if its entry fails.
 */
export interface RestoreChunksRequest {
  op: 'restoreChunks';
  store: StoreSpec;
  chunks: CachedChunk[];
  /** Granted room for every chunk, or none: one fetched from the store (its entry was bad or gone) then goes back into the cache. */
  cache: CacheUse;
}

/** What became of one chunk of a `restoreChunks` request. */
export interface CachedChunkOutcome {
  source: 'cache' | 'remote';
  /** The entry failed verification and was dropped; the chunk came from the store. */
  dropped: boolean;
  /** Size of the chunk's cache entry after the request (0: it has none). */
  entryBytes: number;
}

export interface RestoreChunksResult {
  op: 'restoreChunks';
  /** Stored bytes fetched from the store. */
  bytesFetched: number;
  /** Stored bytes read from the local cache and used. */
  bytesFromCache: number;
  /** One per chunk, in request order. */
  outcomes: CachedChunkOutcome[];
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

/** Scrub: read a span of a pack and run every check a restore would on each blob, writing nothing. */
export interface CheckSpanRequest {
  op: 'checkSpan';
  store: StoreSpec;
  key: string;
  offset: number;
  length: number;
  blobs: { at: number; length: number; key: string; rawLength: number }[];
}

export interface CheckSpanResult {
  op: 'checkSpan';
  bytesFetched: number;
  /** Blobs that failed (by offset), as data so a scrub reports every problem. */
  problems: { at: number; code: CodeOfKind<'corrupt_data'>; message: string }[];
}

/** Copy one object between job roots (chunkpoint copy); packs are verified on the way (header, every blob, trailer). */
export interface CopyObjectRequest {
  op: 'copyObject';
  from: StoreSpec;
  to: StoreSpec;
  key: string;
  /** Size the source checkpoint records (or lists); a different size read means damage or a change under the copy. */
  size: number;
  durable: boolean;
}

export interface CopyObjectResult {
  op: 'copyObject';
  /** Bytes written to the destination (0 when an identical object was there already). */
  bytesCopied: number;
  /** The object was verified as a pack. */
  verified: boolean;
  /** Staged at the destination: the coordinator publishes the batch. */
  staged?: StagedObject;
}

export type WorkerRequest = WritePackRequest | RestoreSpanRequest | RestoreChunksRequest | VerifyRangeRequest | CheckSpanRequest | CopyObjectRequest;
export type WorkerResult = WritePackResult | RestoreSpanResult | RestoreChunksResult | VerifyRangeResult | CheckSpanResult | CopyObjectResult;

export type ResultFor<R extends WorkerRequest> = Extract<WorkerResult, { op: R['op'] }>;

/**
 * What a thread is handed: a request, and a 4-byte flag its operation's
 * abort sets. Aborting never terminates a thread (it runs other operations'
 * requests too); the request sees the flag between chunks and answers ABORTED.
 * (Not "task", piscina's word for it: here a task is always a part of a job's state.)
 */
export interface WorkerMessage {
  request: WorkerRequest;
  cancel: SharedArrayBuffer;
  /**
   * For a request on an S3 store: a port to the main thread's store relay.
   * The thread keeps the first it gets for all its S3 calls and closes the
   * others (see `relaySpecs`).
   */
  relay?: MessagePort;
}

/** The S3 stores a request uses: their calls go through the main thread's relay (src/store/relay.ts). */
export function relaySpecs(request: WorkerRequest): StoreSpec[] {
  let specs: StoreSpec[];
  switch (request.op) {
    case 'writePack':
    case 'restoreSpan':
    case 'restoreChunks':
    case 'checkSpan':
      specs = [request.store];
      break;
    case 'copyObject':
      specs = [request.from, request.to];
      break;
    case 'verifyRange':
      specs = [];
      break;
    default: {
      const unknown: never = request;
      throw new Error(`relaySpecs: unknown request op '${String((unknown as { op: unknown }).op)}'`);
    }
  }
  return specs.filter((s) => s.type === 's3');
}

/**
 * One store call a worker relays to the main thread. On S3, one isolate does
 * all of a process's HTTP: the SDK, its sockets and their read buffers live
 * once instead of once per worker (each isolate kept tens of MB of garbage
 * socket buffers), and bodies cross the boundary as transferred buffers. The
 * worker keeps the retries, fault injection and rate limit around the relay,
 * exactly as around a store of its own.
 */
export type RelayCall =
  | { op: 'get'; key: string; range?: ByteRange }
  | { op: 'openReader'; key: string; range?: ByteRange }
  /**
   * Reads up to `length` bytes into the worker's shared buffer at `offset`: no garbage in the
   * worker's isolate, and no copy there when the buffer is the worker's own scratch memory.
   */
  | { op: 'read'; reader: number; into: SharedArrayBuffer; offset: number; length: number }
  | { op: 'closeReader'; reader: number }
  | { op: 'createWriter'; key: string }
  /** Writes the first `length` bytes of the worker's shared buffer, done with them when it answers. */
  | { op: 'write'; writer: number; data: SharedArrayBuffer; length: number }
  | { op: 'finish'; writer: number }
  | { op: 'abort'; writer: number }
  | { op: 'stat'; key: string }
  | { op: 'delete'; keys: string[] };

export interface RelayRequest {
  id: number;
  /** The store, as `JSON.stringify(spec)` (the relay opens each once). */
  store: string;
  call: RelayCall;
}

export type RelayValue =
  | { kind: 'data'; data: ArrayBuffer; length: number }
  | { kind: 'handle'; handle: number }
  | { kind: 'count'; count: number }
  | { kind: 'staged'; staged: StagedObject }
  | { kind: 'info'; info: ObjectInfo | null }
  | { kind: 'done' };

export type RelayReply = { id: number; ok: true; value: RelayValue } | { id: number; ok: false; error: SerializedError };

export type WorkerResponse = { ok: true; result: WorkerResult } | { ok: false; error: SerializedError };
