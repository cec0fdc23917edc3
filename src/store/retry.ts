/**
 * Retries of transient store failures, in one place for every store and
 * every caller: bounded exponential backoff with full jitter.
 *
 * Why here and not in the S3 SDK: the SDK's own retries are set to (almost)
 * none (see s3/client.ts), so one policy decides — a snapshot's hundreds of
 * concurrent requests back off with jitter instead of retrying in lockstep
 * (AWS's "full jitter": delay = random(0, min(cap, base * 2^attempt))), the
 * total time spent retrying is bounded, and retries of put-if-absent,
 * listings and faults injected by sim/faulty-store.ts get the same treatment as a
 * real server's 503.
 *
 * What is transient is decided where the failure is understood: each code's
 * catalogue entry says whether it usually is (error-codes.ts), and a store
 * that knows better for one failure says so in the error's `transient` (an
 * S3 response: 5xx, throttling, connection resets, timeouts). Everything
 * else — 403, a missing bucket, bad input, corrupt data — fails at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ChunkpointError, errorOf } from '../errors.js';
import type { RetryPolicy } from './spec.js';
import type { ByteRange, IncompleteWrite, ObjectInfo, ObjectReader, ObjectWriter, PublishOptions, PutOptions, PutResult, StagedObject, Store, StoreSpec, WriterOptions } from './store.js';

export type { RetryPolicy } from './spec.js';

/**
 * 8 attempts, delays capped at 100 ms · 2^n and 10 s: at most ~25 s of
 * waiting (~13 s expected) before a failure is reported — long enough to ride
 * out an S3 503 SlowDown burst or a gateway restart, short enough that an
 * unreachable store fails a snapshot within a minute. No retry starts more
 * than 90 s after the first attempt, so a store whose requests time out
 * (S3: 30 s each) fails within about two minutes, not eight.
 */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 8, baseDelayMs: 100, maxDelayMs: 10_000, maxElapsedMs: 90_000 };

/** Whether this failure is worth retrying. */
export function isTransient(error: unknown): boolean {
  return error instanceof ChunkpointError && error.transient;
}

/** The full-jitter delay before retry number `retry` (0-based). */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/**
 * Whether retrying after failed attempt number `attempt` (0-based) would pass
 * the policy: its attempts used up, or `elapsedMs` plus the coming `delayMs`
 * beyond its time budget. One rule for single calls and listings alike.
 */
function budgetSpent(policy: RetryPolicy, attempt: number, elapsedMs: number, delayMs: number): boolean {
  return attempt + 1 >= policy.maxAttempts || elapsedMs + delayMs > policy.maxElapsedMs;
}

/** Runs `operation` until it succeeds, fails permanently, or the attempts are used up. */
export async function withRetries<T>(policy: RetryPolicy, operation: (attempt: number) => Promise<T>): Promise<T> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!isTransient(error)) throw error;
      const delay = backoffDelay(policy, attempt);
      if (budgetSpent(policy, attempt, Date.now() - started, delay)) throw gaveUp(error as ChunkpointError, attempt + 1, Date.now() - started);
      await sleep(delay);
    }
  }
}

/** The last transient error, saying that retrying did not help; still transient, so an outer layer may try again later. */
function gaveUp(error: ChunkpointError, attempts: number, elapsedMs: number): ChunkpointError {
  return errorOf(error.code, `${error.message} (still failing after ${attempts} attempts in ${Math.round(elapsedMs / 1000)} s)`, {
    cause: error.cause ?? error,
    transient: error.transient,
    details: { ...error.details, attempts },
  });
}

export class RetryingStore implements Store {
  readonly spec: StoreSpec;
  readonly location: string;
  readonly policy: RetryPolicy;

  constructor(
    private readonly inner: Store,
    policy: Partial<RetryPolicy> = {},
  ) {
    this.spec = inner.spec;
    this.location = inner.location;
    this.policy = { ...DEFAULT_RETRY_POLICY, ...policy };
  }

  async put(key: string, parts: readonly Uint8Array[], options: PutOptions = {}): Promise<PutResult> {
    return withRetries(this.policy, async (attempt) => {
      const result = await this.inner.put(key, parts, options);
      // A retried put-if-absent that finds the object may be finding its own
      // earlier attempt, whose response was lost (connection reset after the
      // server stored it). Same bytes: it was ours. Without this check a
      // checkpoint commit could report CHECKPOINT_EXISTS for a checkpoint it
      // did commit.
      if (attempt > 0 && result === 'exists' && options.ifAbsent === true && (await this.holds(key, parts))) return 'created';
      return result;
    });
  }

  async createWriter(key: string, options?: WriterOptions): Promise<ObjectWriter> {
    const inner = await withRetries(this.policy, () => this.inner.createWriter(key, options));
    const policy = this.policy;
    const holds = (staged: StagedObject): Promise<boolean> => this.holdsSize(key, staged.size);
    return {
      key,
      get size() {
        return inner.size;
      },
      write: (parts) => inner.write(parts),
      // A lost response leaves a staged write behind (fs) that gc sweeps, or a
      // published object (S3): a pack's name is its writer's alone, so finding
      // it with the size written means the lost attempt was ours.
      finish: () =>
        withRetries(policy, async (attempt) => {
          const staged = await inner.finish();
          if (attempt > 0 && staged.published === 'exists' && (await holds(staged))) return { ...staged, published: 'created' as const };
          return staged;
        }),
      abort: () => inner.abort(),
    };
  }

