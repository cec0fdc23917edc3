/**
 * Every code chunkpoint reports, with its public kind, whether a retry of
 * the same operation may succeed, and what it means. Codes are a stable,
 * public API: callers and scripts branch on them, so one is never renamed
 * or moved to another kind by accident — the error classes (errors.ts) take
 * only codes of their own kind, and tsc rejects a code that is not listed
 * here. docs/ERRORS.md is generated from this table (scripts/error-codes.ts)
 * and the suite checks that it, README and docs/ name only codes listed here.
 *
 * A leaf: errors.ts builds on it, and it imports nothing, so the table can be
 * read (by the docs generator, by an embedder) without the error machinery.
 */

export type ErrorKind =
  /** The caller asked for something impossible: bad arguments, missing paths, unknown checkpoint. */
  | 'invalid_input'
  /** Stored bytes failed verification (checksum, hash, format, an unsafe handle), or an object the job root should hold is missing. */
  | 'corrupt_data'
  /** The store could not be reached or refused an operation (I/O error, permissions, disk full). */
  | 'store_unavailable'
  /** Someone else got there first: a checkpoint number already committed, state changed under us. */
  | 'conflict'
  /** A bug or an environment failure chunkpoint cannot classify (worker crash, invariant broken). */
  | 'internal';

export interface CodeSpec<K extends ErrorKind = ErrorKind> {
  readonly kind: K;
  /** Whether the same operation may succeed when tried again; an error may say otherwise for itself (an S3 response). */
  readonly transient: boolean;
  /** One line: what happened, for the reference in docs/ERRORS.md. */
  readonly meaning: string;
}

const invalidInput = (meaning: string): CodeSpec<'invalid_input'> => ({ kind: 'invalid_input', transient: false, meaning });
const corruptData = (meaning: string): CodeSpec<'corrupt_data'> => ({ kind: 'corrupt_data', transient: false, meaning });
const storeUnavailable = (meaning: string, { transient = false } = {}): CodeSpec<'store_unavailable'> => ({ kind: 'store_unavailable', transient, meaning });
const conflict = (meaning: string): CodeSpec<'conflict'> => ({ kind: 'conflict', transient: false, meaning });
const internal = (meaning: string): CodeSpec<'internal'> => ({ kind: 'internal', transient: false, meaning });

/**
 * Node's errno codes that mean "the storage medium said no", as opposed to a
 * bug. Each has a code of its own in the store (STORE_…) and in each local
 * place (STATE_…, TARGET_…, CACHE_…); any other errno is …_IO.
 */
export const MEDIUM_ERRNOS = ['ENOSPC', 'EDQUOT', 'EIO', 'EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENFILE', 'EBUSY', 'ETIMEDOUT'] as const;
export type MediumErrno = (typeof MEDIUM_ERRNOS)[number];

export function isMediumErrno(errno: string): errno is MediumErrno {
  return (MEDIUM_ERRNOS as readonly string[]).includes(errno);
}

