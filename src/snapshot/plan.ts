/**
 * The reuse plan of a snapshot task: which chunks the base checkpoint already
 * holds, soundly, and which must be read from the state directory.
 *
 * - An immutable file with the name, size and mtime of the same task's file in
 *   the base is reused by handle, unread — if every pack its chunks live in
 *   is in the store at the size the base recorded (one listing tells).
 *   Reuse never propagates damage: chunks in a pack that vanished or changed
 *   size are read again from the state directory, which still has them.
 * - Space stays bounded: a pack the new checkpoint would use less than half
 *   of (FLIP-306's rule) is not reused; its live chunks are read again from
 *   the state directory into new packs, so once the checkpoints that still
 *   use the old pack are retired, gc frees all of it.
 * - Every other chunk is read, hashed, and reused only when the base holds
 *   its content in a sound pack (the dedupe table), else stored anew.
 */
import type { Area } from '../format/names.js';
import type { ChunkRef, FileEntry, TaskManifest } from '../format/manifest.js';
import type { StateFile } from './state-dir.js';

/** A pack the new checkpoint uses less than this share of is rewritten rather than reused… */
export const MIN_PACK_USE = 0.5;
/** …when that wastes more than this: below it a small pack (a task's few mutable files) costs less kept than rewritten. */
export const MIN_PACK_WASTE = 256 * 1024;

export interface ChunkWork {
  index: number;
  offset: number;
  length: number;
}

/** Chunks of one file to read and store. */
export interface PendingRun {
  area: Area;
  file: StateFile;
  entry: FileEntry;
  chunks: ChunkWork[];
}

export interface ReusePlan {
  /** One per state file, in listing order; chunks still to store are filled in by the writer. */
  entries: FileEntry[];
  pending: PendingRun[];
  /** Chunks of the base in sound packs: the dedupe table's entries, by index. */
  reusable: ChunkRef[];
  filesReused: number;
  bytesReused: number;
  /** Base packs not reused: missing, of the wrong size, or mostly dead. */
  packsRewritten: number;
  /** Base packs missing or of the wrong size in the store (damage found and routed around). */
  packsDamaged: string[];
}

export function planReuse(files: readonly StateFile[], base: TaskManifest | undefined, stored: ReadonlyMap<string, number>, chunkSize: number): ReusePlan {
  const previous = new Map(base?.files.map((f) => [f.path, f]) ?? []);
  const packSize = new Map(base?.packs.map((p) => [p.key, p.size]) ?? []);
  const packsDamaged = [...packSize].filter(([key, size]) => stored.get(key) !== size).map(([key]) => key);
  const damaged = new Set(packsDamaged);
  const packOf = (c: ChunkRef): string => `${c.handle.area}/${c.handle.name}`;

  // Tentative reuse by name, size and mtime (as rsync does: two databases snapshotted into one
  // job can both have a 000008.sst of the same size, never the same mtime too).
  const candidates = new Map<string, FileEntry>();
  for (const file of files) {
    const old = previous.get(file.relPath);
    if (file.immutable && old !== undefined && old.immutable && old.size === file.size && old.mtimeMs === file.mtimeMs) candidates.set(file.relPath, old);
  }
  // What the new checkpoint is expected to use of each base pack: the files reused by name, and the
  // mutable files that look unchanged (they are read again, but will most likely dedupe to the same chunks).
  const used = new Map<string, number>();
  const use = (old: FileEntry): void => {
    for (const c of old.chunks) used.set(packOf(c), (used.get(packOf(c)) ?? 0) + c.handle.length);
  };
  for (const old of candidates.values()) use(old);
  for (const file of files) {
    const old = previous.get(file.relPath);
    if (!file.immutable && old !== undefined && old.size === file.size && old.mtimeMs === file.mtimeMs) use(old);
  }
  const sparse = new Set(
    [...packSize]
      .filter(([key, size]) => {
        const live = used.get(key) ?? 0;
        return live < MIN_PACK_USE * size && size - live > MIN_PACK_WASTE;
      })
      .map(([key]) => key),
  );
  const sound = (c: ChunkRef): boolean => !damaged.has(packOf(c)) && !sparse.has(packOf(c));

  const entries: FileEntry[] = [];
  const pending: PendingRun[] = [];
  let filesReused = 0;
  let bytesReused = 0;
  for (const file of files) {
    const entry: FileEntry = { path: file.relPath, size: file.size, mode: file.mode, mtimeMs: file.mtimeMs, immutable: file.immutable, chunks: [] };
    entries.push(entry);
    const area: Area = file.immutable ? 'shared' : 'taskowned';
    const old = candidates.get(file.relPath);
    if (old !== undefined) {
      entry.chunks = [...old.chunks];
      const redo: ChunkWork[] = [];
      let offset = 0;
      for (const [index, c] of old.chunks.entries()) {
        if (!sound(c)) redo.push({ index, offset, length: c.rawLength });
        offset += c.rawLength;
      }
      if (redo.length === 0) {
        filesReused++;
        bytesReused += file.size;
      } else {
        // Keep the base's chunk boundaries: the sound chunks stay referenced as they are.
        bytesReused += file.size - redo.reduce((sum, r) => sum + r.length, 0);
        pending.push({ area, file, entry, chunks: redo });
      }
      continue;
    }
    const count = Math.ceil(file.size / chunkSize);
    entry.chunks = new Array<ChunkRef>(count);
    const chunks: ChunkWork[] = [];
    for (let index = 0; index < count; index++) {
      const offset = index * chunkSize;
      chunks.push({ index, offset, length: Math.min(chunkSize, file.size - offset) });
    }
    if (count > 0) pending.push({ area, file, entry, chunks });
  }

  const reusable = (base?.files ?? []).flatMap((f) => f.chunks.filter(sound));
  // Rewritten: base packs some of whose chunks this snapshot stores again instead of referencing.
  const rewritten = new Set(pending.flatMap((run) => run.chunks.map((w) => run.entry.chunks[w.index]).filter((c): c is ChunkRef => c !== undefined).map(packOf)));
  return { entries, pending, reusable, filesReused, bytesReused, packsRewritten: rewritten.size, packsDamaged };
}
