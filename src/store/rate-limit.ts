/**
 * A bandwidth limit on store reads and writes (restic's --limit-upload,
 * borg's --upload-ratelimit, RocksDB BackupEngine's rate limiters), wrapped
 * around the store interface like retries.
 *
 * One limit covers a whole operation: the coordinator and every worker
 * thread charge the same shared counter (a SharedArrayBuffer travelling in
 * the store spec), a "virtual clock" in the manner of GCRA: each transfer of
 * n bytes advances the clock by n / rate, and waits until the clock is no
 * more than one second ahead of real time (a one-second burst).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidInputError } from '../errors.js';
import type { RateLimitSpec } from './spec.js';
import type { ByteRange, IncompleteWrite, ObjectInfo, ObjectReader, ObjectWriter, PublishOptions, PutOptions, PutResult, StagedObject, Store, StoreSpec, WriterOptions } from './store.js';

const BURST_US = 1_000_000n;
/** The smallest limit accepted: below it a single pack would take minutes. */
export const MIN_RATE = 64 * 1024;

/** A new limit, to put into the specs of every store an operation opens. */
export function rateLimitSpec(bytesPerSecond: number): RateLimitSpec {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < MIN_RATE) {
    throw new InvalidInputError('INVALID_RATE_LIMIT', `rate limit ${bytesPerSecond} bytes/s is too low or not a number; use at least 64KiB (e.g. 50MiB for 50 MiB/s)`);
  }
  return { bytesPerSecond, id: Math.random().toString(36).slice(2), state: new SharedArrayBuffer(8) };
}

/** Waits until `bytes` may be transferred under `limit`. */
export async function charge(limit: RateLimitSpec, bytes: number): Promise<void> {
  if (bytes <= 0) return;
  const clock = new BigInt64Array(limit.state);
  const cost = BigInt(Math.ceil((bytes / limit.bytesPerSecond) * 1e6));
  const now = BigInt(Date.now()) * 1000n;
  let start: bigint;
  for (;;) {
    const old = Atomics.load(clock, 0);
    start = old > now ? old : now;
    if (Atomics.compareExchange(clock, 0, old, start + cost) === old) break;
  }
  const ahead = start + cost - now - BURST_US;
  if (ahead > 0n) await sleep(Number(ahead / 1000n));
}

export class RateLimitedStore implements Store {
  readonly spec: StoreSpec;
  readonly location: string;

  constructor(
    private readonly inner: Store,
    private readonly limit: RateLimitSpec,
  ) {
    this.spec = inner.spec;
    this.location = inner.location;
  }

  async put(key: string, parts: readonly Uint8Array[], options?: PutOptions): Promise<PutResult> {
    await charge(this.limit, parts.reduce((sum, p) => sum + p.byteLength, 0));
    return this.inner.put(key, parts, options);
  }

  async createWriter(key: string, options?: WriterOptions): Promise<ObjectWriter> {
    const inner = await this.inner.createWriter(key, options);
    const limit = this.limit;
    return {
      key,
      get size() {
        return inner.size;
      },
      // Charged as the bytes are produced: the upload itself happens at finish (S3) or is local until publish.
      async write(parts) {
        await charge(limit, parts.reduce((sum, p) => sum + p.byteLength, 0));
        await inner.write(parts);
      },
      finish: () => inner.finish(),
      abort: () => inner.abort(),
    };
  }

  publish(staged: readonly StagedObject[], options?: PublishOptions): Promise<PutResult[]> {
    return this.inner.publish(staged, options);
  }

  async get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer> {
    const data = await this.inner.get(key, range, into);
    await charge(this.limit, data.byteLength);
    return data;
  }

  async openReader(key: string, range?: ByteRange): Promise<ObjectReader> {
    const inner = await this.inner.openReader(key, range);
    const limit = this.limit;
    return {
      async read(into) {
        const n = await inner.read(into);
        await charge(limit, n);
        return n;
      },
      close: () => inner.close(),
    };
  }

  stat(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.stat(key);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  listIncomplete(prefix: string): AsyncIterable<IncompleteWrite> {
    return this.inner.listIncomplete(prefix);
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.inner.delete(keys);
  }

  syncNames(keys: readonly string[]): Promise<void> {
    return this.inner.syncNames(keys);
  }

  exists(): Promise<boolean> {
    return this.inner.exists();
  }
}