export const ERROR_CODES = Object.freeze({
  // invalid_input: the state directory
  STATE_DIR_MISSING: invalidInput('the state directory to snapshot does not exist'),
  STATE_DIR_NOT_DIRECTORY: invalidInput('the state directory to snapshot is not a directory'),
  STATE_DIR_EMPTY: invalidInput('the state directory holds no files: nothing to snapshot'),
  STATE_UNSAFE_NAME: invalidInput('a state file has a name a checkpoint cannot record exactly (not UTF-8, or unsafe)'),
  STATE_SYMLINK: invalidInput('a state directory entry is (or became) a symbolic link; chunkpoint does not follow links'),
  STATE_SPECIAL_FILE: invalidInput('a state directory entry is (or became) neither a regular file nor a directory'),
  STATE_ENOSPC: invalidInput('the volume of the state directory is full (ENOSPC)'),
  STATE_EDQUOT: invalidInput('the disk quota of the state directory is used up (EDQUOT)'),
  STATE_EIO: invalidInput('the volume of the state directory reported an I/O error (EIO)'),
  STATE_EACCES: invalidInput('permission denied in the state directory (EACCES)'),
  STATE_EPERM: invalidInput('operation not permitted in the state directory (EPERM)'),
  STATE_EROFS: invalidInput('the state directory is on a read-only file system (EROFS)'),
  STATE_EMFILE: invalidInput('too many open files in this process while reading the state directory (EMFILE)'),
  STATE_ENFILE: invalidInput('too many open files in the system while reading the state directory (ENFILE)'),
  STATE_EBUSY: invalidInput('a state file or directory is busy (EBUSY)'),
  STATE_ETIMEDOUT: invalidInput('I/O in the state directory timed out (ETIMEDOUT)'),
  STATE_IO: invalidInput('I/O in the state directory failed with another errno (in details.errno)'),
  STORE_INSIDE_STATE: invalidInput('the job root lies inside the state directory being snapshotted'),
  LOCAL_COPY_INSIDE_STATE: invalidInput('the task-local copy and the state directory overlap'),
  LOCAL_COPY_SPECIAL_FILE: invalidInput('a file of the task-local copy was replaced by something that is not a regular file (a FIFO, a link); the restore fetches that file instead'),

  // invalid_input: the restore target
  TARGET_NOT_EMPTY: invalidInput('the restore target is not empty, and neither overwrite nor keepMatching was asked for'),
  TARGET_NOT_DIRECTORY: invalidInput('the restore target exists and is not a directory'),
  TARGET_SPECIAL_FILE: invalidInput('a target file kept because it verified was replaced by something that is not a regular file during the restore'),
  TARGET_DANGLING_LINK: invalidInput('the restore target is a symbolic link to a directory that does not exist'),
  TARGET_OVERLAPS_STORE: invalidInput('the restore target is, holds or lies inside the job root being restored'),
  TARGET_OVERLAPS_CACHE: invalidInput('the restore target is, holds or lies inside the local cache'),
  TARGET_OVERLAPS_LOCAL_COPY: invalidInput('the restore target and the task-local copy overlap'),
  TARGET_ENOSPC: invalidInput('the volume of the restore target is full (ENOSPC)'),
  TARGET_EDQUOT: invalidInput('the disk quota of the restore target is used up (EDQUOT)'),
  TARGET_EIO: invalidInput('the volume of the restore target reported an I/O error (EIO)'),
  TARGET_EACCES: invalidInput('permission denied in the restore target (EACCES)'),
  TARGET_EPERM: invalidInput('operation not permitted in the restore target (EPERM)'),
  TARGET_EROFS: invalidInput('the restore target is on a read-only file system (EROFS)'),
  TARGET_EMFILE: invalidInput('too many open files in this process while writing the restore target (EMFILE)'),
  TARGET_ENFILE: invalidInput('too many open files in the system while writing the restore target (ENFILE)'),
  TARGET_EBUSY: invalidInput('a file or directory of the restore target is busy (EBUSY)'),
  TARGET_ETIMEDOUT: invalidInput('I/O in the restore target timed out (ETIMEDOUT)'),
  TARGET_IO: invalidInput('I/O in the restore target failed with another errno (in details.errno)'),

  // invalid_input: the local cache
  CACHE_NOT_FOUND: invalidInput('the cache directory named does not exist or is not a directory'),
  CACHE_ENOSPC: invalidInput('the volume of the local cache is full (ENOSPC)'),
  CACHE_EDQUOT: invalidInput('the disk quota of the local cache is used up (EDQUOT)'),
  CACHE_EIO: invalidInput('the volume of the local cache reported an I/O error (EIO)'),
  CACHE_EACCES: invalidInput('permission denied in the local cache (EACCES)'),
  CACHE_EPERM: invalidInput('operation not permitted in the local cache (EPERM)'),
  CACHE_EROFS: invalidInput('the local cache is on a read-only file system (EROFS)'),
  CACHE_EMFILE: invalidInput('too many open files in this process in the local cache (EMFILE)'),
  CACHE_ENFILE: invalidInput('too many open files in the system in the local cache (ENFILE)'),
  CACHE_EBUSY: invalidInput('a file or directory of the local cache is busy (EBUSY)'),
  CACHE_ETIMEDOUT: invalidInput('I/O in the local cache timed out (ETIMEDOUT)'),
  CACHE_IO: invalidInput('I/O in the local cache failed with another errno (in details.errno)'),

  // invalid_input: jobs, checkpoints and tasks the caller named
  INVALID_JOB_ID: invalidInput('a job id that is not one safe path segment, or a name chunkpoint reserves'),
  INVALID_TASK_ID: invalidInput('a task id that is not one safe path segment'),
  JOB_NOT_FOUND: invalidInput('no job root at the store and job id given'),
  NO_CHECKPOINTS: invalidInput('the job has no committed checkpoint yet'),
  CHECKPOINT_NOT_FOUND: invalidInput('the checkpoint asked for is not committed in the job (or its directory does not exist)'),
  INVALID_CHECKPOINT_PATH: invalidInput('a checkpoint path that is not a chk-<n> location'),
  CHECKPOINT_ID_EXHAUSTED: invalidInput("the job's next checkpoint id would exceed the largest chunkpoint writes"),
  FORMAT_UNSUPPORTED: invalidInput('an object written in a storage format version this chunkpoint does not read; nothing was changed'),
  TASK_REQUIRED: invalidInput('the checkpoint holds several tasks and the restore named none'),
  TASK_NOT_FOUND: invalidInput('the checkpoint holds no task of the id given'),
  TASK_MISSING: invalidInput('a commit would leave out tasks of its base that were neither committed nor dropped (dropTasks)'),
  DUPLICATE_TASK: invalidInput('a commit holds two task snapshots of one task'),
  NO_TASK_SNAPSHOTS: invalidInput('a commit was given no task snapshot'),
  TASK_SNAPSHOT_WRONG_JOB: invalidInput('a task snapshot of another job was handed to commit'),
  INVALID_TASK_SNAPSHOT: invalidInput('a task snapshot handed to commit is malformed, or does not match what its task stored'),
  TASK_SNAPSHOT_UNREADABLE: invalidInput('(command line) the task snapshot file cannot be read'),
  OUTPUT_NOT_WRITABLE: invalidInput('(command line) the task snapshot file cannot be written'),
  COPY_SAME_LOCATION: invalidInput('a copy whose source and destination are the same job root'),

  // invalid_input: stores and options
  INVALID_STORE: invalidInput('a store location, job root or S3 environment setting that cannot be used'),
  UNSUPPORTED_STORE: invalidInput('a store URL scheme or store type chunkpoint does not support'),
  KEY_TOO_LONG: invalidInput("an S3 job root whose prefix makes chunkpoint's keys longer than S3 allows"),
  STORE_INSIDE_JOB: invalidInput('the store is itself a job root: jobs must not nest'),
  NOT_STAGED_HERE: invalidInput('a staged write was published through another store than the one that wrote it'),
  INVALID_CHUNK_SIZE: invalidInput('chunkSize out of range'),
  INVALID_PACK_SIZE: invalidInput('packSize out of range, or below the chunk size'),
  INVALID_RETAIN: invalidInput('retain is not a whole number of at least 1'),
  INVALID_GRACE: invalidInput('graceMs is not a duration'),
  INVALID_LEASE: invalidInput('leaseMs is not a duration of at least the minimum lease'),
  INVALID_SAMPLE: invalidInput('sample is not a fraction in (0, 1]'),
  INVALID_RATE_LIMIT: invalidInput('limitRate is too low or not a number'),
  INVALID_CACHE_SIZE: invalidInput("the cache's maxBytes is not a byte count"),
  INVALID_CACHE_TTL: invalidInput("the cache's ttlMs is not a positive duration"),
  INVALID_REQUESTS_PER_THREAD: invalidInput('requestsPerThread out of range'),
  INVALID_IO_CONCURRENCY: invalidInput('ioConcurrency out of range'),
  INVALID_SIZE: invalidInput('a size written with units (512KiB, 4MiB) that cannot be read, or is too large'),
  INVALID_DURATION: invalidInput('a duration written with units (30s, 10m) that cannot be read, or is not positive'),
  ROCKSDB_MISSING: invalidInput("(stress tooling) the 'rocksdb-native' package that writes RocksDB state cannot be loaded"),

  // corrupt_data
  OBJECT_NOT_FOUND: corruptData('an object chunkpoint expected in the job root is not there (stores report absence with it; callers translate it where they know better)'),
  CHUNK_CORRUPT: corruptData('a chunk fails verification (header, decompression or content key), or its pack ends before it'),
  CHUNK_MISSING: corruptData('the pack holding a chunk is missing from the store'),
  PACK_CORRUPT: corruptData('a pack being copied is damaged; nothing of it was copied'),
  PACK_BAD_MAGIC: corruptData('a pack does not start with the chunkpoint pack magic'),
  PACK_HEADER_CHECKSUM: corruptData("a pack's header fails its checksum"),
  PACK_TRAILER: corruptData("a pack's trailer (its index of blobs) is missing, truncated or damaged"),
  PACK_MISSING: corruptData('(verify) a pack the checkpoint references is missing'),
  PACK_SIZE: corruptData('(verify) a pack the checkpoint references is not the size it records'),
  BLOB_TRUNCATED: corruptData('a blob is shorter than its header or its declared payload'),
  BLOB_BAD_MAGIC: corruptData('a blob does not start with the chunkpoint blob magic'),
  BLOB_HEADER_CHECKSUM: corruptData("a blob's header fails its checksum"),
  BLOB_VERSION: corruptData('a blob of a format version this chunkpoint does not read'),
  BLOB_CODEC: corruptData('a blob names an unknown codec'),
  BLOB_LENGTH: corruptData("a blob's declared lengths are impossible"),
  METADATA_TRUNCATED: corruptData("a checkpoint's _metadata is shorter than its header or declared body"),
  METADATA_BAD_MAGIC: corruptData("a checkpoint's _metadata does not start with the chunkpoint metadata magic"),
  METADATA_CHECKSUM: corruptData("a checkpoint's _metadata fails its checksum"),
  METADATA_SYNTAX: corruptData("a checkpoint's _metadata body is not valid JSON"),
  METADATA_INVALID: corruptData("a checkpoint's _metadata has a field that is missing or out of range"),
  METADATA_MISMATCH: corruptData("a checkpoint's _metadata names another checkpoint than the one it sits in"),
  METADATA_TOO_LARGE: corruptData("a checkpoint's _metadata is over the size limit"),
  MANIFEST_MISSING: corruptData('a task manifest the checkpoint commits is missing, or not the size committed'),
  MANIFEST_MISMATCH: corruptData('a task manifest is not the one the checkpoint committed (checksum differs)'),
  MANIFEST_TRUNCATED: corruptData('a task manifest is shorter than its header or declared body'),
  MANIFEST_BAD_MAGIC: corruptData('a task manifest does not start with the chunkpoint manifest magic'),
  MANIFEST_CHECKSUM: corruptData('a task manifest fails its checksum'),
  MANIFEST_SYNTAX: corruptData("a task manifest's body is not valid JSON"),
  MANIFEST_INVALID: corruptData('a task manifest has a field or chunk record that is missing or out of range'),
  SESSION_TRUNCATED: corruptData('a session record is shorter than its header or declared body'),
  SESSION_BAD_MAGIC: corruptData('a session record does not start with the chunkpoint session magic'),
  SESSION_CHECKSUM: corruptData('a session record fails its checksum'),
  SESSION_SYNTAX: corruptData("a session record's body is not valid JSON"),
  SESSION_INVALID: corruptData('a session record has a field that is missing or out of range'),
  UNSAFE_PATH: corruptData('a stored name or store key that would reach outside its place (.., absolute, unknown area)'),
  NOT_A_REGULAR_FILE: corruptData('a directory store holds a link or special file where chunkpoint expects an object'),
  SOURCE_DAMAGED: corruptData('an object a source checkpoint references is missing or the wrong size; the copy stops'),
  GC_UNREADABLE_CHECKPOINT: corruptData('gc stopped without deleting anything: a committed checkpoint cannot be read'),
  CHECKPOINT_DAMAGED: corruptData('(command line) verify found problems in the checkpoint'),

  // store_unavailable
  STORE_ENOSPC: storeUnavailable('the store volume is full (ENOSPC)'),
  STORE_EDQUOT: storeUnavailable('the disk quota of the store is used up (EDQUOT)'),
  STORE_EIO: storeUnavailable('the store volume reported an I/O error (EIO)'),
  STORE_EACCES: storeUnavailable('permission denied in the store directory (EACCES)'),
  STORE_EPERM: storeUnavailable('operation not permitted in the store directory (EPERM)'),
  STORE_EROFS: storeUnavailable('the store directory is on a read-only file system (EROFS)'),
  STORE_EMFILE: storeUnavailable('too many open files in this process in the store (EMFILE)'),
  STORE_ENFILE: storeUnavailable('too many open files in the system in the store (ENFILE)'),
  STORE_EBUSY: storeUnavailable('a file or directory of the store is busy (EBUSY)'),
  STORE_ETIMEDOUT: storeUnavailable('I/O in the store directory timed out (ETIMEDOUT)'),
  STORE_IO: storeUnavailable('I/O in the store directory failed with another errno (in details.errno)'),
  WRITE_FAILED: storeUnavailable('a streamed write failed part-way and cannot be finished by trying again; write the object again'),
  STORE_CREDENTIALS: storeUnavailable('S3: no credentials found, or the endpoint rejected them'),
  STORE_NO_BUCKET: storeUnavailable('S3: the bucket does not exist'),
  STORE_ACCESS_DENIED: storeUnavailable('S3: the credentials may not do this (403)'),
  STORE_UNREACHABLE: storeUnavailable('S3: the endpoint cannot be reached (connection failed or timed out; an unresolvable host is not transient)', { transient: true }),
  STORE_THROTTLED: storeUnavailable('S3: the endpoint is throttling requests (429, 503, SlowDown)', { transient: true }),
  STORE_SERVER_ERROR: storeUnavailable('S3: the endpoint failed (5xx, or an error S3 documents as retryable)', { transient: true }),
  STORE_S3: storeUnavailable('S3: any other refusal (a misaddressed bucket, an unexpected response)'),
  STORE_FAULT_INJECTED: storeUnavailable('(stress tooling) a transient fault or torn write injected by sim/faulty-store.ts', { transient: true }),
  STORE_FAULT_INJECTED_PERMANENT: storeUnavailable('(stress tooling) a permanent fault injected by sim/faulty-store.ts'),

  // conflict
  CHECKPOINT_EXISTS: conflict('another writer committed the checkpoint number first; nothing was overwritten'),
  CHECKPOINT_FENCED: conflict('the checkpoint id was removed while the commit ran (a stalled writer); the commit was withdrawn'),
  BASE_REMOVED: conflict('the checkpoint the task snapshots build on was removed before the commit'),
  TASK_SNAPSHOTS_MIXED: conflict('the task snapshots of one commit were taken after different commits'),
  TASK_SNAPSHOT_EXPIRED: conflict("a task snapshot's lease ran out before the commit, so gc may have removed what it stored"),
  TASK_SNAPSHOT_STALE: conflict('a task snapshot references a manifest or pack the store no longer holds intact'),
  LEASE_LOST: conflict("a snapshot session could not renew its lease; nothing of it will be committed"),
  STATE_CHANGED: conflict('a state file changed or vanished while the snapshot read it'),
  COPY_CONFLICT: conflict("the destination holds another job's checkpoint of the same number"),
  SOURCE_CHANGED: conflict('a source pack changed or was truncated while being copied'),
  PACK_CHANGED: conflict('a pack is not the size it should be while being read (changed or truncated meanwhile)'),
  STAGED_WRITE_LOST: conflict('a staged write disappeared before it was published (gc while the session was not live)'),

  // internal
  UNEXPECTED: internal('something other than a chunkpoint error was thrown: a bug'),
  WORKER_FAILED: internal('a worker thread failed'),
  BAD_RESPONSE: internal('a worker answered another request than the one it was sent'),
  BAD_ERROR_PAYLOAD: internal('an error crossed the thread boundary with an unknown kind or code'),
  UNKNOWN_OP: internal('a worker received a request it does not know'),
  UNPLACED_CHUNK: internal('a chunk lives in a pack whose size is unknown: a broken invariant'),
  POOL_CLOSED: internal('the worker pool was closed'),
  CLOSED: internal('the Chunkpoint instance was closed'),
  ABORTED: internal('the operation was aborted through its AbortSignal'),
  NATIVE_MODULE: internal("a native addon (lz4) does not load in this Node; npm rebuild fixes it"),
  STORE_WRAPPER: internal('a store wrapper module (such as the stress tooling) cannot be loaded'),
  RELAY_CLOSED: internal("the main thread closed the workers' store relay (the pool is closing)"),
  RELAY_MISSING: internal('an S3 call in a worker thread that was sent without a store relay'),
  RELAY_BAD_REPLY: internal('the store relay answered with another kind of value than the call needs'),
  RELAY_UNSUPPORTED: internal("a worker tried to relay a coordinator's store call"),
  RELAY_UNKNOWN_CALL: internal('a worker relayed a store call the main thread does not know'),
  RELAY_NOT_S3: internal('a worker relayed a call for a store that is not S3'),
  RELAY_UNKNOWN_HANDLE: internal('a worker used a relayed reader or writer that is closed or was never opened'),
  STRESS_VIOLATION: internal('(command line) the stress harness found an invariant violated'),
} as const);

export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes of one kind: what that kind's error class accepts. */
export type CodeOfKind<K extends ErrorKind> = { [C in ErrorCode]: (typeof ERROR_CODES)[C]['kind'] extends K ? C : never }[ErrorCode];

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

export function hasKind<K extends ErrorKind>(code: ErrorCode, kind: K): code is CodeOfKind<K> {
  return ERROR_CODES[code].kind === kind;
}
