/**
 * Writes that bypass the page cache (O_DIRECT) where the filesystem allows it.
 *
 * Why: a snapshot writes each new blob once and nobody reads it back soon; a
 * restore writes state that the database will read through its own block
 * cache. Through the page cache, those bytes evict the live database's hot
 * pages, and on virtual machines that hand free memory back to the host every
 * fresh page-cache page costs a fault into the hypervisor: on the benchmark
 * machine buffered writes of the bench's blobs ran at 35-58 MB/s where direct
 * writes of the same bytes ran at 100-150 MB/s, fsync included
 * (docs/PERFORMANCE.md).
 *
 * O_DIRECT wants the memory address, the file offset and the length aligned
 * to the device's logical block. The bytes are copied into page-aligned
 * memory (WebAssembly memories are allocated page-aligned by V8), the aligned
 * prefix goes direct, and the tail of under one block goes through the page
 * cache on a second descriptor. Durability is unchanged: callers still
 * fdatasync/fsync, which also covers the tail and the file size. Where the
 * filesystem refuses O_DIRECT (tmpfs before Linux 6.6, many FUSE and network
 * filesystems) the write is simply buffered, as it is with CHUNKPOINT_DIRECT_IO=0.
 */
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { writeAt } from '../file-range.js';
import { errnoOf } from '../errors.js';

/** Covers 512-byte and 4 KiB logical blocks, and the page size. */
export const DIRECT_ALIGN = 4096;
const WASM_PAGE = 65536;
/** Below this, the copy and the extra descriptor cost more than the page cache does. */
const DIRECT_MIN = 64 * 1024;
/** Aligned buffers kept for reuse per thread; more concurrent writers allocate and drop theirs. */
const KEEP = 4;

const O_DIRECT: number | undefined = (constants as { O_DIRECT?: number }).O_DIRECT;
/** Set once a filesystem accepted O_DIRECT at open but refused an aligned write: this thread stops trying. */
let directRefused = false;

const free: Buffer[] = [];
/** Writes done per path taken on this thread (diagnostics and tests). */
const counts = { direct: 0, buffered: 0, uncopied: 0 };

/** `uncopied`: direct writes taken from the caller's aligned memory as it was. */
export function directIoCounts(): { direct: number; buffered: number; uncopied: number } {
  return { ...counts };
}
/** The project compiles without the DOM library, which is where TypeScript declares WebAssembly. */
const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => { buffer: ArrayBufferLike } } }).WebAssembly;

/** Memories known to start on a page boundary (WebAssembly memories: V8 maps them page-aligned). */
const pageAligned = new WeakSet<ArrayBufferLike>();

/**
 * New page-aligned memory of at least `size` bytes, in whole 64 KiB pages;
 * `shared` makes it a SharedArrayBuffer (what a store relay can fill in place).
 * A write of a view of it that starts on a DIRECT_ALIGN boundary goes to the
 * disk from this memory, with no copy into a buffer of the writer's.
 */
export function alignedMemory(size: number, shared = false): Buffer {
  const pages = Math.max(1, Math.ceil(size / WASM_PAGE));
  const memory = new wasm.Memory(shared ? { initial: pages, maximum: pages, shared: true } : { initial: pages });
  pageAligned.add(memory.buffer);
  return Buffer.from(memory.buffer);
}

/** Whether `data` starts on a DIRECT_ALIGN boundary of page-aligned memory, so O_DIRECT can take it as it is. */
function startsAligned(data: Uint8Array): boolean {
  return data.byteOffset % DIRECT_ALIGN === 0 && pageAligned.has(data.buffer);
}

/**
 * Page-aligned memory of at least `size` bytes: the smallest kept buffer that
 * fits, else a new one of the next power of two. A restore that also fills a
 * cache writes chunks (~1 MiB) and blobs (about half that) from the same
 * requests; rounded, one buffer serves both, where exact sizes made every
 * chunk write allocate a buffer and drop it (garbage V8 collects late: tens
 * of MB of RSS per worker).
 */
