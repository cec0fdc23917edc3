/**
 * The public error model: a handful of coarse kinds that callers branch on,
 * each carrying a stable `code` for the precise case (listed, with its kind,
 * in error-codes.ts), whether a retry may help, and an optional `cause`.
 *
 * Errors cross the worker-thread boundary as plain data (`SerializedError`)
 * because structured clone keeps only `Error`'s own fields and drops the
 * subclass, so `instanceof` and `kind` would silently vanish on the way back.
 */

import { ERROR_CODES, hasKind, isErrorCode, isMediumErrno, type CodeOfKind, type ErrorCode, type ErrorKind } from './error-codes.js';

export { ERROR_CODES, type CodeOfKind, type CodeSpec, type ErrorCode, type ErrorKind } from './error-codes.js';

export interface ChunkpointErrorOptions {
  cause?: unknown;
  /**
   * Whether trying the same operation again may succeed, for this one
   * failure; without it, the code's entry in the catalogue (error-codes.ts)
   * decides. A store sets it where it knows better (an S3 response).
   */
  transient?: boolean;
  /** Structured context (file, chunk index, key, path…) for logs and `--json` output. */
  details?: Record<string, string | number | boolean>;
}

/**
 * Abstract, and its subclasses take only codes of their own kind: the code
 * decides the kind (error-codes.ts), so `kind`, the class and the catalogue
 * cannot disagree.
 */
export abstract class ChunkpointError extends Error {
  readonly kind: ErrorKind;
  readonly code: ErrorCode;
  /** Whether a retry may succeed; the retry layer (store/retry.ts) acts on nothing else. */
  readonly transient: boolean;
  readonly details: Record<string, string | number | boolean>;

  protected constructor(code: ErrorCode, message: string, options: ChunkpointErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = ERROR_CODES[code].kind;
    this.code = code;
    this.transient = options.transient ?? ERROR_CODES[code].transient;
    this.details = options.details ?? {};
  }

  override get name(): string {
    return KIND_NAMES[this.kind];
  }
}

const KIND_NAMES: Record<ErrorKind, string> = {
  invalid_input: 'InvalidInputError',
  corrupt_data: 'CorruptDataError',
  store_unavailable: 'StoreUnavailableError',
  conflict: 'ConflictError',
  internal: 'InternalError',
};

export class InvalidInputError extends ChunkpointError {
  declare readonly kind: 'invalid_input';
  declare readonly code: CodeOfKind<'invalid_input'>;
  constructor(code: CodeOfKind<'invalid_input'>, message: string, options?: ChunkpointErrorOptions) {
    super(code, message, options);
  }
}

export class CorruptDataError extends ChunkpointError {
  declare readonly kind: 'corrupt_data';
  declare readonly code: CodeOfKind<'corrupt_data'>;
  constructor(code: CodeOfKind<'corrupt_data'>, message: string, options?: ChunkpointErrorOptions) {
    super(code, message, options);
  }
}

export class StoreUnavailableError extends ChunkpointError {
  declare readonly kind: 'store_unavailable';
  declare readonly code: CodeOfKind<'store_unavailable'>;
  constructor(code: CodeOfKind<'store_unavailable'>, message: string, options?: ChunkpointErrorOptions) {
    super(code, message, options);
  }
}

export class ConflictError extends ChunkpointError {
  declare readonly kind: 'conflict';
  declare readonly code: CodeOfKind<'conflict'>;
  constructor(code: CodeOfKind<'conflict'>, message: string, options?: ChunkpointErrorOptions) {
    super(code, message, options);
  }
}

export class InternalError extends ChunkpointError {
  declare readonly kind: 'internal';
  declare readonly code: CodeOfKind<'internal'>;
  constructor(code: CodeOfKind<'internal'>, message: string, options?: ChunkpointErrorOptions) {
    super(code, message, options);
  }
}

/**
 * An error of `code`'s own class, for code that re-creates an error it did
 * not write (context added, retries given up, an error off the wire).
 */
export function errorOf(code: ErrorCode, message: string, options?: ChunkpointErrorOptions): ChunkpointError {
  if (hasKind(code, 'invalid_input')) return new InvalidInputError(code, message, options);
  if (hasKind(code, 'corrupt_data')) return new CorruptDataError(code, message, options);
  if (hasKind(code, 'store_unavailable')) return new StoreUnavailableError(code, message, options);
  if (hasKind(code, 'conflict')) return new ConflictError(code, message, options);
  return new InternalError(code, message, options);
}

