/**
 * Read-only views of committed checkpoints: the per-job list (from
 * `_metadata` alone) and the per-checkpoint report (with the manifests:
 * files, chunks, stored sizes, what is new and what is reused).
 */
import { loadCheckpoint, loadManifest, readJobState } from './checkpoint.js';
import { ChunkpointError, CorruptDataError } from './errors.js';
import type { CheckpointMetadata } from './format/metadata.js';
import { checkpointDirName, parseStoreKey } from './format/names.js';
import type { MainThreadRuntime } from './runtime.js';
import type { Store } from './store/store.js';

export interface CheckpointSummary {
  checkpointId: number;
  checkpoint: string;
  /** Set when the checkpoint cannot be read: what is wrong (the other fields are then zero). */
  damaged?: string;
  createdAt: string;
  /** The checkpoint it reused data from. */
  base: string | null;
  /** Task ids, in commit order. */
  tasks: string[];
  files: number;
  /** Logical size of the state it restores. */
  bytes: number;
  /** Size of all distinct packs it references. */
  storedBytes: number;
  packs: number;
  /** Bytes its snapshot wrote (new packs and manifests). */
  bytesWritten: number;
  chunks: number;
  /** Logical bytes / stored bytes. */
  compressionRatio: number;
}

export interface FileReport {
  task: string;
  path: string;
  size: number;
  chunks: number;
  storedBytes: number;
  /** True when every chunk lives in a pack an earlier snapshot wrote. */
  reused: boolean;
}

export interface CheckpointReport extends CheckpointSummary {
  location: string;
  chunkSize: number;
  uniqueChunks: number;
  /** Stored bytes of the chunks this checkpoint's own snapshot wrote. */
  storedBytesNew: number;
  /** Stored bytes of chunks in packs earlier snapshots wrote: `storedBytes` of the chunks minus `storedBytesNew`. */
  storedBytesShared: number;
  fileReports: FileReport[];
}

export function summarize(metadata: CheckpointMetadata): CheckpointSummary {
  const packs = new Map<string, number>();
  for (const t of metadata.tasks) for (const p of t.packs) packs.set(p.key, p.size);
  const bytes = metadata.tasks.reduce((n, t) => n + t.bytes, 0);
  const storedBytes = [...packs.values()].reduce((a, b) => a + b, 0);
  return {
    checkpointId: metadata.checkpointId,
    checkpoint: checkpointDirName(metadata.checkpointId),
    createdAt: metadata.createdAt,
    base: metadata.base === null ? null : checkpointDirName(metadata.base),
    tasks: metadata.tasks.map((t) => t.task),
    files: metadata.tasks.reduce((n, t) => n + t.files, 0),
    bytes,
    storedBytes,
    packs: packs.size,
    bytesWritten: metadata.snapshot.bytesWritten,
    chunks: metadata.tasks.reduce((n, t) => n + t.chunks, 0),
    compressionRatio: storedBytes > 0 ? Math.round((bytes / storedBytes) * 100) / 100 : 1,
  };
}

/** Every committed checkpoint, oldest first; one that cannot be read is listed as damaged, not hidden, and does not hide the others. */
export async function listCheckpoints({ hasher }: MainThreadRuntime, store: Store): Promise<CheckpointSummary[]> {
  const out: CheckpointSummary[] = [];
  for (const id of (await readJobState(store)).ids) {
    try {
      out.push(summarize(await loadCheckpoint(store, id, hasher)));
    } catch (error) {
      if (error instanceof ChunkpointError && error.code === 'CHECKPOINT_NOT_FOUND') continue; // removed meanwhile
      if (!(error instanceof CorruptDataError) && !(error instanceof ChunkpointError && error.code === 'FORMAT_UNSUPPORTED')) throw error;
      out.push({ checkpointId: id, checkpoint: checkpointDirName(id), damaged: error.message, createdAt: '', base: null, tasks: [], files: 0, bytes: 0, storedBytes: 0, packs: 0, bytesWritten: 0, chunks: 0, compressionRatio: 1 });
    }
  }
  return out;
}

export async function report({ hasher }: MainThreadRuntime, store: Store, metadata: CheckpointMetadata): Promise<CheckpointReport> {
  const summary = summarize(metadata);
  const distinct = new Set<string>();
  let storedBytesNew = 0;
  let storedBytesChunks = 0;
  let chunkSize = 0;
  const fileReports: FileReport[] = [];
  for (const task of metadata.tasks) {
    const { manifest } = await loadManifest(store, task, hasher);
    chunkSize = Math.max(chunkSize, manifest.chunkSize);
    const ownPack = (area: string, name: string): boolean => {
      const parsed = parseStoreKey(`${area}/${name}`);
      return parsed?.kind === 'pack' && parsed.session === task.session;
    };
    for (const file of manifest.files) {
      let storedBytes = 0;
      let reused = file.chunks.length > 0;
      for (const c of file.chunks) {
        storedBytes += c.handle.length;
        const id = `${c.handle.area}/${c.handle.name}@${c.handle.offset}`;
        const own = ownPack(c.handle.area, c.handle.name);
        if (own) reused = false;
        if (!distinct.has(id)) {
          distinct.add(id);
          storedBytesChunks += c.handle.length;
          if (own) storedBytesNew += c.handle.length;
        }
      }
      fileReports.push({ task: task.task, path: file.path, size: file.size, chunks: file.chunks.length, storedBytes, reused });
    }
  }
  return {
    ...summary,
    location: store.location,
    chunkSize,
    uniqueChunks: distinct.size,
    storedBytesNew,
    storedBytesShared: storedBytesChunks - storedBytesNew,
    fileReports,
  };
}
