/**
 * From what the AWS SDK throws (S3 error responses, HTTP statuses, network
 * errnos, its own timeouts) to chunkpoint's error model. The SDK makes a
 * single attempt (see client.ts); whether a failure is worth retrying is
 * decided here, per response, as the error's `transient`, because only here
 * is the failure understood, and `RetryingStore` (store/retry.ts) acts on it. Messages say
 * what to check, since the SDK's own ("UnknownError", a bare 403) do not;
 * the original error stays as `cause`.
 */
import { ChunkpointError, StoreUnavailableError, apiName, errnoOf, type CodeOfKind } from '../../errors.js';
import type { S3StoreSpec } from '../spec.js';
import { DEFAULT_REGION, s3Location } from './location.js';

const CREDENTIAL_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'InvalidClientTokenId']);
const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'TooManyRequestsException', 'RequestThrottled']);
/** Error codes S3 documents as "retry": server trouble, and RequestTimeout (a 400: the upload stalled). */
const TRANSIENT_CODES = new Set(['InternalError', 'ServiceUnavailable', 'RequestTimeout', 'OperationAborted', ...THROTTLE_CODES]);
const TRANSIENT_ERRNOS = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

/** Turns an SDK or network error of `operation` on `key` (or the job root, for '') into the error model, saying what to do. */
export function s3Failure(spec: S3StoreSpec, operation: string, key: string, error: unknown): ChunkpointError {
  if (error instanceof ChunkpointError) return error;
  const location = s3Location(spec);
  const where = key === '' ? location : `${location}/${key}`;
  const status = statusOf(error);
  const s3Code = s3CodeOf(error);
  const errno = errnoOf(error);
  const endpoint = spec.endpoint ?? `AWS S3 in ${spec.region ?? DEFAULT_REGION}`;
  const seen = status === undefined ? (errno ?? s3Code ?? 'error') : `HTTP ${status}${s3Code === undefined ? '' : ` ${s3Code}`}`;
  const details = { where, operation, status: status ?? 0, s3Code: s3Code ?? errno ?? '' };
  // Explicit for every response, not the catalogue's default for the code: an unresolvable host and a reset connection share a code.
  const make = (code: CodeOfKind<'store_unavailable'>, message: string, transient = false): StoreUnavailableError =>
    new StoreUnavailableError(code, message, { cause: error, transient, details });

  if (s3Code === 'CredentialsProviderError' || (error instanceof Error && error.name === 'CredentialsProviderError')) {
    return make('STORE_CREDENTIALS', `no AWS credentials found for ${operation} of ${where}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`);
  }
  if (s3Code === 'NoSuchBucket') {
    return make('STORE_NO_BUCKET', `bucket '${spec.bucket}' does not exist at ${endpoint} (${operation} of ${where}); create it or fix the store URL`);
  }
  if (s3Code !== undefined && CREDENTIAL_CODES.has(s3Code)) {
    return make('STORE_CREDENTIALS', `${endpoint} rejected the credentials (${seen}) for ${operation} of ${where}; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`);
  }
  if (status === 403) {
    return make('STORE_ACCESS_DENIED', `access denied (${seen}) for ${operation} of ${where}; check that the credentials may read and write bucket '${spec.bucket}'`);
  }
  if (status === 301 || s3Code === 'PermanentRedirect' || s3Code === 'AuthorizationHeaderMalformed') {
    return make('STORE_S3', `bucket '${spec.bucket}' is not reachable as addressed (${seen}) for ${operation} of ${where}; check AWS_REGION and AWS_ENDPOINT_URL`);
  }
  if (errno === 'ENOTFOUND') {
    return make('STORE_UNREACHABLE', `cannot resolve the host of ${endpoint} (ENOTFOUND) for ${operation} of ${where}; check AWS_ENDPOINT_URL`);
  }
  if ((errno !== undefined && TRANSIENT_ERRNOS.has(errno)) || (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError'))) {
    return make('STORE_UNREACHABLE', `connection to ${endpoint} failed (${seen}) during ${operation} of ${where}; check that the server runs and AWS_ENDPOINT_URL`, true);
  }
  if (status === 429 || status === 503 || (s3Code !== undefined && THROTTLE_CODES.has(s3Code))) {
    return make('STORE_THROTTLED', `${endpoint} is throttling requests (${seen}) during ${operation} of ${where}; lower ${apiName('threads')} or retry later`, true);
  }
  if ((status !== undefined && status >= 500) || (s3Code !== undefined && TRANSIENT_CODES.has(s3Code))) {
    return make('STORE_SERVER_ERROR', `${endpoint} failed (${seen}) during ${operation} of ${where}; retry later`, true);
  }
  const message = error instanceof Error && error.message !== '' && error.message !== 'UnknownError' ? `: ${error.message}` : '';
  return make('STORE_S3', `S3 ${operation} of ${where} failed (${seen})${message}`);
}

/**
 * The per-key failures a DeleteObjects response can report under a 200, as
 * one error (undefined when there are none). A key that is already gone is
 * no failure: deleting is idempotent. The batch is transient only if every
 * refusal is, so a retry is not spent on a key that will be refused again.
 */
export function refusedDeletes(
  location: string,
  root: string,
  batchSize: number,
  refusals: readonly { Key?: string | undefined; Code?: string | undefined; Message?: string | undefined }[],
): StoreUnavailableError | undefined {
  const errors = refusals.filter((e) => e.Code !== 'NoSuchKey');
  const first = errors[0];
  if (first === undefined) return undefined;
  const key = first.Key?.slice(root.length) ?? '?';
  const transient = errors.every((e) => TRANSIENT_CODES.has(e.Code ?? ''));
  return new StoreUnavailableError(
    transient ? 'STORE_SERVER_ERROR' : 'STORE_S3',
    `S3 refused to delete ${errors.length} of ${batchSize} objects in ${location}, e.g. ${key}: ${first.Code ?? 'error'} ${first.Message ?? ''}`.trim(),
    { transient, details: { where: `${location}/${key}`, operation: 'delete', s3Code: first.Code ?? '' } },
  );
}

/**
 * A response body that ended before its Content-Length: a dropped
 * connection, so it carries ECONNRESET for `s3Failure` to class as
 * transient, and the read is retried.
 */
export function truncatedBody(received: number, expected: number): Error {
  return Object.assign(new Error(`response body ended after ${received} of ${expected} bytes`), { code: 'ECONNRESET' });
}

export function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('$metadata' in error)) return undefined;
  const meta = (error as { $metadata?: { httpStatusCode?: unknown } }).$metadata;
  return typeof meta?.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
}

/** The S3 error code (NoSuchKey, SlowDown…); the SDK names the error after it, or 'Unknown' for bodiless responses. */
function s3CodeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { Code?: unknown }).Code;
  if (typeof code === 'string' && code !== '') return code;
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' && name !== 'Error' && name !== 'Unknown' ? name : undefined;
}

/** A 404 for the key itself; a 404 for a missing bucket must not read as "no such object". */
export function isMissingKey(error: unknown): boolean {
  return statusOf(error) === 404 && s3CodeOf(error) !== 'NoSuchBucket';
}

/** 412: the key exists. 409 ConditionalRequestConflict: a concurrent conditional write to the key is in progress — someone else is writing it. */
export function isConditionFailure(error: unknown): boolean {
  const status = statusOf(error);
  return status === 412 || (status === 409 && s3CodeOf(error) === 'ConditionalRequestConflict');
}
