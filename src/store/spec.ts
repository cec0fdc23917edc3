/**
 * Serializable descriptions of stores and of what wraps them, so a worker
 * thread can open the same store (with the same faults, retries and rate
 * limit) itself. Plain data only: specs cross the thread boundary.
 */

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
  /** Bytes per second for reads and writes, shared by every thread of the operation (see store/rate-limit.ts). */
  rateLimit?: RateLimitSpec;
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

export const STORE_OPERATIONS = ['put', 'write', 'publish', 'get', 'read', 'stat', 'list', 'listIncomplete', 'delete', 'syncNames', 'exists'] as const;
export type StoreOperation = (typeof STORE_OPERATIONS)[number];

/** Probability of a fault per call, by operation; '*' covers the operations not named. */
export type FaultRates = Partial<Record<StoreOperation | '*', number>>;

export interface FaultSpec {
  seed: number;
  /** Transient failures (retried by `RetryingStore`). */
  transient?: FaultRates;
  /** Permanent failures (fail at once; for testing clean failure). */
  permanent?: FaultRates;
  /** Share of write faults (put, write, publish, delete) that strike after the write took effect (default 0.5). */
  lostResponse?: number;
  /** Each call first waits a random 0..maxLatencyMs milliseconds (default 0). */
  maxLatencyMs?: number;
  /**
   * Permanent faults look like this filesystem error (e.g. 'ENOSPC', 'EACCES',
   * 'EIO'), as the directory store reports it, instead of a generic injected fault.
   */
  errno?: string;
  /** In a worker thread, the thread dies (exits) before the operation: a crash mid-chunk. Never in the main thread. */
  workerExit?: FaultRates;
  /**
   * Directory stores only, `put` and object writers: a torn write, as a crash
   * mid-write leaves it — part of the object lands in a temp file that stays
   * behind, and the write fails transiently. Drawn only when set, so the
   * other faults of a seed stay the same with or without it.
   */
  torn?: number;
  /**
   * Announce every injected fault on the FAULT_REPORT_CHANNEL broadcast
   * channel, so one listener per process can count the faults of all its
   * worker threads (the stress harness does).
   */
  report?: boolean;
}