/**
 * The same error (class, kind, code, transient) with what was being done in front of
 * its message and in its details, e.g. which file and chunk a store failure hit.
 */
export function withContext(error: unknown, context: string, details: Record<string, string | number | boolean>): ChunkpointError {
  const cp = toChunkpointError(error);
  return errorOf(cp.code, `${context}: ${cp.message}`, { cause: error, transient: cp.transient, details: { ...cp.details, ...details } });
}

/** The same error (class, kind, code) with a reason appended to its message, e.g. why a fallback was not taken. */
export function withReason(error: ChunkpointError, reason: string): ChunkpointError {
  return errorOf(error.code, `${error.message}; ${reason}`, { cause: error, transient: error.transient, details: error.details });
}

/**
 * The wire form of an error. Its causes cross as data too, link by link:
 * name, message, code and details, so what a layer put in a cause's details
 * (a caller's own marker, such as the fault injector's) is not lost when a
 * later layer wrapped that cause in an error of its own. Never live objects.
 */
export interface SerializedError {
  kind: ErrorKind;
  code: ErrorCode;
  message: string;
  transient: boolean;
  details: Record<string, string | number | boolean>;
  stack?: string;
  cause?: SerializedCause;
}

export interface SerializedCause {
  name: string;
  message: string;
  code?: string;
  details?: Record<string, string | number | boolean>;
  cause?: SerializedCause;
}

/** Longer chains are cut here: a cause chain that loops back on itself must still serialize. */
const MAX_CAUSES = 16;

function serializeCause(cause: unknown, depth: number): SerializedCause | undefined {
  if (!(cause instanceof Error) || depth >= MAX_CAUSES) return undefined;
  const out: SerializedCause = { name: cause.name, message: cause.message };
  const code = (cause as NodeJS.ErrnoException).code;
  if (code !== undefined) out.code = code;
  const details = primitiveDetails((cause as { details?: unknown }).details);
  if (details !== undefined) out.details = details;
  const next = serializeCause(cause.cause, depth + 1);
  if (next !== undefined) out.cause = next;
  return out;
}

