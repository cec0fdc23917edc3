/**
 * What a snapshot or a commit returns: its own module, so the commit (which
 * builds it) and the snapshot coordinator (which adds its stages) share it
 * without importing each other.
 */
import type { WorkerStages } from '../protocol.js';

/**
 * A snapshot's time by stage. The coordinator's are wall time, one after
 * the other; the workers' are summed over threads (with two threads busy
 * they add up to twice the write stage's wall time).
 */
export interface SnapshotStages {
  /** Listing the state directory and finding the base checkpoint (concurrently). */
  listMs: number;
  /** Taking the lease, loading the base's manifest and pack list, planning reuse. */
  planMs: number;
  /** Worker jobs (read, hash, compress, write), including rewrites of mostly dead packs. */
  writeMs: number;
  /** Making the packs durable and visible. */
  publishMs: number;
  /** Encoding, checking and writing the manifest. */
  manifestMs: number;
  /** Committing `_metadata` and retention. */
  commitMs: number;
  /** Bringing the task-local copy up to this snapshot (0 without one). */
  localCopyMs: number;
  workers: WorkerStages;
}

export interface SnapshotResult {
  checkpointId: number;
  /** Directory name of the checkpoint, e.g. `chk-3`. */
  checkpoint: string;
  /** The checkpoint it reused data from (`chk-2`), or null for a full snapshot. */
  base: string | null;
  /** Tasks in the checkpoint (1 for `snapshot`). */
  tasks: number;
  files: number;
  /** Logical size of the state directory. */
  bytes: number;
  /** State bytes read by workers (only new or changed files, and chunks of rewritten packs). */
  bytesRead: number;
  /** Bytes written to the store: new packs, manifests and `_metadata`. */
  bytesWritten: number;
  filesReused: number;
  bytesReused: number;
  chunksNew: number;
  /** Of `chunksNew`, those read again because their base pack was not reused (see `packsRewritten`): stored anew, but no new content. */
  chunksRewritten: number;
  chunksDeduped: number;
  packsWritten: number;
  /** Base packs not reused (missing, damaged, or mostly dead) whose chunks were read again from the state, and those chunks' bytes. */
  packsRewritten: number;
  bytesRewritten: number;
  /** Bytes added to the local cache (with `cache`). */
  bytesCached: number;
  /** Where the time went (`snapshot` only; null for a commit of task snapshots). */
  stages: SnapshotStages | null;
  /** Files (and their bytes) the task-local copy holds after this snapshot (with `localCopy`), else null. */
  localCopy: { files: number; bytes: number } | null;
  /** Checkpoints removed by retention after this commit, and what that freed. */
  checkpointsRemoved: string[];
  packsRemoved: number;
  bytesFreed: number;
  /** Raw bytes / stored bytes of the chunks this snapshot stored. */
  compressionRatio: number;
  durationMs: number;
  /** Logical state MB (10^6) per second. */
  throughputMBps: number;
  /** What went wrong around a successful commit (damage routed around, retention that could not finish). */
  warnings: string[];
}