function acquire(size: number): Buffer {
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    const length = (free[i] as Buffer).byteLength;
    if (length >= size && (best < 0 || length < (free[best] as Buffer).byteLength)) best = i;
  }
  if (best >= 0) return free.splice(best, 1)[0] as Buffer;
  return alignedMemory(Math.max(WASM_PAGE, 2 ** Math.ceil(Math.log2(size))));
}

/** Keeps up to KEEP buffers, the largest ones (they serve every request). */
function release(buf: Buffer): void {
  if (free.length < KEEP) {
    free.push(buf);
    return;
  }
  let smallest = 0;
  for (let i = 1; i < free.length; i++) if ((free[i] as Buffer).byteLength < (free[smallest] as Buffer).byteLength) smallest = i;
  if ((free[smallest] as Buffer).byteLength < buf.byteLength) free[smallest] = buf;
}

/**
 * Whether writes of this size are worth trying direct at all.
 * CHUNKPOINT_DIRECT_IO=0 turns direct I/O off (a filesystem that accepts
 * O_DIRECT but handles it badly); it is read per write so tests can flip it.
 */
function wantsDirect(length: number): boolean {
  return O_DIRECT !== undefined && !directRefused && length >= DIRECT_MIN && process.env['CHUNKPOINT_DIRECT_IO'] !== '0';
}

/**
 * Creates `path` holding the concatenation of `parts`; the caller syncs it when it must be durable.
 * `path` must be a fresh temp name of the caller's (it must not exist, and a failed attempt may remove it).
 */
export async function createWithContent(path: string, parts: readonly Uint8Array[], mode: number, extraFlags = 0): Promise<void> {
  const total = parts.reduce((sum, p) => sum + p.byteLength, 0);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | extraFlags;
  if (wantsDirect(total)) {
    const direct = await openDirect(path, flags, mode);
    if (direct === undefined) {
      // Some kernels create the file before refusing O_DIRECT; `path` is the caller's fresh temp name, so it is ours to remove.
      await unlink(path).catch(() => undefined);
    } else {
      const buf = acquire(total);
      try {
        let at = 0;
        for (const p of parts) {
          buf.set(p, at);
          at += p.byteLength;
        }
        if (await writeDirect(direct, path, buf.subarray(0, total), 0)) {
          counts.direct++;
          return;
        }
      } finally {
        release(buf);
      }
      // Refused mid-way: the file exists and may hold a prefix; rewrite it whole, buffered.
      const fh = await open(path, constants.O_WRONLY | constants.O_TRUNC | extraFlags);
      counts.buffered++;
      try {
        await writeParts(fh, parts);
      } finally {
        await fh.close();
      }
      return;
    }
  }
  const fh = await open(path, flags, mode);
  counts.buffered++;
  try {
    await writeParts(fh, parts);
  } finally {
    await fh.close();
  }
}

/**
 * Writes at positions of one existing file, keeping its descriptors open
 * between writes (a restore writes a file chunk by chunk: an open and a
 * close per chunk cost more than the write on some machines). The aligned
 * part of each write goes direct where the filesystem allows, the rest
 * through the page cache.
 */
export class FileWriter {
  private direct: FileHandle | undefined;
  private buffered: FileHandle | undefined;
  private directTried = false;

  constructor(
    private readonly path: string,
    private readonly extraFlags = 0,
  ) {}

  async writeAt(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    if (wantsDirect(data.byteLength) && position % DIRECT_ALIGN === 0) {
      if (!this.directTried) {
        this.directTried = true;
        this.direct = await openDirect(this.path, constants.O_WRONLY | this.extraFlags, 0);
      }
      const direct = this.direct;
      const aligned = data.byteLength - (data.byteLength % DIRECT_ALIGN);
      if (direct !== undefined && aligned > 0) {
        // Already in aligned memory (a restore's chunk decoded or read into it): written from there.
        const own = startsAligned(data) ? undefined : acquire(aligned);
        try {
          own?.set(data.subarray(0, aligned), 0);
          await writeAt(direct, (own ?? data).subarray(0, aligned), position);
          done = aligned;
          counts.direct++;
          if (own === undefined) counts.uncopied++;
        } catch (error) {
          if (errnoOf(error) !== 'EINVAL') throw error;
          // Accepted at open, refused at write: this file (and thread) goes buffered from now on.
          directRefused = true;
          this.direct = undefined;
          await direct.close();
        } finally {
          if (own !== undefined) release(own);
        }
      }
    }
    if (done < data.byteLength) {
      this.buffered ??= await open(this.path, constants.O_WRONLY | this.extraFlags);
      await writeAt(this.buffered, data.subarray(done), position + done);
      if (done === 0) counts.buffered++;
    }
  }

