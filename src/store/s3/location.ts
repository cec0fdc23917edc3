/**
 * Where an S3 job root is: `s3://bucket/prefix` URLs, the AWS environment
 * that says which server, region and addressing to use, and the name the
 * job root goes by in messages. Everything here is decided before a request
 * is made, so a bad URL or variable is refused up front as bad input rather
 * than surfacing as an HTTP error mid-snapshot.
 */
import { InvalidInputError } from '../../errors.js';
import { checkJobId, printable, unsafeNameReason } from '../../format/names.js';
import { parseDuration } from '../../units.js';
import type { S3StoreSpec } from '../spec.js';

export const S3_SCHEME = 's3://';

/** The region when the environment names none: where S3 puts a bucket created without one. */
export const DEFAULT_REGION = 'us-east-1';

/** How an S3 job root is named in messages (a worker's relayed store names it the same way). */
export function s3Location(spec: { bucket: string; prefix: string }): string {
  return `s3://${spec.bucket}/${spec.prefix.replace(/\/$/, '')}`;
}

export function isS3Url(location: string): boolean {
  return location.slice(0, S3_SCHEME.length).toLowerCase() === S3_SCHEME;
}

/** Splits `s3://bucket/a/b` into the bucket and its checked path segments. */
export function parseS3Url(url: string): { bucket: string; segments: string[] } {
  const rest = url.slice(S3_SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
  // Bucket rules loose enough for legacy and RGW names, strict enough to keep URLs unambiguous.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(bucket)) {
    throw new InvalidInputError('INVALID_STORE', `'${printable(url)}' does not name a valid bucket; use s3://<bucket>/<prefix>, e.g. s3://my-bucket/checkpoints`);
  }
  if (path === '') return { bucket, segments: [] };
  const reason = unsafeNameReason(path);
  if (reason !== undefined) {
    throw new InvalidInputError('INVALID_STORE', `the key prefix of '${printable(url)}' is refused because ${reason}; use s3://<bucket>/<prefix>, e.g. s3://my-bucket/checkpoints`);
  }
  return { bucket, segments: path.split('/') };
}

/**
 * A job-root spec from a bucket, the job root's path segments, and the
 * environment. Endpoint: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (the
 * SDK's own variables). Region: AWS_REGION, else AWS_DEFAULT_REGION, else
 * us-east-1. Path-style: AWS_S3_FORCE_PATH_STYLE=true|false; unset, it is on
 * exactly when a custom endpoint is set, because self-hosted servers
 * (RGW, MinIO) are usually addressed by IP or a single host name that cannot
 * carry the bucket as a subdomain, while AWS itself prefers virtual-hosted.
 */
export function s3Spec(bucket: string, segments: readonly string[], env: NodeJS.ProcessEnv = process.env): S3StoreSpec {
  const endpoint = nonEmpty(env['AWS_ENDPOINT_URL_S3']) ?? nonEmpty(env['AWS_ENDPOINT_URL']);
  if (endpoint !== undefined && !/^https?:\/\/[^/]/i.test(endpoint)) {
    throw new InvalidInputError('INVALID_STORE', `AWS_ENDPOINT_URL '${printable(endpoint)}' is not an http(s) URL; set it like http://127.0.0.1:7480`);
  }
  const region = nonEmpty(env['AWS_REGION']) ?? nonEmpty(env['AWS_DEFAULT_REGION']) ?? DEFAULT_REGION;
  const pathStyleText = nonEmpty(env['AWS_S3_FORCE_PATH_STYLE'])?.toLowerCase();
  let forcePathStyle = endpoint !== undefined;
  if (pathStyleText !== undefined) {
    if (!['true', 'false', '1', '0'].includes(pathStyleText)) {
      throw new InvalidInputError('INVALID_STORE', `AWS_S3_FORCE_PATH_STYLE '${printable(pathStyleText)}' is not true or false`);
    }
    forcePathStyle = pathStyleText === 'true' || pathStyleText === '1';
  }
  const timeoutText = nonEmpty(env['CHUNKPOINT_S3_TIMEOUT']);
  let requestTimeoutMs: number | undefined;
  if (timeoutText !== undefined) {
    try {
      requestTimeoutMs = parseDuration(timeoutText, 'CHUNKPOINT_S3_TIMEOUT');
    } catch {
      requestTimeoutMs = Number.NaN;
    }
    if (!(requestTimeoutMs >= 100 && requestTimeoutMs <= 3_600_000)) {
      throw new InvalidInputError('INVALID_STORE', `CHUNKPOINT_S3_TIMEOUT '${printable(timeoutText)}' is not a duration from 100ms to 1h; set it like 30s`);
    }
  }
  return {
    type: 's3',
    bucket,
    prefix: segments.length === 0 ? '' : `${segments.join('/')}/`,
    ...(endpoint === undefined ? {} : { endpoint }),
    region,
    forcePathStyle,
    ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }),
  };
}

/** S3 refuses keys longer than this many bytes (UTF-8). */
export const S3_MAX_KEY_BYTES = 1024;
/** The longest key chunkpoint makes below a job root: `taskowned/<200-char task id>/<ULID>-<ULID>.pack`. */
export const LONGEST_OBJECT_NAME = 'taskowned/'.length + 200 + 1 + 26 + 1 + 26 + '.pack'.length;

/** Refuses, up front, a job root whose keys could pass S3's limit (rather than a bare "HTTP 400" mid-snapshot). */
export function checkKeyLength(spec: S3StoreSpec): S3StoreSpec {
  const prefixBytes = Buffer.byteLength(spec.prefix, 'utf8');
  if (prefixBytes + LONGEST_OBJECT_NAME > S3_MAX_KEY_BYTES) {
    throw new InvalidInputError(
      'KEY_TOO_LONG',
      `the job root s3://${spec.bucket}/${printable(spec.prefix)} makes keys too long for S3: its prefix (store prefix and job id) is ${prefixBytes} bytes, chunkpoint's longest object name below a job root is ${LONGEST_OBJECT_NAME} bytes (a pack of a task with a 200-character id), and S3 allows ${S3_MAX_KEY_BYTES} bytes per key; use a shorter store prefix or job id (at most ${S3_MAX_KEY_BYTES - LONGEST_OBJECT_NAME} bytes together)`,
      { details: { prefixBytes, limit: S3_MAX_KEY_BYTES } },
    );
  }
  return spec;
}

/** The job root `s3://bucket/prefix/<jobId>` of a store URL and a job id. */
export function s3JobRootSpec(storeUrl: string, jobId: string): S3StoreSpec {
  const { bucket, segments } = parseS3Url(storeUrl);
  return checkKeyLength(s3Spec(bucket, [...segments, checkJobId(jobId)]));
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
