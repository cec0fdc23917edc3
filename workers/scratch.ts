/**
 * Scratch memory of the requests a worker runs. A worker runs up to
 * `requestsPerThread` requests at once (one computes while another waits for its
 * read or write), so each running request holds its own set of named buffers,
 * taken from a free list and given back when it ends: memory stays
 * threads x requests per thread x a few chunks, whatever the state size.
 */
import { BLOB_HEADER_SIZE } from '../src/format/blob.js';
import { DIRECT_ALIGN, alignedMemory } from '../src/store/direct-io.js';

const BLOB_LEAD = DIRECT_ALIGN - BLOB_HEADER_SIZE;

/** One request's buffers: valid until the request that was handed this set ends. */
export class Scratch {
  private readonly buffers = new Map<string, Buffer>();

  /** A view of exactly `size` bytes of the buffer called `name`, grown when too small; its contents are garbage. */
  buffer(name: string, size: number): Buffer {
    return this.take(name, size, () => Buffer.allocUnsafeSlow(size));
  }

  /**
   * The same, in shared memory: what a store read fills. A relayed store
   * (relayed-store.ts) has the main thread read bodies straight into it, so
   * they are not copied again here.
   */
  shared(name: string, size: number): Buffer {
    return this.take(`shared:${name}`, size, () => Buffer.from(new SharedArrayBuffer(size)));
  }

  /**
   * The same in page-aligned memory (direct-io.ts), `shared` or not: a
   * restore decodes or reads chunks into it at a DIRECT_ALIGN boundary, and
   * the target file's direct write takes them from there, uncopied.
   */
  aligned(name: string, size: number, shared = false): Buffer {
    return this.take(`aligned:${shared ? 'shared:' : ''}${name}`, size, () => alignedMemory(size, shared));
  }

  /**
   * Room for a blob of `length` bytes in aligned memory, placed so that its
   * payload (after the header) starts on a DIRECT_ALIGN boundary: a chunk
   * stored raw is then written to its target file from here as it is.
   */
  blob(name: string, length: number, shared = false): Buffer {
    return this.aligned(name, BLOB_LEAD + length, shared).subarray(BLOB_LEAD, BLOB_LEAD + length);
  }

  private take(name: string, size: number, allocate: () => Buffer): Buffer {
    let buf = this.buffers.get(name);
    if (buf === undefined || buf.byteLength < size) {
      buf = allocate();
      this.buffers.set(name, buf);
    }
    return buf.subarray(0, size);
  }
}

const free: Scratch[] = [];

/** Runs `work` with a scratch set no other running request holds. */
export async function withScratch<T>(work: (scratch: Scratch) => Promise<T>): Promise<T> {
  const scratch = free.pop() ?? new Scratch();
  try {
    return await work(scratch);
  } finally {
    free.push(scratch);
  }
}