  async close(): Promise<void> {
    const handles = [this.direct, this.buffered];
    this.direct = undefined;
    this.buffered = undefined;
    for (const fh of handles) await fh?.close();
  }
}

/** Writes `data` at `position` of an existing file; direct for the aligned part when possible. */
export async function writeAtPosition(path: string, data: Uint8Array, position: number, extraFlags = 0): Promise<void> {
  if (wantsDirect(data.byteLength) && position % DIRECT_ALIGN === 0) {
    const direct = await openDirect(path, constants.O_WRONLY | extraFlags, 0);
    if (direct !== undefined) {
      const buf = acquire(data.byteLength);
      try {
        buf.set(data, 0);
        if (await writeDirect(direct, path, buf.subarray(0, data.byteLength), position)) {
          counts.direct++;
          return;
        }
      } finally {
        release(buf);
      }
    }
  }
  const fh = await open(path, constants.O_WRONLY | extraFlags);
  counts.buffered++;
  try {
    await writeAt(fh, data, position);
  } finally {
    await fh.close();
  }
}

/** An O_DIRECT descriptor, or undefined when this filesystem does not do direct I/O. */
async function openDirect(path: string, flags: number, mode: number): Promise<FileHandle | undefined> {
  try {
    return await open(path, flags | (O_DIRECT ?? 0), mode);
  } catch (error) {
    if (errnoOf(error) === 'EINVAL') return undefined;
    throw error;
  }
}

/**
 * Writes the aligned prefix of `data` (page-aligned memory) direct and the
 * tail buffered; closes `direct`. False when the kernel refused the direct
 * write (the caller rewrites buffered).
 */
async function writeDirect(direct: FileHandle, path: string, data: Buffer, position: number): Promise<boolean> {
  const aligned = data.byteLength - (data.byteLength % DIRECT_ALIGN);
  try {
    await writeAt(direct, data.subarray(0, aligned), position);
  } catch (error) {
    if (errnoOf(error) !== 'EINVAL') throw error;
    directRefused = true;
    return false;
  } finally {
    await direct.close();
  }
  if (aligned < data.byteLength) {
    const fh = await open(path, constants.O_WRONLY | constants.O_NOFOLLOW);
    try {
      await writeAt(fh, data.subarray(aligned), position + aligned);
    } finally {
      await fh.close();
    }
  }
  return true;
}

async function writeParts(fh: FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  let position = 0;
  for (const p of parts) {
    await writeAt(fh, p, position);
    position += p.byteLength;
  }
}

/** Bytes an appender gathers before one write: large enough that direct writes stream, small enough per concurrent writer. */
const APPEND_BLOCK = 1024 * 1024;

/**
 * Appends to a new file through page-aligned memory: full 1 MiB blocks go
 * direct (where the filesystem allows), the final tail buffered. A pack is
 * written this way as it is built, so memory is two blocks per writer
 * whatever the pack size.
 *
 * Write-behind: a full block is handed to the disk and the appender goes on
 * filling the other one; `write` waits only when both are taken. A snapshot's
 * worker would otherwise sit out every block's device latency (1-3 ms per
 * block with four writers on one disk) between two chunks it could be
 * compressing. A failed block write surfaces from the next `write` or from
 * `finish`; the caller syncs the file when it must be durable.
 */
export class FileAppender {
  /** Bytes handed to writes so far (the block being written included). */
  private position = 0;
  private filled = 0;
  private closed = false;
  /** The write of the previous full block, while it runs. */
  private inFlight: Promise<void> | undefined;
  /** The block `inFlight` writes from, free again once it settles. */
  private spare: Buffer | undefined;

