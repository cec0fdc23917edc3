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
import type { CopyResult } from './copy.js';
import type { GcResult } from './gc.js';
import type { TaskFigures } from './format/metadata.js';
import type { RestoreResult } from './restore/index.js';
import type { SnapshotResult } from './snapshot/index.js';
import type { VerifyResult } from './verify.js';

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

export interface SnapshotProgress {
  /** Logical state bytes done: files reused without reading, plus chunks stored. Ends at `result.bytes`. */
  bytesDone: number;
  /** Logical size of the state directory. */
  bytesTotal: number;
  /** State bytes read by workers so far. Ends at `result.bytesRead`. */
  bytesRead: number;
  /** Pack bytes written to the store so far (without manifests and `_metadata`). */
  bytesWritten: number;
  /** Files reused or with every chunk stored. Ends at `result.files`. */
  filesDone: number;
  filesTotal: number;
  filesReused: number;
  chunksNew: number;
  chunksDeduped: number;
}

export interface RestoreProgress {
  /** Logical bytes done: files kept in place, plus chunks written. Ends at `result.bytes`. */
  bytesDone: number;
  bytesTotal: number;
  /** Stored bytes fetched from the store / read from the local cache so far. */
  bytesFromRemote: number;
  bytesFromCache: number;
  /** Files kept, or with every chunk written. Ends at `result.files`. */
  filesDone: number;
  filesTotal: number;
  /** Chunks fetched and verified so far. Ends at `result.chunks`. */
  chunks: number;
}

export interface VerifyProgress {
  /** Stored bytes of the pack spans checked so far. Ends at `bytesTotal`. */
  bytesDone: number;
  /** Stored bytes of the pack spans to read. */
  bytesTotal: number;
  /** Stored bytes fetched and checked. Ends at `result.bytesChecked`. */
  bytesChecked: number;
  blobsDone: number;
  blobsTotal: number;
  problems: number;
}

export interface CopyProgress {
  /** Bytes of the objects and `_metadata` handled so far (copied, or found already there). */
  bytesDone: number;
  bytesTotal: number;
  /** Ends at `result.bytesCopied`. */
  bytesCopied: number;
  objectsDone: number;
  objectsTotal: number;
  objectsCopied: number;
}

/** gc streams the store's listing, so it has no totals: only running counts. */
export interface GcProgress {
  objectsScanned: number;
  /** Ends at `result.packsRemoved`. */
  packsRemoved: number;
  incompleteRemoved: number;
  bytesFreed: number;
  youngKept: number;
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

/** Default minimum time between two progress events of one operation. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 100;

/**
 * How a coordinator reports progress: it calls `update` after every worker
 * result with a function building the figures, which runs only when an event
 * is due, so the per-chunk cost of an unobserved operation is one comparison.
 */
export interface ProgressSink<P> {
  update(figures: () => P, force?: boolean): void;
}

export function throttledSink<P>(intervalMs: number, deliver: (figures: P) => void): ProgressSink<P> {
  let last = -Infinity;
  return {
    update(figures, force = false) {
      const now = performance.now();
      if (!force && now - last < intervalMs) return;
      last = now;
      deliver(figures());
    },
  };
}