  /**
   * Publishing is idempotent: an object a failed attempt already published is
   * found again ('exists'). Staged objects are the writer's alone (a pack's
   * name is unique to its session), so one found at its staged size after a
   * retry is the lost attempt's work: reported 'created', as the first
   * attempt would have.
   */
  publish(staged: readonly StagedObject[], options?: PublishOptions): Promise<PutResult[]> {
    return withRetries(this.policy, async (attempt) => {
      const results = await this.inner.publish(staged, options);
      if (attempt === 0) return results;
      return Promise.all(results.map(async (r, i) => (r === 'exists' && staged[i] !== undefined && staged[i].published === undefined && (await this.holdsSize(staged[i].key, staged[i].size)) ? 'created' : r)));
    });
  }

  get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer> {
    return withRetries(this.policy, () => this.inner.get(key, range, into));
  }

  /**
   * A reader whose stream breaks (a connection reset mid-body) is reopened
   * at the first byte not yet delivered, so the caller sees one unbroken
   * stream; the attempts and time are bounded as for any operation.
   */
  async openReader(key: string, range?: ByteRange): Promise<ObjectReader> {
    const start = range?.offset ?? 0;
    const end = range === undefined ? undefined : start + range.length;
    let position = start;
    const open = (): Promise<ObjectReader> => withRetries(this.policy, () => this.inner.openReader(key, end === undefined ? (position === 0 ? undefined : { offset: position, length: Number.MAX_SAFE_INTEGER - position }) : { offset: position, length: end - position }));
    let reader = await open();
    const policy = this.policy;
    return {
      async read(into) {
        const n = await withRetries(policy, async (attempt) => {
          if (attempt > 0) {
            await reader.close().catch(() => undefined);
            reader = await open();
          }
          return reader.read(into);
        });
        position += n;
        return n;
      },
      close: () => reader.close(),
    };
  }

  stat(key: string): Promise<ObjectInfo | undefined> {
    return withRetries(this.policy, () => this.inner.stat(key));
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.resumable((inner) => inner.list(prefix));
  }

  listIncomplete(prefix: string): AsyncIterable<IncompleteWrite> {
    return this.resumable((inner) => inner.listIncomplete(prefix));
  }

  // Deleting is idempotent (absent keys are ignored), so a batch that failed half-way is simply sent again.
  delete(keys: readonly string[]): Promise<void> {
    return withRetries(this.policy, () => this.inner.delete(keys));
  }

  syncNames(keys: readonly string[]): Promise<void> {
    return withRetries(this.policy, () => this.inner.syncNames(keys));
  }

  exists(): Promise<boolean> {
    return withRetries(this.policy, () => this.inner.exists());
  }

  private async holdsSize(key: string, size: number): Promise<boolean> {
    const info = await withRetries(this.policy, () => this.inner.stat(key));
    return info?.size === size;
  }

  private async holds(key: string, parts: readonly Uint8Array[]): Promise<boolean> {
    const size = parts.reduce((sum, p) => sum + p.byteLength, 0);
    // Its own reads are retried: a transient failure here would otherwise fail the
    // whole put attempt, and with two more chances to fail per attempt a put could
    // exhaust its attempts on a store that merely flickers.
    const info = await withRetries(this.policy, () => this.inner.stat(key));
    if (info?.size !== size) return false;
    const stored = await withRetries(this.policy, () => this.inner.get(key));
    let offset = 0;
    for (const part of parts) {
      if (Buffer.compare(stored.subarray(offset, offset + part.byteLength), part) !== 0) return false;
      offset += part.byteLength;
    }
    return true;
  }

  /**
   * A listing that fails part-way (an S3 page request dropped) is started
   * again and the objects already yielded are skipped, so callers see each
   * object once. The price is one remembered key per listed object, the same
   * order of memory as gc's set of referenced blobs.
   */
  private async *resumable<T extends { key: string }>(listing: (inner: Store) => AsyncIterable<T>): AsyncIterable<T> {
    const seen = new Set<string>();
    // The time budget runs from the last object listed: a stalled server fails a listing as soon as any
    // other call (about three request deadlines), while a long listing that keeps progressing is not cut short.
    let progressAt = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        for await (const object of listing(this.inner)) {
          if (seen.has(object.key)) continue;
          seen.add(object.key);
          yield object;
          // Set on resuming: the time the caller spends on an object is not the store's.
          progressAt = Date.now();
        }
        return;
      } catch (error) {
        if (!isTransient(error)) throw error;
        const delay = backoffDelay(this.policy, attempt);
        const stalledMs = Date.now() - progressAt;
        if (budgetSpent(this.policy, attempt, stalledMs, delay)) throw gaveUp(error as ChunkpointError, attempt + 1, stalledMs);
        await sleep(delay);
      }
    }
  }
}
