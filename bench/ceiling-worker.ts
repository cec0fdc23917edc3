/**
 * Worker thread of the compute ceiling: the snapshot writer's CPU work on one
 * chunk (content key, LZ4 with the same probe, blob header) on bytes already
 * in shared memory, so no read, write or fsync is in the figure.
 */
import { loadHasher } from '../src/format/content-key.js';
import { Scratch } from '../workers/scratch.js';
import { encodeBlob } from '../workers/write-pack.js';

const hasher = await loadHasher();
// Requests here are synchronous: one set of buffers per thread is enough.
const scratch = new Scratch();

export interface CeilingRequest {
  buffer: SharedArrayBuffer;
  offset: number;
  length: number;
}

/** Returns the stored size of the chunk's blob. */
export default function encodeChunk(request: CeilingRequest): number {
  const raw = Buffer.from(request.buffer, request.offset, request.length);
  const parts = encodeBlob(hasher.contentKey(raw), raw, scratch);
  return parts.reduce((sum, p) => sum + p.byteLength, 0);
}
