/**
 * Read-only views of committed checkpoints: the per-job list and the
 * per-checkpoint report (files, chunks, stored sizes, what is shared).
 */
import { committedCheckpointIds, loadCheckpoint } from './checkpoint.js';
import type { Hasher } from './content-key.js';
import { checkpointDirName, handleKey } from './handle.js';
import { allFiles, type CheckpointMetadata } from './metadata.js';
import type { Store } from './store/store.js';

export interface CheckpointSummary {
  checkpointId: number;
  checkpoint: string;
  createdAt: string;
  /** Task ids, in commit order. */
  tasks: string[];
  files: number;
  /** Logical size of the state it restores. */
  bytes: number;
  /** Stored size of all distinct blobs it references. */
  storedBytes: number;
  /** Bytes its snapshot wrote (new blobs and metadata). */
  bytesWritten: number;
  chunks: number;
  /** Logical bytes / stored bytes over distinct blobs. */
  compressionRatio: number;
}

export interface FileReport {
  task: string;
  path: string;
  size: number;
  chunks: number;
  storedBytes: number;
  /** True when every chunk was written by an earlier checkpoint. */
  reused: boolean;
  /** Oldest checkpoint that first stored one of this file's blobs. */
  firstWrittenBy: number;
  /** Newest such checkpoint: equal to `firstWrittenBy` when one checkpoint stored the whole file. */
  lastWrittenBy: number;
}

export interface CheckpointReport extends CheckpointSummary {
  location: string;
  chunkSize: number;
  uniqueChunks: number;
  /** Stored bytes of blobs first written by this checkpoint. */
  storedBytesNew: number;
  /**
   * Stored bytes shared with the previous checkpoint: distinct blobs first
   * stored by an earlier checkpoint (`createdBy` < this id), i.e.
   * `storedBytes - storedBytesNew`. A snapshot reuses blobs only from the
   * checkpoint it builds on, so the previous checkpoint references every one.
   */
  storedBytesShared: number;
  fileReports: FileReport[];
}

export function summarize(metadata: CheckpointMetadata): CheckpointSummary {
  const distinct = new Map<string, number>();
  let chunks = 0;
  let files = 0;
  let bytes = 0;
  for (const file of allFiles(metadata)) {
    files++;
    bytes += file.size;
    for (const chunk of file.chunks) {
      distinct.set(handleKey(chunk.handle), chunk.handle.length);
      chunks++;
    }
  }
  const summary: CheckpointSummary = {
    checkpointId: metadata.checkpointId,
    checkpoint: checkpointDirName(metadata.checkpointId),
    createdAt: metadata.createdAt,
    tasks: metadata.tasks.map((t) => t.task),
    files,
    bytes,
    storedBytes: [...distinct.values()].reduce((a, b) => a + b, 0),
    bytesWritten: metadata.snapshot.bytesWritten,
    chunks,
    compressionRatio: 1,
  };
  summary.compressionRatio = summary.storedBytes > 0 ? Math.round((summary.bytes / summary.storedBytes) * 100) / 100 : 1;
  return summary;
}

export async function listCheckpoints(store: Store, hasher: Hasher): Promise<CheckpointSummary[]> {
  const out: CheckpointSummary[] = [];
  for (const id of await committedCheckpointIds(store)) out.push(summarize(await loadCheckpoint(store, id, hasher)));
  return out;
}

export function report(metadata: CheckpointMetadata, location: string): CheckpointReport {
  const summary = summarize(metadata);
  const distinctNew = new Map<string, number>();
  const distinct = new Set<string>();
  const fileReports = metadata.tasks.flatMap((task) => task.files.map((file): FileReport => {
    let storedBytes = 0;
    let firstWrittenBy = metadata.checkpointId;
    let lastWrittenBy = 0;
    for (const chunk of file.chunks) {
      storedBytes += chunk.handle.length;
      firstWrittenBy = Math.min(firstWrittenBy, chunk.createdBy);
      lastWrittenBy = Math.max(lastWrittenBy, chunk.createdBy);
      distinct.add(handleKey(chunk.handle));
      if (chunk.createdBy === metadata.checkpointId) distinctNew.set(handleKey(chunk.handle), chunk.handle.length);
    }
    const reused = file.chunks.length > 0 && file.chunks.every((c) => c.createdBy < metadata.checkpointId);
    return { task: task.task, path: file.path, size: file.size, chunks: file.chunks.length, storedBytes, reused, firstWrittenBy, lastWrittenBy: file.chunks.length === 0 ? firstWrittenBy : lastWrittenBy };
  }));
  const storedBytesNew = [...distinctNew.values()].reduce((a, b) => a + b, 0);
  return {
    ...summary,
    location,
    chunkSize: Math.max(...metadata.tasks.map((t) => t.chunkSize)),
    uniqueChunks: distinct.size,
    storedBytesNew,
    storedBytesShared: summary.storedBytes - storedBytesNew,
    fileReports,
  };
}
