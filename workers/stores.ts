/**
 * Each worker opens the stores it is told about itself, once, and keeps them:
 * chunk bytes then go straight between the worker and the store.
 */
import { openStore } from '../src/store/open.js';
import type { Store, StoreSpec } from '../src/store/store.js';

const open = new Map<string, Store>();

export function storeFor(spec: StoreSpec): Store {
  const id = JSON.stringify(spec);
  let store = open.get(id);
  if (store === undefined) {
    store = openStore(spec);
    open.set(id, store);
  }
  return store;
}
