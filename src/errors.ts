/**
 * The public error model: a handful of coarse kinds that callers branch on,
 * each carrying a stable `code` for the precise case and an optional `cause`.
 *
 * Errors cross the worker-thread boundary as plain data (`SerializedError`)
 * because structured clone keeps only `Error`'s own fields and drops the
 * subclass, so `instanceof` and `kind` would silently vanish on the way back.
 */

export type ErrorKind =
  /** The caller asked for something impossible: bad arguments, missing paths, unknown checkpoint. */
  | 'invalid_input'
  /** Stored bytes failed verification: checksum, hash, format, or an unsafe handle. */
  | 'corrupt_data'
  /** The store could not be reached or refused an operation (I/O error, permissions, disk full). */
  | 'store_unavailable'
  /** Someone else got there first: a checkpoint number already committed, state changed under us. */
  | 'conflict'
  /** A bug or an environment failure chunkpoint cannot classify (worker crash, invariant broken). */
  | 'internal';

export interface ChunkpointErrorOptions {
  cause?: unknown;
  /** Structured context (file, chunk index, key, path…) for logs and `--json` output. */
  details?: Record<string, string | number | boolean>;
}

export class ChunkpointError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly details: Record<string, string | number | boolean>;

  constructor(kind: ErrorKind, code: string, message: string, options: ChunkpointErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.code = code;
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
  constructor(code: string, message: string, options?: ChunkpointErrorOptions) {
    super('invalid_input', code, message, options);
  }
}

export class CorruptDataError extends ChunkpointError {
  constructor(code: string, message: string, options?: ChunkpointErrorOptions) {
    super('corrupt_data', code, message, options);
  }
}

export class StoreUnavailableError extends ChunkpointError {
  constructor(code: string, message: string, options?: ChunkpointErrorOptions) {
    super('store_unavailable', code, message, options);
  }
}

export class ConflictError extends ChunkpointError {
  constructor(code: string, message: string, options?: ChunkpointErrorOptions) {
    super('conflict', code, message, options);
  }
}

export class InternalError extends ChunkpointError {
  constructor(code: string, message: string, options?: ChunkpointErrorOptions) {
    super('internal', code, message, options);
  }
}

const CLASSES: Record<ErrorKind, new (code: string, message: string, options?: ChunkpointErrorOptions) => ChunkpointError> = {
  invalid_input: InvalidInputError,
  corrupt_data: CorruptDataError,
  store_unavailable: StoreUnavailableError,
  conflict: ConflictError,
  internal: InternalError,
};

/**
 * The same error (class, kind, code) with what was being done in front of
 * its message and in its details, e.g. which file and chunk a store failure hit.
 */
export function withContext(error: unknown, context: string, details: Record<string, string | number | boolean>): ChunkpointError {
  const cp = toChunkpointError(error);
  return new CLASSES[cp.kind](cp.code, `${context}: ${cp.message}`, { cause: error, details: { ...cp.details, ...details } });
}

/** The same error (class, kind, code) with a reason appended to its message, e.g. why a fallback was not taken. */
export function withReason(error: ChunkpointError, reason: string): ChunkpointError {
  return new CLASSES[error.kind](error.code, `${error.message}; ${reason}`, { cause: error, details: error.details });
}

/** The wire form of an error. Causes are flattened to their message chain, never to live objects. */
export interface SerializedError {
  kind: ErrorKind;
  code: string;
  message: string;
  details: Record<string, string | number | boolean>;
  stack?: string;
  cause?: { name: string; message: string; code?: string };
}

export function serializeError(error: unknown): SerializedError {
  const cp = toChunkpointError(error);
  const out: SerializedError = { kind: cp.kind, code: cp.code, message: cp.message, details: cp.details };
  if (cp.stack !== undefined) out.stack = cp.stack;
  const cause = cp.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    out.cause = code === undefined ? { name: cause.name, message: cause.message } : { name: cause.name, message: cause.message, code };
  }
  return out;
}

export function deserializeError(data: SerializedError): ChunkpointError {
  const Ctor = CLASSES[data.kind];
  if (Ctor === undefined) {
    return new InternalError('BAD_ERROR_PAYLOAD', `a worker sent an error of unknown kind '${String(data.kind)}': ${data.message}`);
  }
  let cause: Error | undefined;
  if (data.cause !== undefined) {
    cause = new Error(data.cause.message);
    cause.name = data.cause.name;
    if (data.cause.code !== undefined) (cause as NodeJS.ErrnoException).code = data.cause.code;
  }
  const err = new Ctor(data.code, data.message, cause === undefined ? { details: data.details } : { details: data.details, cause });
  if (data.stack !== undefined) err.stack = data.stack;
  return err;
}

/** Wraps anything thrown into the public model; chunkpoint errors pass through unchanged. */
export function toChunkpointError(error: unknown): ChunkpointError {
  if (error instanceof ChunkpointError) return error;
  if (error instanceof Error) {
    return new InternalError('UNEXPECTED', `unexpected error: ${error.message}`, { cause: error });
  }
  return new InternalError('UNEXPECTED', `unexpected non-error thrown: ${String(error)}`);
}

/** Node's errno codes that mean "the storage medium said no", as opposed to a bug. */
const STORE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENFILE', 'EBUSY', 'ETIMEDOUT']);

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
  const message = `${op} failed with ${errno} at ${where}; ${hint}`;
  if (STORE_ERRNOS.has(errno)) {
    return new StoreUnavailableError(`STORE_${errno}`, message, { cause: error, details: { where, errno } });
  }
  return new StoreUnavailableError('STORE_IO', message, { cause: error, details: { where, errno } });
}

/** The local places chunkpoint reads and writes besides the store, each with its own codes and advice. */
export type LocalPlace = 'state' | 'target' | 'cache';

const PLACE_NAMES: Record<LocalPlace, string> = { state: 'state directory', target: 'restore target', cache: 'local cache' };

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
  const prefix = place.toUpperCase();
  return new InvalidInputError(STORE_ERRNOS.has(errno) ? `${prefix}_${errno}` : `${prefix}_IO`, `${op} failed with ${errno} at ${where}; ${hint}`, { cause: error, details: { where, errno, place } });
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
