/**
 * The coordinator's handle on the worker threads: a piscina pool that runs
 * typed requests and turns error payloads back into typed errors.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { ChunkpointError, InternalError, InvalidInputError, abortedError, checkAborted, deserializeError } from './errors.js';
import { relaySpecs, type ResultFor, type WorkerRequest, type WorkerMessage, type WorkerResponse } from './protocol.js';
import { StoreRelay } from './store/relay.js';

export interface PoolOptions {
  /** Worker threads (default: the machine's available parallelism). */
  threads?: number;
  /**
   * Requests each thread runs at once (default 2): while one waits for its
   * read or write, another computes. Each running request holds its own
   * scratch buffers (a few chunks). (Not "tasks": a task is a job's.)
   */
  requestsPerThread?: number;
  /**
   * Store reads a restore, verify or copy keeps in flight (default 8): more
   * than the CPU threads, since a read mostly waits for the store. Each costs
   * a chunk or two of scratch memory.
   */
  ioConcurrency?: number;
}

export const DEFAULT_REQUESTS_PER_THREAD = 2;
export const DEFAULT_IO_CONCURRENCY = 8;
/** Young-generation cap of each worker thread: an S3 restore through a cache peaked ~6 MB lower with it (138-139 vs 144-145 MiB). */
const WORKER_YOUNG_GENERATION_MB = 4;

export class WorkerPool {
  private piscinaInstance: Piscina | undefined;
  readonly threads: number;
  readonly requestsPerThread: number;
  /**
   * Requests a coordinator keeps in flight: every thread busy with its
   * `requestsPerThread` plus one queued, so no thread waits for the main
   * thread between requests. Bounded, so memory does not grow with the state.
   */
  readonly queueDepth: number;
  /** Pack reads in flight for restores, scrubs and copies. */
  readonly ioConcurrency: number;
  private closed = false;
  /** Serves the threads' S3 calls: one isolate does the process's HTTP. */
  private readonly relay = new StoreRelay();
  /** Errors the pool reported with no request to give them to (see the 'error' listener). */
  strayErrors = 0;
  lastStrayError: unknown;

  constructor(options: PoolOptions = {}) {
    this.threads = Math.max(1, options.threads ?? availableParallelism());
    const perThread = options.requestsPerThread ?? DEFAULT_REQUESTS_PER_THREAD;
    if (!Number.isSafeInteger(perThread) || perThread < 1 || perThread > 64) {
      throw new InvalidInputError('INVALID_REQUESTS_PER_THREAD', `requests per thread ${perThread} is out of range; use 1..64`);
    }
    this.requestsPerThread = perThread;
    this.queueDepth = this.threads * (perThread + 1);
    const io = options.ioConcurrency ?? DEFAULT_IO_CONCURRENCY;
    if (!Number.isSafeInteger(io) || io < 1 || io > 256) {
      throw new InvalidInputError('INVALID_IO_CONCURRENCY', `store reads in flight ${io} is out of range; use 1..256`);
    }
    this.ioConcurrency = io;
  }

  /** Threads start on first use: list, inspect and gc never need them. */
  private get piscina(): Piscina {
    if (this.piscinaInstance !== undefined) return this.piscinaInstance;
    const piscina = new Piscina({
      // Compiled layout: dist/src/pool.js -> dist/workers/entry.cjs, which imports worker.js (see there why).
      filename: new URL('../workers/entry.cjs', import.meta.url).href,
      minThreads: this.threads,
      maxThreads: this.threads,
      // Each running request has its own scratch set (workers/scratch.ts):
      // memory stays threads x requests per thread x a few chunks.
      // Coordinators bound what they keep in flight: CPU-bound work to requestsPerThread per
      // thread, store reads to ioConcurrency in all.
      concurrentTasksPerWorker: Math.max(this.requestsPerThread, Math.ceil(this.ioConcurrency / this.threads)),
      idleTimeout: 30_000,
      // piscina's default ('sync') parks an idle thread in Atomics.wait, which stops its event loop:
      // a thread warmed before the first request would not load its modules until that request
      // arrived (~200 ms on the critical path of every restore). Requests here take milliseconds,
      // so a message event per request costs nothing measurable.
      atomics: 'disabled',
      // A worker's JS garbage is small (its data lives in reused scratch memory), so a small
      // nursery costs little; V8's default lets each thread grow one of tens of MB.
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    // piscina emits 'error' for what it cannot hand to a request: a reply that
    // arrives from a thread it is tearing down (close() while a request runs:
    // the reply can already be queued), or a thread that died while idle
    // (piscina starts another). Neither concerns a request still waiting, and an
    // EventEmitter without a listener would throw it into the embedding process.
    piscina.on('error', (error: unknown) => {
      this.strayErrors += 1;
      this.lastStrayError = error;
    });
    this.piscinaInstance = piscina;
    return this.piscinaInstance;
  }

  /** Starts the threads now (they load their modules meanwhile), for an operation that will need them after some store round trips. */
  warm(): void {
    if (!this.closed) void this.piscina;
  }

  async run<R extends WorkerRequest>(request: R, signal?: AbortSignal): Promise<ResultFor<R>> {
    if (this.closed) throw new InternalError('POOL_CLOSED', 'the worker pool was closed; create a new Chunkpoint instance');
    checkAborted(signal);
    // The signal is not piscina's. piscina's abort rejects the run at once;
    // it is documented to terminate the request's thread (killing the other
    // operations' requests running there), and in 5.3 leaves the request running,
    // still writing after we returned, its reply arriving for nobody. The
    // request watches this flag instead, and we settle only after it has.
    const cancel = new SharedArrayBuffer(4);
    const flag = new Int32Array(cancel);
    const onAbort = (): void => void Atomics.store(flag, 0, 1);
    signal?.addEventListener('abort', onAbort, { once: true });
    let response: WorkerResponse;
    try {
      // A port per S3 request: the thread keeps the first it gets for good and closes the rest.
      const relay = relaySpecs(request).length > 0 ? this.relay.connect() : undefined;
      const message: WorkerMessage = relay === undefined ? { request, cancel } : { request, cancel, relay };
      response = (await this.piscina.run(message, relay === undefined ? {} : { transferList: [relay] })) as WorkerResponse;
    } catch (error) {
      if (error instanceof ChunkpointError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw new InternalError('WORKER_FAILED', `a worker thread failed while running '${request.op}': ${message}`, { cause: error });
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (!response.ok && response.error.code === 'ABORTED' && signal?.aborted === true) throw abortedError(signal);
    if (!response.ok) throw deserializeError(response.error);
    if (response.result.op !== request.op) {
      throw new InternalError('BAD_RESPONSE', `worker answered '${response.result.op}' to a '${request.op}' request`);
    }
    return response.result as ResultFor<R>;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscinaInstance?.destroy();
    this.relay.close();
  }
}
