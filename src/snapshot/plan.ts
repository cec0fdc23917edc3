/**
 * The reuse plan of a snapshot task: which chunks the base checkpoint already
 * holds, soundly, and which must be read from the state directory.
 *
 * - An immutable file with the name, size and mtime of the same task's file in
 *   the base is reused by handle, unread — if every pack its chunks live in
 *   is in the store at the size the base recorded (one listing tells).
 *   Reuse never propagates damage: chunks in a pack that vanished or changed
 *   size are read again from the state directory, which still has them.
 * - Every other chunk is read, hashed, and reused when the base holds its
 *   content in a sound pack (the dedupe table), else stored anew.
 * - Then space (planRewrites): a base pack the new checkpoint uses less than
 *   half of is not kept alive by it (FLIP-306's rule): its chunks are read
 *   again from the state directory into new packs, so once the checkpoints
 *   that still use the old pack are retired, gc frees all of it. Deciding
 *   after the write, on what the new checkpoint really references, keeps
 *   every chunk that deduplicates (a compaction that rewrote a file with the
 *   same blocks) from being stored twice.
 */
import type { Area } from '../format/names.js';
import type { ChunkRef, FileEntry, TaskManifest } from '../format/manifest.js';
import type { StateFile } from './state-dir.js';

/** A pack the new checkpoint uses less than this share of is rewritten rather than kept alive… */
export const MIN_PACK_USE = 0.5;
/**
 * …once such packs together waste more than this, per task snapshot. Counted over all of them, not
 * per pack: a small state (or a task's mutable files) makes small packs, and a per-pack threshold
 * let each of them stay almost dead; the stress workload's store reached 1.9–2.9x its live data
 * that way. Below it, a rewrite pass would cost a round of worker requests and a new pack to free
 * a few KiB.
 */
export const MIN_REWRITE_WASTE = 256 * 1024;

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
  /** Chunks the base holds in a pack not reused (damaged or mostly dead), read again: stored anew, but no new content. */
  rewrite?: true;
}

export interface ReusePlan {
  /** One per state file, in listing order; chunks still to store are filled in by the writer. */
  entries: FileEntry[];
  pending: PendingRun[];
  /** Chunks of the base in sound packs: the dedupe table's entries, by index. */
  reusable: ChunkRef[];
  filesReused: number;
  bytesReused: number;
  /** Base packs not reused because they are missing or of the wrong size, and the bytes of their chunks read again. */
  packsRewritten: number;
  bytesRewritten: number;
  /** Base packs missing or of the wrong size in the store (damage found and routed around). */
  packsDamaged: string[];
}

export function planReuse(files: readonly StateFile[], base: TaskManifest | undefined, stored: ReadonlyMap<string, number>, chunkSize: number): ReusePlan {
  const previous = new Map(base?.files.map((f) => [f.path, f]) ?? []);
  const packsDamaged = (base?.packs ?? []).filter((p) => stored.get(p.key) !== p.size).map((p) => p.key);
  const damaged = new Set(packsDamaged);
  const sound = (c: ChunkRef): boolean => !damaged.has(packOf(c));

  const entries: FileEntry[] = [];
  const pending: PendingRun[] = [];
  let filesReused = 0;
  let bytesReused = 0;
  let bytesRewritten = 0;
  for (const file of files) {
    const entry: FileEntry = { path: file.relPath, size: file.size, mode: file.mode, mtimeMs: file.mtimeMs, immutable: file.immutable, chunks: [] };
    entries.push(entry);
    const area: Area = file.immutable ? 'shared' : 'taskowned';
    const old = previous.get(file.relPath);
    // Name, size and mtime, as rsync does: two databases snapshotted into one job can both
    // have a 000008.sst of the same size, never the same mtime too.
    if (file.immutable && old !== undefined && old.immutable && old.size === file.size && sameMtime(old.mtimeMs, file.mtimeMs)) {
      entry.chunks = [...old.chunks];
      const redo = worksOf(entry.chunks, (c) => !sound(c));
      if (redo.length === 0) {
        filesReused++;
        bytesReused += file.size;
      } else {
        // Keep the base's chunk boundaries: the sound chunks stay referenced as they are.
        const again = redo.reduce((sum, r) => sum + r.length, 0);
        bytesReused += file.size - again;
        bytesRewritten += again;
        pending.push({ area, file, entry, chunks: redo, rewrite: true });
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
  return { entries, pending, reusable, filesReused, bytesReused, packsRewritten: damaged.size, bytesRewritten, packsDamaged };
}

export interface RewritePlan {
  /** Base packs the new checkpoint would use less than half of (none while together they waste little). */
  sparse: Set<string>;
  /** The chunks in them, to read again and store anew. */
  pending: PendingRun[];
  bytes: number;
}

/**
 * After the write: the base packs the new checkpoint references but would
 * use less than half of (counting each blob once), and the chunks of them to
 * store again. `basePacks` are the base's packs with their sizes; packs this
 * snapshot wrote are not in it.
 */
export function planRewrites(files: readonly StateFile[], entries: readonly FileEntry[], basePacks: ReadonlyMap<string, number>): RewritePlan {
  const used = new Map<string, number>();
  const counted = new Set<string>();
  for (const entry of entries) {
    for (const c of entry.chunks) {
      const pack = packOf(c);
      const blob = `${pack}@${c.handle.offset}`;
      if (!basePacks.has(pack) || counted.has(blob)) continue;
      counted.add(blob);
      used.set(pack, (used.get(pack) ?? 0) + c.handle.length);
    }
  }
  const candidates = [...used].filter(([key, live]) => live < MIN_PACK_USE * (basePacks.get(key) ?? 0));
  const waste = candidates.reduce((sum, [key, live]) => sum + (basePacks.get(key) ?? 0) - live, 0);
  const sparse = new Set(waste > MIN_REWRITE_WASTE ? candidates.map(([key]) => key) : []);
  const pending: PendingRun[] = [];
  let bytes = 0;
  if (sparse.size > 0) {
    const fileOf = new Map(files.map((f) => [f.relPath, f]));
    for (const entry of entries) {
      const redo = worksOf(entry.chunks, (c) => sparse.has(packOf(c)));
      const file = fileOf.get(entry.path);
      if (redo.length === 0 || file === undefined) continue;
      pending.push({ area: entry.immutable ? 'shared' : 'taskowned', file, entry, chunks: redo, rewrite: true });
      bytes += redo.reduce((sum, r) => sum + r.length, 0);
    }
  }
  return { sparse, pending, bytes };
}

/** The store key of the pack a chunk lives in (what manifests list and `sparse` holds). */
export function packOf(c: ChunkRef): string {
  return `${c.handle.area}/${c.handle.name}`;
}

/** The chunks of a file that `pick` selects, as work at their offsets in the file. */
function worksOf(chunks: readonly ChunkRef[], pick: (c: ChunkRef) => boolean): ChunkWork[] {
  const out: ChunkWork[] = [];
  let offset = 0;
  for (const [index, c] of chunks.entries()) {
    if (pick(c)) out.push({ index, offset, length: c.rawLength });
    offset += c.rawLength;
  }
  return out;
}
/**
 * mtimes travel as milliseconds in a double, and a restore sets them back
 * through seconds in a double: the round trip may move the last bits. Within
 * a microsecond is the same mtime (a file rewritten at the same size within
 * the same microsecond is not a real case; immutable files are never
 * rewritten at all).
 */
export function sameMtime(a: number, b: number): boolean {
  return Math.abs(a - b) < 0.001;
}
