/**
 * The read plan of a restore: which blobs to fetch, in how few requests.
 *
 * Each distinct blob is fetched once, however many files or offsets use it.
 * Blobs the local cache holds are read from there (one small request each).
 * The rest are grouped by pack, sorted by offset, and coalesced into spans —
 * one ranged read per stretch of a pack, reading over small gaps rather
 * than paying a request for each side — so a restore costs about one
 * request per pack, and the reads stream (memory is a chunk, not a span).
 */
import { join } from 'node:path';
import type { FileEntry } from '../format/manifest.js';
import type { Handle } from '../format/names.js';
import type { ChunkTarget, SpanBlob } from '../protocol.js';

/** Gaps up to this are read over rather than split into two requests. */
export const MAX_GAP = 1024 * 1024;
/** A span never grows beyond this (a pack is usually smaller: one span per pack). */
export const MAX_SPAN = 64 * 1024 * 1024;

export interface PlannedBlob extends SpanBlob {
  handle: Handle;
}

export interface Span {
  /** Store key of the pack. */
  key: string;
  offset: number;
  length: number;
  blobs: PlannedBlob[];
  /** Raw bytes this span puts into the target (counting every target). */
  rawBytes: number;
}

export interface ReadPlan {
  spans: Span[];
  /** Blobs to read from the local cache (with a fallback to the store). */
  cached: PlannedBlob[];
  chunks: number;
}

/** Every distinct blob of `files`, with where its raw bytes go in `staging`. */
export function blobsOf(files: readonly FileEntry[], staging: string): PlannedBlob[] {
  const byHandle = new Map<string, PlannedBlob>();
  for (const file of files) {
    let offset = 0;
    for (const [index, chunk] of file.chunks.entries()) {
      const id = `${chunk.handle.area}/${chunk.handle.name}@${chunk.handle.offset}`;
      const target: ChunkTarget = { path: join(staging, ...file.path.split('/')), offset };
      const known = byHandle.get(id);
      if (known !== undefined) known.targets.push(target);
      else byHandle.set(id, { at: chunk.handle.offset, length: chunk.handle.length, key: chunk.key, rawLength: chunk.rawLength, targets: [target], where: `chunk ${index} of ${file.path}`, handle: chunk.handle });
      offset += chunk.rawLength;
    }
  }
  return [...byHandle.values()];
}

export function planReads(blobs: readonly PlannedBlob[], isCached: (blob: PlannedBlob) => boolean): ReadPlan {
  const cached: PlannedBlob[] = [];
  const byPack = new Map<string, PlannedBlob[]>();
  for (const blob of blobs) {
    if (isCached(blob)) {
      cached.push(blob);
      continue;
    }
    const key = `${blob.handle.area}/${blob.handle.name}`;
    const list = byPack.get(key);
    if (list === undefined) byPack.set(key, [blob]);
    else list.push(blob);
  }
  const spans: Span[] = [];
  for (const [key, list] of byPack) {
    list.sort((a, b) => a.at - b.at);
    let span: Span | undefined;
    for (const blob of list) {
      const end = blob.at + blob.length;
      if (span === undefined || blob.at - (span.offset + span.length) > MAX_GAP || end - span.offset > MAX_SPAN) {
        span = { key, offset: blob.at, length: 0, blobs: [], rawBytes: 0 };
        spans.push(span);
      }
      span.blobs.push(blob);
      span.length = Math.max(span.length, end - span.offset);
      span.rawBytes += blob.rawLength * blob.targets.length;
    }
  }
  // Largest first: the long reads start early and the short ones fill the tail.
  spans.sort((a, b) => b.length - a.length);
  return { spans, cached, chunks: blobs.reduce((n, b) => n + b.targets.length, 0) };
}
