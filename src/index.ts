/**
 * chunkpoint: incremental, content-addressed, relocatable checkpoints of a
 * state directory, written and restored on worker threads.
 */
export { Chunkpoint, type ChunkpointOptions, type JobLocator, type JobRoot, type RateLimited, type TaskLocator } from './chunkpoint.js';
export type { CopyOptions, CopyResult } from './copy.js';
export type { CheckpointLocator } from './checkpoint.js';
export { DEFAULT_CHUNK_SIZE, DEFAULT_IMMUTABLE, type CommitOptions, type SnapshotOptions, type SnapshotResult, type SnapshotStages, type TaskSnapshotOptions } from './snapshot/index.js';
export type { WorkerStages } from './protocol.js';
export { DEFAULT_TASK } from './format/names.js';
export { DEFAULT_PACK_SIZE } from './format/pack.js';
export { DEFAULT_LEASE_MS } from './lease.js';
export type { TaskSnapshot, TaskFigures } from './format/metadata.js';
export type { RestoreOptions, RestoreResult } from './restore/index.js';
export type { ChunkUse, VerifyOptions, VerifyProblem, VerifyResult } from './verify.js';
export type { CheckpointReport, CheckpointSummary, FileReport } from './inspect.js';
export { DEFAULT_GRACE_MS, DEFAULT_RETAIN, type GcOptions, type GcResult } from './gc.js';
export type { CacheOptions, CacheStats, PruneResult } from './cache.js';
export {
  DEFAULT_PROGRESS_INTERVAL_MS,
  type ChunkpointEvent,
  type ChunkpointEventType,
  type CopyProgress,
  type EventBase,
  type EventListener,
  type EventOf,
  type GcProgress,
  type Operation,
  type RestoreProgress,
  type SnapshotProgress,
  type VerifyProgress,
} from './events.js';
export {
  ChunkpointError,
  ConflictError,
  CorruptDataError,
  InternalError,
  InvalidInputError,
  StoreUnavailableError,
  ERROR_CODES,
  type CodeOfKind,
  type CodeSpec,
  type ErrorCode,
  type ErrorKind,
} from './errors.js';
