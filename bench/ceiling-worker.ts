/**
 * Worker thread of the compute ceiling: the snapshot writer's CPU work on one
 * chunk (content key, LZ4 with the same probe, blob header). A request on
 * bytes already in shared memory has no read, write or fsync in its figure;
 * a request naming a file first reads the chunk from it as the writer does
 * on a warm page cache (one synchronous positioned read into a buffer of its
 * own), so that figure is the CPU any snapshot that reads its input pays.
 */
import { closeSync, openSync } from 'node:fs';
import { readAtSync } from '../src/file-range.js';
import { loadHasher } from '../src/format/content-key.js';
import { Scratch } from '../workers/scratch.js';
import { encodeBlob } from '../workers/write-pack.js';

const hasher = await loadHasher();
// Requests here are synchronous: one set of buffers per thread is enough.
const scratch = new Scratch();

export type CeilingRequest = { buffer: SharedArrayBuffer; offset: number; length: number } | { file: string; offset: number; length: number };

/** Returns the stored size of the chunk's blob. */
export default function encodeChunk(request: CeilingRequest): number {
  let raw: Buffer;
  if ('buffer' in request) {
    raw = Buffer.from(request.buffer, request.offset, request.length);
  } else {
    raw = scratch.buffer('raw', request.length);
    // The writer keeps its file open for a run of chunks; an open per chunk costs a few microseconds, not a figure.
    const fd = openSync(request.file, 'r');
    try {
      if (readAtSync(fd, raw, request.offset) !== request.length) throw new Error(`${request.file} is shorter than when the ceiling listed it`);
    } finally {
      closeSync(fd);
    }
  }
  const parts = encodeBlob(hasher.contentKey(raw), raw, scratch);
  return parts.reduce((sum, p) => sum + p.byteLength, 0);
}