  private constructor(
    private readonly path: string,
    private fh: FileHandle,
    private direct: boolean,
    private block: Buffer,
  ) {}

  /** Creates `path` (a fresh temp name: it must not exist). */
  static async create(path: string, mode: number): Promise<FileAppender> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    if (wantsDirect(APPEND_BLOCK)) {
      const direct = await openDirect(path, flags, mode);
      if (direct !== undefined) return new FileAppender(path, direct, true, acquire(APPEND_BLOCK));
      await unlink(path).catch(() => undefined);
    }
    return new FileAppender(path, await open(path, flags, mode), false, acquire(APPEND_BLOCK));
  }

  /** Bytes appended so far. */
  get size(): number {
    return this.position + this.filled;
  }

  /** Copies `parts` in; when it returns, the caller may reuse their memory. */
  async write(parts: readonly Uint8Array[]): Promise<void> {
    for (const part of parts) {
      let from = 0;
      while (from < part.byteLength) {
        const n = Math.min(part.byteLength - from, APPEND_BLOCK - this.filled);
        this.block.set(part.subarray(from, from + n), this.filled);
        this.filled += n;
        from += n;
        if (this.filled === APPEND_BLOCK) await this.flushBlock();
      }
    }
  }

  /** Writes what is left and closes the file; `sync`: its data is durable first. */
  async finish(sync = false): Promise<void> {
    if (this.closed) return;
    try {
      await this.settle();
      const aligned = this.direct ? this.filled - (this.filled % DIRECT_ALIGN) : this.filled;
      if (aligned > 0) await this.writeOut(this.block.subarray(0, aligned), this.position);
      this.position += aligned;
      const tail = this.block.subarray(aligned, this.filled);
      this.filled = 0;
      if (tail.byteLength > 0) {
        // The tail is not a whole block: direct I/O cannot write it, the page cache can.
        const fh = await open(this.path, constants.O_WRONLY | constants.O_NOFOLLOW);
        try {
          await writeAt(fh, tail, this.position);
        } finally {
          await fh.close();
        }
        this.position += tail.byteLength;
      }
      // Per inode, not per descriptor: this covers the tail written through the other one.
      if (sync) await this.fh.datasync();
      counts[this.direct ? 'direct' : 'buffered']++;
    } finally {
      await this.close();
    }
  }

  async abort(): Promise<void> {
    // The descriptor is closed only once no write uses it: a closed number can be reused at once.
    await this.settle().catch(() => undefined);
    await this.close();
    await unlink(this.path).catch(() => undefined);
  }

  /** Starts the full block's write and switches to the other block, once that one is free. */
  private async flushBlock(): Promise<void> {
    await this.settle();
    const full = this.block;
    this.block = this.spare ?? acquire(APPEND_BLOCK);
    this.spare = full;
    const position = this.position;
    this.position += APPEND_BLOCK;
    this.filled = 0;
    const write = this.writeOut(full.subarray(0, APPEND_BLOCK), position);
    // Awaited by the next flush, finish or abort; until then its failure must not count as unhandled.
    write.catch(() => undefined);
    this.inFlight = write;
  }

  /** Waits for the block write in flight; its failure is thrown here. */
  private async settle(): Promise<void> {
    const write = this.inFlight;
    if (write === undefined) return;
    this.inFlight = undefined;
    await write;
  }

  private async writeOut(data: Buffer, position: number): Promise<void> {
    try {
      await writeAt(this.fh, data, position);
    } catch (error) {
      if (!this.direct || errnoOf(error) !== 'EINVAL') throw error;
      // Accepted at open, refused at write: go on buffered, from the same position.
      directRefused = true;
      this.direct = false;
      await this.fh.close();
      this.fh = await open(this.path, constants.O_WRONLY | constants.O_NOFOLLOW);
      await writeAt(this.fh, data, position);
    }
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    release(this.block);
    if (this.spare !== undefined) release(this.spare);
    this.spare = undefined;
    await this.fh.close();
  }
}
