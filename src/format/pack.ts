/**
 * Packs: one store object holding many blobs back to back, with a trailer
 * that indexes them. An object store then sees one large request per ~32 MiB
 * instead of one per chunk, and a directory store one file.
 *
 *   0   16  header: magic `CPPACK\r\n`, format version (u32 LE), XXH32 of bytes 0..11 (u32 LE)
 *   16  …   blobs (blob.ts: each self-describing, with its own checksummed header)
 *   E   32n trailer entries, one per blob: content key (16), raw length (u32),
 *           blob length (u32), blob offset in the pack (u64), all LE
 *   end 32  footer: entry count (u32), format version (u32), E (u64),
 *           XXH64(entries ‖ footer bytes 0..15) big-endian (8), magic `CPPKEND\n`
 *
 * The trailer lets `verify`, `copy` and a rebuild of lost metadata read a
 * pack on its own; the blobs' own headers let a damaged trailer be worked
 * around. A reader of a checkpoint never needs the trailer: handles hold the
 * offset and length of each blob. Layout: docs/FORMAT.md.
 */
import { ConflictError, CorruptDataError } from '../errors.js';
import type { Store } from '../store/store.js';
import { BLOB_HEADER_SIZE, MAX_CHUNK_SIZE } from './blob.js';
import { bytesToKey, keyToBytes, type Hasher } from './content-key.js';
import { FORMAT_VERSION, formatUnsupported } from './envelope.js';

export const PACK_MAGIC = Buffer.from('CPPACK\r\n', 'latin1');
export const PACK_END_MAGIC = Buffer.from('CPPKEND\n', 'latin1');
export const PACK_HEADER_SIZE = 16;
export const PACK_ENTRY_SIZE = 32;
export const PACK_FOOTER_SIZE = 32;
/** Default pack size: at most this many bytes of chunks per pack (FLIP-306 and kopia use 32 MiB-ish objects too). */
export const DEFAULT_PACK_SIZE = 32 * 1024 * 1024;
export const MIN_PACK_SIZE = 1024 * 1024;
export const MAX_PACK_SIZE = 1024 * 1024 * 1024;

export interface PackEntry {
  key: string;
  rawLength: number;
  /** Where the blob starts in the pack, and its stored length (header + payload). */
  offset: number;
  length: number;
}

export function encodePackHeader(hasher: Hasher): Buffer {
  const out = Buffer.alloc(PACK_HEADER_SIZE);
  PACK_MAGIC.copy(out, 0);
  out.writeUInt32LE(FORMAT_VERSION, 8);
  out.writeUInt32LE(hasher.checksum32(out.subarray(0, 12)), 12);
  return out;
}

export function checkPackHeader(header: Uint8Array, hasher: Hasher, where: string): void {
  const buf = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  if (buf.byteLength < PACK_HEADER_SIZE || !buf.subarray(0, 8).equals(PACK_MAGIC)) {
    throw new CorruptDataError('PACK_BAD_MAGIC', `pack ${where} does not start with the chunkpoint pack magic; it is not a chunkpoint pack or it is damaged`);
  }
  if (buf.readUInt32LE(12) !== hasher.checksum32(buf.subarray(0, 12))) throw new CorruptDataError('PACK_HEADER_CHECKSUM', `pack ${where} has a damaged header`);
  const version = buf.readUInt32LE(8);
  if (version !== FORMAT_VERSION) throw formatUnsupported(`pack ${where}`, version);
}

/** Builds the trailer of a pack as blobs are appended to it. */
export class PackIndex {
  readonly entries: PackEntry[] = [];
  /** Bytes of the pack so far (header and blobs). */
  size = PACK_HEADER_SIZE;

  /** Records a blob appended at the current end; returns its offset. */
  add(key: string, rawLength: number, length: number): number {
    const offset = this.size;
    this.entries.push({ key, rawLength, offset, length });
    this.size += length;
    return offset;
  }

