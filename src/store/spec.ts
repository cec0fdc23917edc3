/**
 * Serializable descriptions of stores and of what wraps them, so a worker
 * thread can open the same store (with the same wrapper, retries and rate
 * limit) itself. Plain data only: specs cross the thread boundary.
 */

export type StoreSpec = FsStoreSpec | S3StoreSpec;

/** What every spec may carry besides the location: how `openStore` wraps the store. */
export interface StoreSpecCommon {
  /**
   * A wrapper that tooling outside the library puts around the store (fault
   * injection in the tests and the stress harness: sim/faulty-store.ts). It
   * travels in the spec so that the stores worker threads open are wrapped
   * the same way as the coordinator's.
   */
  wrapper?: WrapperSpec;
  /** Overrides of the retry policy (see store/retry.ts) for stores that `openStore` wraps with retries. */
  retry?: Partial<RetryPolicy>;
  /** Bytes per second for reads and writes, shared by every thread of the operation (see store/rate-limit.ts). */
  rateLimit?: RateLimitSpec;
}

/**
 * Names a module that wraps stores, and what to tell it. `openStore` imports
 * the module in each thread that opens the store, and calls its `wrapStore`
 * (see `StoreWrapperModule` in store/wrapper.ts) innermost, before retries and
 * the rate limit.
 */
export interface WrapperSpec {
  /** URL of an ES module exporting `wrapStore`. */
  module: string;
  /** Plain data for the module (it crosses threads with the spec). */
  options: unknown;
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
  /** Send `Expect: 100-continue` before large bodies (the SDK's default, off here: one round trip per pack saved). */
  expectContinue?: boolean;
  /** Milliseconds a request may take before it is abandoned as a transient failure (default 60 s). */
  requestTimeoutMs?: number;
}

export interface RetryPolicy {
  /** Attempts per operation, the first one included. */
  maxAttempts: number;
  /** Upper bound of the first retry's delay. */
  baseDelayMs: number;
  /** Upper bound of any single delay. */
  maxDelayMs: number;
  /** No retry starts later than this after the first attempt: a dead store fails in bounded time. */
  maxElapsedMs: number;
}

export interface RateLimitSpec {
  bytesPerSecond: number;
  /** Names one limiter: stores opened with the same id (in any thread) share it. */
  id: string;
  /** The limiter's shared state (see store/rate-limit.ts). */
  state: SharedArrayBuffer;
}
