/**
 * From a user's store location (a directory, `file://` URL or `s3://bucket/prefix`)
 * and a job id to a job-root `Store`, and from a serializable spec back to a
 * `Store` inside a worker thread.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidInputError, apiName } from '../errors.js';
import { checkJobId, printable } from '../format/names.js';
import { checkKeyLength, isS3Url, parseS3Url, s3JobRootSpec, s3Spec } from './s3/location.js';
import { S3Store } from './s3/store.js';
import type { S3StoreSpec, StoreSpec } from './spec.js';
import { stackStore } from './stack.js';
import type { Store } from './store.js';

const STORE_HINT = 'use a directory path or s3://<bucket>/<prefix>';

export function jobRootSpec(location: string, jobId: string): StoreSpec {
  checkJobId(jobId);
  if (location.length === 0) {
    throw new InvalidInputError('INVALID_STORE', `the store location is empty; set ${apiName('store')} to a directory or s3://<bucket>/<prefix>`);
  }
  if (isS3Url(location)) return s3JobRootSpec(location, jobId);
  return { type: 'fs', root: resolve(localPath(location), jobId) };
}

/**
 * A job root named directly: a directory, or `s3://bucket/prefix/<jobId>`
 * (whose last segment is the job id). Used where the user points at the job
 * root itself, e.g. `chunkpoint copy`.
 */
export function jobRootSpecFromLocation(location: string): StoreSpec {
  if (location.length === 0) throw new InvalidInputError('INVALID_STORE', `the job root location is empty; ${STORE_HINT}/<jobId>`);
  if (isS3Url(location)) {
    const { bucket, segments } = parseS3Url(location);
    const jobId = segments.at(-1);
    if (jobId === undefined) {
      throw new InvalidInputError('INVALID_STORE', `'${printable(location)}' names a bucket, not a job root; add the job, e.g. s3://${bucket}/checkpoints/<jobId>`);
    }
    checkJobId(jobId);
    return checkKeyLength(s3Spec(bucket, segments));
  }
  return jobRootSpecFromDir(localPath(location));
}

/** For a job root that is already a directory (e.g. the parent of a relocated chk-<n>). */
export function jobRootSpecFromDir(jobRootDir: string): StoreSpec {
  // resolve() also normalises a trailing '/', '//' and '/.': the root is compared as a prefix of every object's path.
  return { type: 'fs', root: resolve(jobRootDir) };
}

/** A directory path, or the path of a file:// URL; other schemes are refused. */
function localPath(location: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location);
  if (scheme !== null && scheme[1] !== undefined && scheme[1].toLowerCase() !== 'file') {
    throw new InvalidInputError('UNSUPPORTED_STORE', `store '${printable(location)}' uses the '${scheme[1]}://' scheme, which chunkpoint does not support; ${STORE_HINT}`);
  }
  if (scheme === null) return location;
  try {
    return fileURLToPath(location);
  } catch (error) {
    throw new InvalidInputError('INVALID_STORE', `'${printable(location)}' is not a usable file:// URL (${error instanceof Error ? error.message : String(error)}); pass a directory path`, { cause: error });
  }
}

/**
 * Opens a spec as a store, wrapped as `stackStore` says; the bare S3 store is
 * this thread's own client unless `options.s3` supplies another.
 */
export function openStore(spec: StoreSpec, options: { s3?: (spec: S3StoreSpec) => Store } = {}): Store {
  return stackStore(spec, options.s3 ?? ((s3) => new S3Store(s3)));
}

/**
 * The spec of the directory or prefix a job root lives in (its store), or
 * undefined for a job root at the top of a bucket. Used to refuse a job
 * created inside another job's root.
 */
export function storeSpecOf(spec: StoreSpec): StoreSpec | undefined {
  if (spec.type === 'fs') {
    const parent = resolve(spec.root, '..');
    return parent === spec.root ? undefined : { type: 'fs', root: parent };
  }
  const segments = spec.prefix.split('/').filter((s) => s !== '');
  if (segments.length < 2) return undefined;
  const plain: StoreSpec = { ...spec, prefix: `${segments.slice(0, -1).join('/')}/` };
  delete plain.wrapper;
  delete plain.rateLimit;
  return plain;
}
