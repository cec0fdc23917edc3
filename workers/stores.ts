/**
 * Each worker opens the stores it is told about itself, once, and keeps them:
 * chunk bytes go straight between the worker and a directory store; S3 calls
 * go through the main thread's relay (one isolate does a process's HTTP),
 * wrapped in this thread's retries, faults and rate limit.
 */
import { s3Location } from '../src/store/s3/location.js';
import { stackStore } from '../src/store/stack.js';
import type { Store, StoreSpec } from '../src/store/store.js';
import { RelayedStore } from './relayed-store.js';

const open = new Map<string, Store>();

export function storeFor(spec: StoreSpec): Store {
  const id = JSON.stringify(spec);
  let store = open.get(id);
  if (store === undefined) {
    store = stackStore(spec, (s3) => new RelayedStore(s3, s3Location(s3)));
    open.set(id, store);
  }
  return store;
}

