/**
 * The stack of wrappers a store spec asks for, around a bare store. Apart
 * from `open.ts` so that worker threads, whose S3 calls are relayed to the
 * main thread, never load the S3 client's modules: ~12 ms per thread on this
 * project's 2-core machines, before it can take its first chunk.
 */
import { InvalidInputError } from '../errors.js';
import { FsStore } from './fs.js';
import { RateLimitedStore } from './rate-limit.js';
import { RetryingStore } from './retry.js';
import type { S3StoreSpec, StoreSpec } from './spec.js';
import type { Store } from './store.js';
import { WrappedStore } from './wrapper.js';

/**
 * Opens a spec as a store, wrapped as the spec asks: its wrapper first (so
 * injected faults look like the store's own failures), then retries, then
 * the rate limit around everything (a retried transfer is charged again, as
 * it costs the bandwidth again). S3 stores are always retried — transient
 * failures are part of talking to a remote server; directory stores only
 * when wrapped, since local I/O errors are not transient but a wrapper's
 * injected ones may be. `bareS3` makes the bare S3 store: the main thread's
 * client, or a worker's relay to it.
 */
export function stackStore(spec: StoreSpec, bareS3: (spec: S3StoreSpec) => Store): Store {
  let store: Store;
  let fs: FsStore | undefined;
  switch (spec.type) {
    case 'fs':
      store = fs = new FsStore(spec);
      break;
    case 's3':
      // A worker thread passes its relay to the main thread's S3 store here; the wrappers stay its own.
      store = bareS3(spec);
      break;
    default: {
      const unknown: never = spec;
      throw new InvalidInputError('UNSUPPORTED_STORE', `unknown store type '${String((unknown as { type: unknown }).type)}'`);
    }
  }
  if (spec.wrapper !== undefined) {
    const target = fs;
    store = new WrappedStore(store, spec.wrapper, target === undefined ? {} : { setTearHook: (hook) => (target.tear = hook) });
  }
  // A shorter request deadline shortens the retry budget with it: a stalled server fails in about three deadlines.
  const budget = spec.type === 's3' && spec.requestTimeoutMs !== undefined ? { maxElapsedMs: Math.min(90_000, 3 * spec.requestTimeoutMs) } : {};
  if (spec.type === 's3' || spec.wrapper !== undefined) store = new RetryingStore(store, { ...budget, ...spec.retry });
  if (spec.rateLimit !== undefined) store = new RateLimitedStore(store, spec.rateLimit);
  return store;
}
