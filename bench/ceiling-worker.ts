/**
 * Worker thread of the compute ceiling: the snapshot writer's CPU work on one
 * chunk (content key, LZ4 with the same probe, blob header). A request on
 * bytes already in shared memory has no read, write or fsync in its figure.
 * A request naming a file first reads the chunk from it as the writer does
 * on a warm page cache (one synchronous positioned read into a buffer of its
 * own); with `spill`, it then writes the blob into the page cache (no
 * direct I/O, no fsync) of a file of this thread's, over the same 64 MiB
 * again and again: the cheapest write there is, so the figure stays an
 * upper bound for any snapshot that reads its state and writes its packs.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { readAtSync } from '../src/file-range.js';
import { loadHasher } from '../src/format/content-key.js';
import { Scratch } from '../workers/scratch.js';
import { encodeBlob } from '../workers/write-pack.js';

const hasher = await loadHasher();
// Requests here are synchronous: one set of buffers per thread is enough.
const scratch = new Scratch();
const SPILL_SPAN = 64 * 1024 * 1024;
/** This thread's spill file (closed when the thread ends) and where its next blob goes. */
let spill: { fd: number; at: number } | undefined;

export type CeilingRequest = { buffer: SharedArrayBuffer; offset: number; length: number } | { file: string; offset: number; length: number; spill?: string };

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
  const size = parts.reduce((sum, p) => sum + p.byteLength, 0);
  if (!('buffer' in request) && request.spill !== undefined) {
    spill ??= { fd: openSync(join(request.spill, `thread-${threadId}`), 'w'), at: 0 };
    if (spill.at + size > SPILL_SPAN) spill.at = 0;
    for (const p of parts) {
      let done = 0;
      while (done < p.byteLength) done += writeSync(spill.fd, p, done, p.byteLength - done, spill.at + done);
      spill.at += p.byteLength;
    }
  }
  return size;
}