/** A cause need not be ours: of its `details` only plain values cross, anything else might not survive the structured clone. */
function primitiveDetails(details: unknown): Record<string, string | number | boolean> | undefined {
  if (typeof details !== 'object' || details === null) return undefined;
  const out: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(details)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[key] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function deserializeCause(data: SerializedCause): Error {
  const next = data.cause === undefined ? undefined : deserializeCause(data.cause);
  const cause = new Error(data.message, next === undefined ? undefined : { cause: next });
  cause.name = data.name;
  if (data.code !== undefined) (cause as NodeJS.ErrnoException).code = data.code;
  if (data.details !== undefined) Object.assign(cause, { details: data.details });
  return cause;
}

export function serializeError(error: unknown): SerializedError {
  const cp = toChunkpointError(error);
  const out: SerializedError = { kind: cp.kind, code: cp.code, message: cp.message, transient: cp.transient, details: cp.details };
  if (cp.stack !== undefined) out.stack = cp.stack;
  const cause = serializeCause(cp.cause, 0);
  if (cause !== undefined) out.cause = cause;
  return out;
}

export function deserializeError(data: SerializedError): ChunkpointError {
  // Checked, not trusted: the type says what the sender meant, the payload is whatever arrived.
  const code: unknown = data.code;
  if (!Object.hasOwn(KIND_NAMES, data.kind)) {
    return new InternalError('BAD_ERROR_PAYLOAD', `a worker sent an error of unknown kind '${String(data.kind)}': ${data.message}`);
  }
  if (typeof code !== 'string' || !isErrorCode(code) || ERROR_CODES[code].kind !== data.kind) {
    return new InternalError('BAD_ERROR_PAYLOAD', `a worker sent an error of unknown code '${String(code)}' for kind '${data.kind}': ${data.message}`);
  }
  const cause = data.cause === undefined ? undefined : deserializeCause(data.cause);
  const options: ChunkpointErrorOptions = { details: data.details, transient: data.transient };
  const err = errorOf(code, data.message, cause === undefined ? options : { ...options, cause });
  if (data.stack !== undefined) err.stack = data.stack;
  return err;
}

/**
 * What a library message may name of the API for the caller to change: an
 * option or a method. Messages write these through `apiName`, never as a
 * command-line flag: an embedder has no flags, and the CLI puts its own
 * words in their place when it prints an error (src/cli/wording.ts).
 */
export type ApiName = 'store' | 'job' | 'task' | 'threads' | 'leaseMs' | 'dropTasks' | 'keepMatching' | 'overwrite' | 'list()' | 'drop()';

/** An API name as messages write it; the backquotes are what lets the CLI find it again in any message, however wrapped. */
export function apiName(name: ApiName): string {
  return `\`${name}\``;
}

/** Wraps anything thrown into the public model; chunkpoint errors pass through unchanged. */
export function toChunkpointError(error: unknown): ChunkpointError {
  if (error instanceof ChunkpointError) return error;
  if (error instanceof Error) {
    return new InternalError('UNEXPECTED', `unexpected error: ${error.message}`, { cause: error });
  }
  return new InternalError('UNEXPECTED', `unexpected non-error thrown: ${String(error)}`);
}

export function errnoOf(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Classifies a filesystem failure on store I/O. ENOENT is left to callers,
 * which know whether absence means "not found" or "corrupt".
 */
export function storeIoError(op: string, where: string, error: unknown): ChunkpointError {
  if (error instanceof ChunkpointError) return error;
  const errno = errnoOf(error) ?? 'UNKNOWN';
  const hint =
    errno === 'ENOSPC' || errno === 'EDQUOT'
      ? 'free space on the store volume and retry'
      : errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS'
        ? 'check the permissions of the store directory'
        : 'check the store volume and retry';
  const code = isMediumErrno(errno) ? (`STORE_${errno}` as const) : 'STORE_IO';
  return new StoreUnavailableError(code, `${op} failed with ${errno} at ${where}; ${hint}`, { cause: error, details: { where, errno } });
}

/** The local places chunkpoint reads and writes besides the store, each with its own codes and advice. */
export type LocalPlace = 'state' | 'target' | 'cache';

const PLACE_NAMES: Record<LocalPlace, string> = { state: 'state directory', target: 'restore target', cache: 'local cache' };
const PLACE_PREFIXES = { state: 'STATE', target: 'TARGET', cache: 'CACHE' } as const satisfies Record<LocalPlace, string>;

/**
 * Classifies a filesystem failure in the state directory, the restore
 * target or the local cache: codes STATE_…, TARGET_…, CACHE_…, and advice
 * about that place, never about the store.
 */
export function localIoError(place: LocalPlace, op: string, where: string, error: unknown): ChunkpointError {
  if (error instanceof ChunkpointError) return error;
  const errno = errnoOf(error) ?? 'UNKNOWN';
  const name = PLACE_NAMES[place];
  const hint =
    errno === 'ENOSPC' || errno === 'EDQUOT'
      ? `free space on the volume of the ${name}`
      : errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS'
        ? `check the permissions of the ${name}`
        : errno === 'ELOOP'
          ? `a symbolic link is in the way in the ${name}; chunkpoint does not follow links there`
          : `check the ${name} and its volume`;
  const prefix = PLACE_PREFIXES[place];
  const code = isMediumErrno(errno) ? (`${prefix}_${errno}` as const) : (`${prefix}_IO` as const);
  return new InvalidInputError(code, `${op} failed with ${errno} at ${where}; ${hint}`, { cause: error, details: { where, errno, place } });
}

export function stateIoError(op: string, where: string, error: unknown): ChunkpointError {
  return localIoError('state', op, where, error);
}

export function targetIoError(op: string, where: string, error: unknown): ChunkpointError {
  return localIoError('target', op, where, error);
}

export function cacheIoError(op: string, where: string, error: unknown): ChunkpointError {
  return localIoError('cache', op, where, error);
}

/** The one error an aborted operation rejects with, however early the abort came. */
export function abortedError(signal: AbortSignal): ChunkpointError {
  const reason: unknown = signal.reason;
  if (reason instanceof ChunkpointError) return reason;
  const why = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : '';
  return new InternalError('ABORTED', `operation aborted${why}`, reason === undefined ? {} : { cause: reason });
}

/** `signal.throwIfAborted()`, but with the ChunkpointError every abort rejects with. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortedError(signal);
}
