/**
 * From a user's store location (a directory today; URLs later) and a job id to
 * a job-root `Store`, and from a serializable spec back to a `Store` inside a
 * worker thread.
 */
import { isAbsolute, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { checkJobId } from '../handle.js';
import { FsStore } from './fs.js';
import type { Store, StoreSpec } from './store.js';

export function jobRootSpec(location: string, jobId: string): StoreSpec {
  checkJobId(jobId);
  if (location.length === 0) {
    throw new InvalidInputError('INVALID_STORE', 'the store location is empty; pass --store <directory>');
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location);
  if (scheme !== null && scheme[1] !== undefined && scheme[1].toLowerCase() !== 'file') {
    throw new InvalidInputError(
      'UNSUPPORTED_STORE',
      `store '${location}' uses the '${scheme[1]}://' scheme, which this build does not support; use a directory path`,
    );
  }
  const dir = scheme === null ? location : new URL(location).pathname;
  return { type: 'fs', root: resolve(dir, jobId) };
}

/** For a job root that is already a directory (e.g. the parent of a relocated chk-<n>). */
export function jobRootSpecFromDir(jobRootDir: string): StoreSpec {
  return { type: 'fs', root: isAbsolute(jobRootDir) ? jobRootDir : resolve(jobRootDir) };
}

export function openStore(spec: StoreSpec): Store {
  switch (spec.type) {
    case 'fs':
      return new FsStore(spec);
    default: {
      const unknown: never = spec.type;
      throw new InvalidInputError('UNSUPPORTED_STORE', `unknown store type '${String(unknown)}'`);
    }
  }
}
