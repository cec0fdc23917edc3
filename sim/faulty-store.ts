/**
 * A store that fails on purpose: a seeded wrapper injecting transient errors
 * (what a flaky network or a throttling S3 does), optionally permanent errors
 * and latency, at a given rate per operation. Tests and the stress harness use
 * it to show that retries hide transient failures and that a snapshot that
 * still fails commits nothing.
 *
 * Determinism: every decision comes from a PRNG seeded with `seed`, so a
 * failure replays from the seed a test prints. Each thread mixes its thread id
 * into the seed: worker threads open their own `FaultyStore` from the same
 * spec, and identical sequences in every thread would fail the same task
 * numbers everywhere rather than spread failures out.
 *
 * A write fault strikes either before the operation (nothing happened) or,
 * with probability `lostResponse`, after it took effect: the object is stored
 * but the caller sees an error, as when a connection resets while the
 * server's reply is on its way. Retrying such a put-if-absent finds its own
 * object — the case `RetryingStore` must handle.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BroadcastChannel, isMainThread, threadId } from 'node:worker_threads';
import { StoreUnavailableError, errorOf, storeIoError, type ChunkpointError } from '../src/errors.js';
import { prng } from '../src/random.js';
import type { TearHook } from '../src/store/fs.js';
import type { StoreSpec } from '../src/store/spec.js';
import type { ByteRange, IncompleteWrite, ObjectInfo, ObjectReader, ObjectWriter, PublishOptions, PutOptions, PutResult, StagedObject, Store, WriterOptions } from '../src/store/store.js';
import type { StoreWrapperModule } from '../src/store/wrapper.js';

/** The operations faults are drawn for: the Store methods, with `write` for object writers and `read` for readers. */
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

/**
 * `spec` with these faults injected: every thread that opens it (the
 * coordinator's and the workers') wraps its store in a `FaultyStore` of this
 * module, through the spec's wrapper (see src/store/wrapper.ts).
 */
export function withFaults<S extends StoreSpec>(spec: S, faults: FaultSpec): S {
  return { ...spec, wrapper: { module: import.meta.url, options: faults } };
}

/** Called by `openStore` for a spec made by `withFaults`. */
export const wrapStore: StoreWrapperModule['wrapStore'] = (inner, options, hooks) => {
  const faulty = new FaultyStore(inner, options as FaultSpec);
  hooks.setTearHook?.(faulty.tearHook());
  return faulty;
};

/** Name of the BroadcastChannel that `report: true` faults are announced on. */
export const FAULT_REPORT_CHANNEL = 'chunkpoint:injected-faults';