  /** Trailer entries and footer, to append after the last blob. */
  trailer(hasher: Hasher): Buffer {
    const entriesOffset = this.size;
    const out = Buffer.alloc(this.entries.length * PACK_ENTRY_SIZE + PACK_FOOTER_SIZE);
    for (const [i, e] of this.entries.entries()) {
      const at = i * PACK_ENTRY_SIZE;
      keyToBytes(e.key).copy(out, at);
      out.writeUInt32LE(e.rawLength, at + 16);
      out.writeUInt32LE(e.length, at + 20);
      writeU64(out, e.offset, at + 24);
    }
    const footer = this.entries.length * PACK_ENTRY_SIZE;
    out.writeUInt32LE(this.entries.length, footer);
    out.writeUInt32LE(FORMAT_VERSION, footer + 4);
    writeU64(out, entriesOffset, footer + 8);
    Buffer.from(hasher.checksum64(out.subarray(0, footer + 16)), 'hex').copy(out, footer + 16);
    PACK_END_MAGIC.copy(out, footer + 24);
    return out;
  }
}

/** What a pack's footer says: how many entries, and where they start. */
export function decodePackFooter(footer: Uint8Array, packSize: number, where: string): { count: number; entriesOffset: number } {
  const buf = Buffer.from(footer.buffer, footer.byteOffset, footer.byteLength);
  if (buf.byteLength !== PACK_FOOTER_SIZE || !buf.subarray(24, 32).equals(PACK_END_MAGIC)) {
    throw new CorruptDataError('PACK_TRAILER', `pack ${where} does not end with a chunkpoint pack trailer; it is truncated or damaged`);
  }
  const version = buf.readUInt32LE(4);
  if (version !== FORMAT_VERSION) throw formatUnsupported(`pack ${where}`, version);
  const count = buf.readUInt32LE(0);
  const entriesOffset = readU64(buf, 8);
  if (entriesOffset < PACK_HEADER_SIZE || entriesOffset + count * PACK_ENTRY_SIZE + PACK_FOOTER_SIZE !== packSize) {
    throw new CorruptDataError('PACK_TRAILER', `pack ${where} has a trailer that does not fit its ${packSize} bytes (${count} entries at ${entriesOffset}); it is truncated or damaged`);
  }
  return { count, entriesOffset };
}

/**
 * A checked pack trailer, read in place: its checksum, and that its entries
 * are contiguous, in order and in range, are verified once; then an entry is
 * found by offset (binary search) and compared without building an object
 * per blob (a commit of a thousand tasks checks millions of handles).
 */
export class PackTrailer {
  private constructor(
    private readonly buf: Buffer,
    readonly count: number,
  ) {}

  /** Checks `trailer` (everything from the entries to the end) against the pack's size. */
  static check(trailer: Uint8Array, packSize: number, hasher: Hasher, where: string): PackTrailer {
    const buf = Buffer.from(trailer.buffer, trailer.byteOffset, trailer.byteLength);
    const { count, entriesOffset } = decodePackFooter(buf.subarray(buf.byteLength - PACK_FOOTER_SIZE), packSize, where);
    if (buf.byteLength !== count * PACK_ENTRY_SIZE + PACK_FOOTER_SIZE) throw new CorruptDataError('PACK_TRAILER', `pack ${where}: trailer of ${buf.byteLength} bytes for ${count} entries`);
    const footer = count * PACK_ENTRY_SIZE;
    if (buf.subarray(footer + 16, footer + 24).toString('hex') !== hasher.checksum64(buf.subarray(0, footer + 16))) {
      throw new CorruptDataError('PACK_TRAILER', `pack ${where} has a damaged trailer (checksum mismatch)`);
    }
    let expected = PACK_HEADER_SIZE;
    for (let i = 0; i < count; i++) {
      const at = i * PACK_ENTRY_SIZE;
      const rawLength = buf.readUInt32LE(at + 16);
      const length = buf.readUInt32LE(at + 20);
      const offset = readU64(buf, at + 24);
      // Blobs are contiguous and in order: anything else was not written by a pack writer.
      if (offset !== expected || length < BLOB_HEADER_SIZE || rawLength < 1 || rawLength > MAX_CHUNK_SIZE) {
        throw new CorruptDataError('PACK_TRAILER', `pack ${where}: trailer entry ${i} is inconsistent (offset ${offset}, length ${length}, raw ${rawLength})`);
      }
      expected += length;
    }
    if (expected !== entriesOffset) throw new CorruptDataError('PACK_TRAILER', `pack ${where}: its blobs end at ${expected} but its trailer starts at ${entriesOffset}`);
    return new PackTrailer(buf, count);
  }

