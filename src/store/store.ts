/**
 * The one storage interface every store implements and every caller uses.
 * A `Store` is rooted at a job root: keys are '/'-separated and relative to
 * it, so nothing above this layer ever sees an absolute location.
 *
 * Retry, rate limiting, fault injection and caching wrap this interface rather
 * than live inside a store, so one compliance suite (test/store-compliance)
 * holds every implementation to the same contract.
 */
import { InvalidInputError } from '../errors.js';
import type { FaultSpec } from './faulty.js';
import type { RetryPolicy } from './retry.js';

/** Serializable description of a store, so a worker thread can open the same one itself. */
export type StoreSpec = FsStoreSpec | S3StoreSpec;

/** What every spec may carry besides the location: how `openStore` wraps the store. */
export interface StoreSpecCommon {
  /**
   * Fault injection (tests and stress runs): `openStore` wraps the store in a
   * seeded `FaultyStore`. It travels in the spec so that the stores worker
   * threads open fail the same way as the coordinator's.
   */
  faults?: FaultSpec;
  /** Overrides of the retry policy (see store/retry.ts) for stores that `openStore` wraps with retries. */
  retry?: Partial<RetryPolicy>;
}

export interface FsStoreSpec extends StoreSpecCommon {
  type: 'fs';
  /** Absolute path of the job root directory. */
  root: string;
}

/**
 * An S3 (or S3-compatible: Ceph RGW, MinIO…) job root. Credentials are never
 * part of a spec: the SDK's standard chain finds them (AWS_ACCESS_KEY_ID…,
 * AWS_PROFILE, instance roles), and worker threads inherit the environment.
 */
export interface S3StoreSpec extends StoreSpecCommon {
  type: 's3';
  bucket: string;
  /** Key prefix of the job root: '' or '/'-separated segments ending in '/', e.g. 'checkpoints/orders/'. */
  prefix: string;
  /** Endpoint URL of a non-AWS server, e.g. http://127.0.0.1:7480 (default: AWS for the region). */
  endpoint?: string;
  region?: string;
  /** Path-style requests (http://host/bucket/key) instead of virtual-hosted (http://bucket.host/key). */
  forcePathStyle?: boolean;
}

export interface ObjectInfo {
  key: string;
  size: number;
  mtimeMs: number;
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
 * An object written by `stage` and not yet published. Plain data, so a worker
 * thread can stage and the coordinator publish.
 */
export interface StagedObject {
  key: string;
  /** Store-private name of the staged bytes (fs: the temp file's key); '' when the store published at once. */
  token: string;
  size: number;
  /**
   * Set when the store made the object visible while staging: where a write
   * is durable when it returns (S3), there is nothing to batch.
   */
  published?: PutResult;
}

export interface PublishOptions {
  /** Make the objects' bytes and names durable before reporting them published. */
  durable?: boolean;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface Store {
  readonly spec: StoreSpec;
  /** Human-readable location for messages, e.g. a directory path or s3://bucket/prefix. */
  readonly location: string;
  /**
   * Writes an object from parts (avoids concatenating header and payload).
   * Readers never observe a partially written object.
   */
  put(key: string, parts: readonly Uint8Array[], options?: PutOptions): Promise<PutResult>;
  /**
   * Writes an object that readers do not see until `publish`. Bulk writers
   * stage many objects and publish them in one batch, which pays for
   * durability once per batch (fs: the fsyncs run together at the end
   * instead of stalling every write), while keeping put's promise that a
   * visible object is a complete and durable one.
   */
  stage(key: string, parts: readonly Uint8Array[]): Promise<StagedObject>;
  /**
   * Makes staged objects visible with put-if-absent semantics; results in
   * order ('exists': an object of that key was already there and is kept).
   * Staged objects that a failure leaves unpublished are interrupted writes
   * (see `listIncomplete`), for gc.
   */
  publish(staged: readonly StagedObject[], options?: PublishOptions): Promise<PutResult[]>;
  /**
   * Reads an object or a byte range of it; throws OBJECT_NOT_FOUND when absent.
   * `into`, when given, supplies the memory to read into (a worker's reused
   * scratch, so a restore does not leave a chunk-sized garbage buffer per
   * chunk); stores that cannot read into caller memory ignore it.
   */
  get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer>;
  /** Object size and age, or undefined when absent. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes objects; absent ones are ignored. */
  delete(keys: readonly string[]): Promise<void>;
  /**
   * Marks objects as just used, so a garbage collector's grace period protects
   * them while a snapshot that reuses them is in flight.
   */
  touch(keys: readonly string[]): Promise<void>;
  /**
   * Leftovers of interrupted writes below `prefix`, for gc (fs: temp files;
   * S3: incomplete multipart uploads). Their keys are accepted by `delete`,
   * which removes (aborts) them; they never appear in `list`.
   */
  listIncomplete(prefix: string): AsyncIterable<ObjectInfo>;
  /** Makes the names of objects written with `syncName: false` durable (fs: one fsync per directory). */
  syncNames(keys: readonly string[]): Promise<void>;
  /** Whether the job root exists at all (distinguishes "unknown job" from "no checkpoints"). */
  exists(): Promise<boolean>;
}

export function notFound(key: string, location: string): InvalidInputError {
  return new InvalidInputError('OBJECT_NOT_FOUND', `no object '${key}' in ${location}`, { details: { key, location } });
}

export function isNotFound(error: unknown): boolean {
  return error instanceof InvalidInputError && error.code === 'OBJECT_NOT_FOUND';
}
