/**
 * The one storage interface every store implements and every caller uses.
 * A `Store` is rooted at a job root: keys are '/'-separated and relative to
 * it, so nothing above this layer ever sees an absolute location.
 *
 * Retry, rate limiting and fault injection wrap this interface rather than
 * live inside a store, so one compliance suite (test/store-compliance) holds
 * every implementation to the same contract. This module is the interface
 * only: it imports no implementation.
 */
import type { StoreSpec } from './spec.js';

export type { StoreSpec } from './spec.js';

export interface ObjectInfo {
  key: string;
  size: number;
}

export interface PutOptions {
  /** Fail softly with 'exists' instead of replacing an existing object. */
  ifAbsent?: boolean;
  /** Make the object durable (fsync) before reporting it written. */
  durable?: boolean;
  /**
   * With `durable`: also make its name durable now (fs: fsync the directory).
   * Bulk writers pass false and call `syncNames` once for the batch.
   */
  syncName?: boolean;
}

export type PutResult = 'created' | 'exists' | 'replaced';

/**
 * An object written by an `ObjectWriter` and not yet published. Plain data,
 * so a worker thread can write and the coordinator publish.
 */
export interface StagedObject {
  key: string;
  /** Store-private name of the staged bytes (fs: the temp file's key); '' when the store published at once. */
  token: string;
  size: number;
  /**
   * Set when the store made the object visible when the writer finished:
   * where a write is durable when it returns (S3), there is nothing to batch.
   */
  published?: PutResult;
  /** The staged bytes are durable already (written by a durable writer): `publish` makes only the name durable. */
  synced?: true;
}

export interface WriterOptions {
  /**
   * `finish` makes the bytes durable before it returns (a directory store
   * syncs the staged file there, in the writing thread, instead of in one
   * batch at publish time); S3 writes are durable once finished anyway.
   */
  durable?: boolean;
}

export interface PublishOptions {
  /** Make the objects' bytes and names durable before reporting them published. */
  durable?: boolean;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * Streams one large object into the store (a pack): bytes go out as they
 * come, so memory stays a buffer, not an object. Nothing is visible until
 * `finish` (S3) or the `publish` of what `finish` returns (directory stores).
 */
export interface ObjectWriter {
  readonly key: string;
  /** Bytes written so far. */
  readonly size: number;
  write(parts: readonly Uint8Array[]): Promise<void>;
  /** Completes the object; may be called again after a failure (it is retried as a whole). */
  finish(): Promise<StagedObject>;
  /** Drops everything written; the object never appears. */
  abort(): Promise<void>;
}

/** Streams an object's bytes (or a range of them) into caller memory, in order. */
export interface ObjectReader {
  /** Fills `into` as far as the data goes; returns the bytes read, 0 at the end. */
  read(into: Uint8Array): Promise<number>;
  close(): Promise<void>;
}

export interface Store {
  readonly spec: StoreSpec;
  /** Human-readable location for messages, e.g. a directory path or s3://bucket/prefix. */
  readonly location: string;
  /**
   * Writes a small object from parts (avoids concatenating header and payload).
   * Readers never observe a partially written object.
   */
  put(key: string, parts: readonly Uint8Array[], options?: PutOptions): Promise<PutResult>;
  /** Starts streaming a large object (see ObjectWriter). */
  createWriter(key: string, options?: WriterOptions): Promise<ObjectWriter>;
  /**
   * Makes finished objects visible with put-if-absent semantics; results in
   * order ('exists': an object of that key was already there and is kept).
   * Bulk writers publish many objects in one batch, which pays for durability
   * once per batch (fs: the fsyncs run together at the end instead of
   * stalling every write), while keeping put's promise that a visible object
   * is a complete and durable one. Staged objects a failure leaves
   * unpublished are interrupted writes (see `listIncomplete`), for gc.
   */
  publish(staged: readonly StagedObject[], options?: PublishOptions): Promise<PutResult[]>;
  /**
   * Reads an object or a byte range of it; throws OBJECT_NOT_FOUND when absent.
   * `into`, when given, supplies the memory to read into (a worker's reused
   * scratch); stores that cannot read into caller memory ignore it.
   */
  get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer>;
  /** Opens an object or a byte range of it for streaming; throws OBJECT_NOT_FOUND when absent. */
  openReader(key: string, range?: ByteRange): Promise<ObjectReader>;
  /** Object size, or undefined when absent. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /**
   * Every object whose key starts with `prefix`, in no particular order. A
   * directory store also lists a checkpoint's `_metadata` or `_removed` that
   * is not a regular file (size 0), so that its id is never hidden; reading
   * it fails with NOT_A_REGULAR_FILE.
   */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes objects; absent ones are ignored. */
  delete(keys: readonly string[]): Promise<void>;
  /**
   * Leftovers of interrupted writes below `prefix`, for gc (fs: temp files;
   * S3: incomplete multipart uploads), with the time their name carries
   * (0 when it carries none). Their keys are accepted by `delete`, which
   * removes (aborts) them; they never appear in `list`.
   */
  listIncomplete(prefix: string): AsyncIterable<IncompleteWrite>;
  /** Makes the names of objects written with `syncName: false` durable (fs: one fsync per directory). */
  syncNames(keys: readonly string[]): Promise<void>;
  /** Whether the job root exists at all (distinguishes "unknown job" from "no checkpoints"). */
  exists(): Promise<boolean>;
}

export interface IncompleteWrite {
  key: string;
  /** The key of the object it was going to be. */
  target: string;
  /** When it was started, from its name (ms since the epoch; 0 when unknown). */
  timeMs: number;
}