  /** The index of the entry whose blob starts at `offset`, or -1; `hint` is tried first (chunks of a file sit in a pack in order). */
  find(offset: number, hint = -1): number {
    if (hint >= 0 && hint < this.count && readU64(this.buf, hint * PACK_ENTRY_SIZE + 24) === offset) return hint;
    let lo = 0;
    let hi = this.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = readU64(this.buf, mid * PACK_ENTRY_SIZE + 24);
      if (at === offset) return mid;
      if (at < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Whether entry `i` is the blob of content key `key` (16 bytes from `keyAt`), `rawLength` raw bytes, `length` stored. */
  matches(i: number, key: Uint8Array, rawLength: number, length: number, keyAt = 0): boolean {
    const at = i * PACK_ENTRY_SIZE;
    return this.buf.readUInt32LE(at + 16) === rawLength && this.buf.readUInt32LE(at + 20) === length && this.buf.compare(key, keyAt, keyAt + 16, at, at + 16) === 0;
  }

  entry(i: number): PackEntry {
    const at = i * PACK_ENTRY_SIZE;
    return { key: bytesToKey(this.buf.subarray(at, at + 16)), rawLength: this.buf.readUInt32LE(at + 16), length: this.buf.readUInt32LE(at + 20), offset: readU64(this.buf, at + 24) };
  }

  entries(): PackEntry[] {
    return Array.from({ length: this.count }, (_, i) => this.entry(i));
  }
}

/** Checks and decodes a pack's trailer: `trailer` is everything from the entries to the end. */
export function decodePackTrailer(trailer: Uint8Array, packSize: number, hasher: Hasher, where: string): PackEntry[] {
  return PackTrailer.check(trailer, packSize, hasher, where).entries();
}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(value / 2 ** 32), at + 4);
}

function readU64(buf: Buffer, at: number): number {
  const high = buf.readUInt32LE(at + 4);
  // Above 2^53 a pack offset cannot be a real one (and would lose precision).
  if (high >= 2 ** 21) return Number.MAX_SAFE_INTEGER;
  return high * 2 ** 32 + buf.readUInt32LE(at);
}

/** One read of a pack's tail usually holds its whole trailer (500 entries: a 32 MiB pack of 64 KiB chunks). */
const PACK_TAIL_READ = 16 * 1024;

/**
 * A pack's own index of its blobs, read from its trailer (one ranged read,
 * two for a pack of more than ~2,000 blobs), checked against `size`, the
 * size the reader expects. Returns the trailer's bytes too, for a copier.
 * The only I/O in the format: a read through the store it is given.
 */
export async function readPackIndex(store: Pick<Store, 'get' | 'location'>, key: string, size: number, hasher: Hasher): Promise<{ index: PackTrailer; entriesOffset: number; trailer: Buffer }> {
  const where = `${store.location}/${key}`;
  if (size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE) throw new CorruptDataError('PACK_TRAILER', `pack ${where} is ${size} bytes, too short for a pack`);
  let tail = await store.get(key, { offset: Math.max(0, size - PACK_TAIL_READ), length: Math.min(size, PACK_TAIL_READ) });
  if (tail.byteLength !== Math.min(size, PACK_TAIL_READ)) {
    throw new ConflictError('PACK_CHANGED', `pack ${where} is not the ${size} bytes it should be (it changed or was truncated while being read)`, { details: { where } });
  }
  const { entriesOffset } = decodePackFooter(tail.subarray(tail.byteLength - PACK_FOOTER_SIZE), size, where);
  const trailerLength = size - entriesOffset;
  if (trailerLength > tail.byteLength) tail = await store.get(key, { offset: entriesOffset, length: trailerLength });
  const trailer = tail.subarray(tail.byteLength - trailerLength);
  return { index: PackTrailer.check(trailer, size, hasher, where), entriesOffset, trailer };
}