export const FAULT_KINDS = ['transient', 'permanent', 'torn'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a reported fault looks like on FAULT_REPORT_CHANNEL. */
export interface FaultReport {
  kind: FaultKind;
  operation: StoreOperation;
}

/**
 * The details field every error this store injects carries, valued with the
 * fault's kind. Callers tell an injected fault from a real failure by this
 * field alone, never by the wording of a message, which any layer above may
 * rephrase or wrap. Details travel with an error and with each of its causes
 * across the worker boundary (src/errors.ts), so the mark survives a fault
 * injected in a worker thread.
 */
const INJECTED_FAULT = 'injectedFault';

function isFaultKind(value: unknown): value is FaultKind {
  return (FAULT_KINDS as readonly unknown[]).includes(value);
}

/** The kind of the fault this store injected that caused `error` (found anywhere in its cause chain), or undefined for a real failure. */
export function injectedFault(error: unknown): FaultKind | undefined {
  // Bounded: a cause chain that loops back on itself must not hang the caller.
  let c: unknown = error;
  for (let depth = 0; depth < 32 && typeof c === 'object' && c !== null; depth++, c = (c as { cause?: unknown }).cause) {
    const mark = (c as { details?: Record<string, unknown> }).details?.[INJECTED_FAULT];
    if (isFaultKind(mark)) return mark;
  }
  return undefined;
}

let reportChannel: BroadcastChannel | undefined;

function announce(report: FaultReport): void {
  if (reportChannel === undefined) {
    reportChannel = new BroadcastChannel(FAULT_REPORT_CHANNEL);
    // Reporting must never keep a thread (or the process) alive.
    reportChannel.unref();
  }
  reportChannel.postMessage(report);
}

/** Listings fail, if at all, at the start or at the boundaries of pages of this many objects (as S3 pages do). */
const LIST_PAGE = 1000;
const WRITES: ReadonlySet<StoreOperation> = new Set(['put', 'write', 'publish', 'delete']);

export type FaultCounts = Record<FaultKind, number>;

/** Faults injected by every `FaultyStore` of this thread, for tests to check that faults did happen. */
export const injectedInThisThread: FaultCounts = { transient: 0, permanent: 0, torn: 0 };

export class FaultyStore implements Store {
  readonly spec: StoreSpec;
  readonly location: string;
  readonly injected: FaultCounts = { transient: 0, permanent: 0, torn: 0 };
  private readonly random: () => number;

  constructor(
    private readonly inner: Store,
    private readonly faults: FaultSpec,
  ) {
    this.spec = inner.spec;
    this.location = inner.location;
    this.random = prng((faults.seed ^ Math.imul(threadId + 1, 0x9e3779b1)) >>> 0);
  }

  async put(key: string, parts: readonly Uint8Array[], options?: PutOptions): Promise<PutResult> {
    return this.around('put', key, () => this.inner.put(key, parts, options));
  }

  /** Faults strike when the object is finished (before or after it landed), as a failed upload does. */
  async createWriter(key: string, options?: WriterOptions): Promise<ObjectWriter> {
    // A lost response to the creation drops the writer it made, as a caller that never got it
    // would: aborted, so its open file (a spool or staging file) is not left to the garbage collector.
    const inner = await this.around('write', key, () => this.inner.createWriter(key, options), (lost) => lost.abort());
    return {
      key,
      get size() {
        return inner.size;
      },
      write: (parts) => inner.write(parts),
      finish: () => this.around('write', key, () => inner.finish()),
      abort: () => inner.abort(),
    };
  }

  /**
   * The decision half of torn writes, for a directory store to call (it owns
   * the mechanics, see FsStore.tear): a seeded draw, counted and reported
   * like every other injected fault.
   */
  tearHook(): TearHook | undefined {
    const torn = this.faults.torn;
    if (torn === undefined) return undefined;
    return (op, key) => {
      if (this.random() >= torn) return undefined;
      this.injected.torn++;
      injectedInThisThread.torn++;
      if (this.faults.report === true) announce({ kind: 'torn', operation: op });
      return new StoreUnavailableError('STORE_FAULT_INJECTED', `injected torn write: ${op} of ${this.location}/${key} stopped half-way, leaving a temp file (fault injection seed ${this.faults.seed})`, {
        transient: true,
        details: { where: `${this.location}/${key}`, operation: op, [INJECTED_FAULT]: 'torn', torn: true },
      });
    };
  }

  async publish(staged: readonly StagedObject[], options?: PublishOptions): Promise<PutResult[]> {
    return this.around('publish', staged[0]?.key ?? '', () => this.inner.publish(staged, options));
  }

  async get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer> {
    return this.around('get', key, () => this.inner.get(key, range, into));
  }

  /** Faults strike at the open and at any read: a connection that drops mid-body. */
  async openReader(key: string, range?: ByteRange): Promise<ObjectReader> {
    const inner = await this.around('read', key, () => this.inner.openReader(key, range));
    return {
      read: (into) => this.around('read', key, () => inner.read(into)),
      close: () => inner.close(),
    };
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    return this.around('stat', key, () => this.inner.stat(key));
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.listing('list', prefix, this.inner.list(prefix));
  }

  listIncomplete(prefix: string): AsyncIterable<IncompleteWrite> {
    return this.listing('listIncomplete', prefix, this.inner.listIncomplete(prefix));
  }

  async delete(keys: readonly string[]): Promise<void> {
    return this.around('delete', keys[0] ?? '', () => this.inner.delete(keys));
  }

  async syncNames(keys: readonly string[]): Promise<void> {
    return this.around('syncNames', keys[0] ?? '', () => this.inner.syncNames(keys));
  }

  async exists(): Promise<boolean> {
    return this.around('exists', '', () => this.inner.exists());
  }

  /** Runs `run` under the seeded faults; `drop` releases what a run whose response is then "lost" made. */
  private async around<T>(op: StoreOperation, key: string, run: () => Promise<T>, drop?: (made: T) => Promise<void>): Promise<T> {
    await this.delay();
    if (!isMainThread && this.random() < rate(this.faults.workerExit, op)) {
      // Only this worker thread ends (process.exit in a worker stops the thread), as a crash in native code would.
      process.exit(70);
    }
    const fault = this.draw(op);
    if (fault === undefined) return run();
    if (fault === 'transient' && WRITES.has(op) && this.random() < (this.faults.lostResponse ?? 0.5)) {
      const made = await run();
      await drop?.(made).catch(() => undefined);
      throw this.fault(fault, op, key, true);
    }
    throw this.fault(fault, op, key, false);
  }

  private async *listing<T>(op: StoreOperation, prefix: string, objects: AsyncIterable<T>): AsyncIterable<T> {
    await this.delay();
    let count = 0;
    for await (const object of objects) {
      if (count % LIST_PAGE === 0) {
        const fault = this.draw(op);
        if (fault !== undefined) throw this.fault(fault, op, prefix, false);
      }
      count++;
      yield object;
    }
    if (count === 0) {
      const fault = this.draw(op);
      if (fault !== undefined) throw this.fault(fault, op, prefix, false);
    }
  }

  private draw(op: StoreOperation): 'transient' | 'permanent' | undefined {
    const roll = this.random();
    const permanent = rate(this.faults.permanent, op);
    if (roll < permanent) return 'permanent';
    if (roll < permanent + rate(this.faults.transient, op)) return 'transient';
    return undefined;
  }

  private async delay(): Promise<void> {
    const max = this.faults.maxLatencyMs ?? 0;
    if (max > 0) await sleep(Math.floor(this.random() * max));
  }

  private fault(kind: 'transient' | 'permanent', op: StoreOperation, key: string, afterEffect: boolean): ChunkpointError {
    this.injected[kind]++;
    injectedInThisThread[kind]++;
    if (this.faults.report === true) announce({ kind, operation: op });
    const where = key === '' ? this.location : `${this.location}/${key}`;
    if (kind === 'permanent' && this.faults.errno !== undefined) {
      const cause = Object.assign(new Error(`${this.faults.errno}: injected (fault injection seed ${this.faults.seed})`), { code: this.faults.errno });
      // Exactly what the directory store reports for this errno, plus the mark.
      const real = storeIoError(`${op} (injected fault)`, where, cause);
      return errorOf(real.code, real.message, { cause, transient: real.transient, details: { ...real.details, [INJECTED_FAULT]: kind } });
    }
    const what = afterEffect ? 'after it took effect (a lost response)' : 'before it ran';
    return new StoreUnavailableError(
      kind === 'transient' ? 'STORE_FAULT_INJECTED' : 'STORE_FAULT_INJECTED_PERMANENT',
      `injected ${kind} fault: ${op} of ${where} failed ${what} (fault injection seed ${this.faults.seed})`,
      { transient: kind === 'transient', details: { where, operation: op, [INJECTED_FAULT]: kind } },
    );
  }
}

function rate(rates: FaultRates | undefined, op: StoreOperation): number {
  return rates?.[op] ?? rates?.['*'] ?? 0;
}
