/**
 * Typed lifecycle and progress events, for a runtime that embeds chunkpoint
 * and feeds its own metrics or logs (and for the CLI's progress bar, which is
 * driven by exactly these events).
 *
 * Every operation emits `<op>.started`, then `<op>.progress` events from the
 * coordinator as worker results arrive (throttled, with a first one as soon
 * as the totals are known and a final one whose figures equal the returned
 * result), then exactly one of `<op>.committed`/`<op>.completed` (carrying the
 * result) or `<op>.failed` (carrying the error).
 */
import type { ChunkpointError } from './errors.js';
import type { CopyProgress, CopyResult } from './copy.js';
import type { GcProgress, GcResult } from './gc.js';
import type { TaskFigures } from './format/metadata.js';
import type { RestoreProgress, RestoreResult } from './restore/index.js';
import type { SnapshotProgress, SnapshotResult } from './snapshot/index.js';
import type { VerifyProgress, VerifyResult } from './verify.js';

// Each coordinator owns its progress figures; they are part of the event API.
export type { CopyProgress, GcProgress, RestoreProgress, SnapshotProgress, VerifyProgress };
export { DEFAULT_PROGRESS_INTERVAL_MS, throttledSink, type ProgressSink } from './progress.js';

export type Operation = 'snapshot' | 'restore' | 'verify' | 'copy' | 'gc';

/** What every event carries: which operation, on what, and when. */
export interface EventBase {
  /** Distinguishes concurrent operations of one `Chunkpoint`: all events of one call share it. */
  operationId: number;
  /** Where the job root is (directory or s3:// URL). */
  location: string;
  /** Milliseconds since the operation started. */
  elapsedMs: number;
}

export type ChunkpointEvent =
  | (EventBase & { type: 'snapshot.started'; job: string; task: string; stateDir: string })
  | (EventBase & { type: 'snapshot.progress'; job: string; task: string } & SnapshotProgress)
  /** A task of a multi-task job stored its chunks (`snapshotTask`); nothing is committed yet. */
  | (EventBase & { type: 'snapshot.stored'; job: string; task: string; figures: TaskFigures })
  | (EventBase & { type: 'snapshot.committed'; job: string; result: SnapshotResult })
  | (EventBase & { type: 'snapshot.failed'; job: string; error: ChunkpointError })
  | (EventBase & { type: 'restore.started'; targetDir: string })
  | (EventBase & { type: 'restore.progress'; checkpoint: string; task: string } & RestoreProgress)
  | (EventBase & { type: 'restore.completed'; result: RestoreResult })
  | (EventBase & { type: 'restore.failed'; error: ChunkpointError })
  | (EventBase & { type: 'verify.started' })
  | (EventBase & { type: 'verify.progress'; checkpoint: string } & VerifyProgress)
  | (EventBase & { type: 'verify.completed'; result: VerifyResult })
  | (EventBase & { type: 'verify.failed'; error: ChunkpointError })
  | (EventBase & { type: 'copy.started'; to: string })
  | (EventBase & { type: 'copy.progress'; to: string } & CopyProgress)
  | (EventBase & { type: 'copy.completed'; result: CopyResult })
  | (EventBase & { type: 'copy.failed'; error: ChunkpointError })
  | (EventBase & { type: 'gc.started'; job: string; dryRun: boolean })
  | (EventBase & { type: 'gc.progress'; job: string } & GcProgress)
  | (EventBase & { type: 'gc.completed'; job: string; result: GcResult })
  | (EventBase & { type: 'gc.failed'; job: string; error: ChunkpointError });

export type ChunkpointEventType = ChunkpointEvent['type'];

/** The event of one type, e.g. `EventOf<'snapshot.progress'>`. */
export type EventOf<T extends ChunkpointEventType> = Extract<ChunkpointEvent, { type: T }>;

export type EventListener = (event: ChunkpointEvent) => void;
