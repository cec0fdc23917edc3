/**
 * The stored form of one chunk: a fixed 40-byte self-describing header, then
 * the payload (an LZ4 block, or the raw bytes when they do not compress).
 * The header repeats the content key and both lengths so that a blob found on
 * its own (a scrub, a rebuilt index, a copied bucket) can be checked without
 * any metadata. Blobs live in packs (pack.ts). Layout: docs/FORMAT.md.
 */
import { lz4 } from '../native.js';
import { CorruptDataError, type CodeOfKind } from '../errors.js';
import { bytesToKey, keyToBytes, type Hasher } from './content-key.js';

export const BLOB_MAGIC = 0x4c425043; // "CPBL" read as little-endian u32
export const BLOB_VERSION = 1;
export const BLOB_HEADER_SIZE = 40;
/** Chunks are bounded so that no field read from storage can ask for an absurd allocation. */
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;

export const Codec = { Raw: 0, Lz4: 1 } as const;
export type Codec = (typeof Codec)[keyof typeof Codec];

export type CodecName = 'raw' | 'lz4';

export function codecName(codec: Codec): CodecName {
  return codec === Codec.Lz4 ? 'lz4' : 'raw';
}

export interface BlobHeader {
  codec: Codec;
  rawLength: number;
  payloadLength: number;
  key: string;
}

export function encodeBlobHeader(header: BlobHeader, hasher: Hasher, into: Buffer = Buffer.allocUnsafe(BLOB_HEADER_SIZE)): Buffer {
  into.writeUInt32LE(BLOB_MAGIC, 0);
  into.writeUInt8(BLOB_VERSION, 4);
  into.writeUInt8(header.codec, 5);
  into.writeUInt16LE(0, 6);
  into.writeUInt32LE(header.rawLength, 8);
  into.writeUInt32LE(header.payloadLength, 12);
  keyToBytes(header.key).copy(into, 16);
  into.writeUInt32LE(0, 32);
  into.writeUInt32LE(hasher.checksum32(into.subarray(0, 36)), 36);
  return into;
}

/**
 * Parses and checks a header. `where` names the blob in errors, whole (e.g.
 * "blob at 40 of pack shared/x.pack"): messages are `<where> <what is wrong>`,
 * so a caller never adds "blob" or the location again. Every field is
 * range-checked before anything is allocated from it.
 */
export function decodeBlobHeader(blob: Uint8Array, hasher: Hasher, where: string): BlobHeader {
  return checkBlobHeader(blob, hasher, (code, why) => new CorruptDataError(code, `${where} ${why}`));
}

/** The header checks, each failure told as a code and what is wrong (without naming the blob), for `fail` to phrase. */
function checkBlobHeader(blob: Uint8Array, hasher: Hasher, fail: (code: CodeOfKind<'corrupt_data'>, why: string) => CorruptDataError): BlobHeader {
  if (blob.byteLength < BLOB_HEADER_SIZE) throw fail('BLOB_TRUNCATED', `is ${blob.byteLength} bytes, shorter than its ${BLOB_HEADER_SIZE}-byte header`);
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (buf.readUInt32LE(0) !== BLOB_MAGIC) throw fail('BLOB_BAD_MAGIC', 'does not start with the chunkpoint blob magic (not a chunkpoint blob, or damaged)');
  const stored = buf.readUInt32LE(36);
  const actual = hasher.checksum32(buf.subarray(0, 36));
  if (stored !== actual) throw fail('BLOB_HEADER_CHECKSUM', `has a damaged header (checksum ${hex32(stored)} != ${hex32(actual)})`);
  const version = buf.readUInt8(4);
  if (version !== BLOB_VERSION) throw fail('BLOB_VERSION', `has format version ${version}; this chunkpoint reads version ${BLOB_VERSION}`);
  const codec = buf.readUInt8(5);
  if (codec !== Codec.Raw && codec !== Codec.Lz4) throw fail('BLOB_CODEC', `uses unknown codec ${codec}`);
  const rawLength = buf.readUInt32LE(8);
  const payloadLength = buf.readUInt32LE(12);
  if (rawLength > MAX_CHUNK_SIZE || payloadLength > MAX_CHUNK_SIZE + 65536) {
    throw fail('BLOB_LENGTH', `claims ${rawLength} raw / ${payloadLength} stored bytes, beyond the ${MAX_CHUNK_SIZE}-byte chunk limit`);
  }
  if (codec === Codec.Raw && payloadLength !== rawLength) throw fail('BLOB_LENGTH', `is stored raw but its lengths differ (${payloadLength} != ${rawLength})`);
  if (blob.byteLength !== BLOB_HEADER_SIZE + payloadLength) {
    throw fail('BLOB_TRUNCATED', `holds ${blob.byteLength - BLOB_HEADER_SIZE} payload bytes but its header says ${payloadLength}`);
  }
  return { codec: codec, rawLength, payloadLength, key: bytesToKey(buf.subarray(16, 32)) };
}

/**
 * Every check a blob must pass before its bytes are used: a sound header,
 * the chunk the metadata names (key and length), a payload that decompresses
 * to exactly that length, and raw bytes whose content key matches. Returns
 * the raw chunk (in `scratch` when it was compressed). Any failure is
 * CHUNK_CORRUPT, naming `where` once: it names the blob whole (e.g. "chunk 3
 * of 000012.sst (pack shared/x.pack at 40)"); a header problem's own code is
 * in `details.problem`.
 */
export function decodeBlob(
  blob: Buffer,
  expected: { key: string; rawLength: number },
  hasher: Hasher,
  scratch: (length: number) => Buffer,
  where: string,
  details: Record<string, string | number | boolean> = {},
): Buffer {
  const corrupt = (why: string): CorruptDataError => new CorruptDataError('CHUNK_CORRUPT', `${where} ${why}; the checkpoint is damaged: restore an older checkpoint or repair the store`, { details });
  const header = checkBlobHeader(blob, hasher, (code, why) => new CorruptDataError('CHUNK_CORRUPT', `${where} ${why}; the checkpoint is damaged: restore an older checkpoint or repair the store`, { details: { ...details, problem: code } }));
  if (header.key !== expected.key || header.rawLength !== expected.rawLength) throw corrupt('holds another chunk than the checkpoint names');
  const payload = blob.subarray(BLOB_HEADER_SIZE);
  let raw: Buffer;
  if (header.codec === Codec.Lz4) {
    raw = scratch(expected.rawLength);
    // The native decoder is bounds-checked: hostile input yields a negative or short count, never an overrun.
    const n = lz4.decodeBlock(payload, raw);
    if (n !== expected.rawLength) throw corrupt(`does not decompress to ${expected.rawLength} bytes (LZ4 returned ${n})`);
  } else {
    raw = payload;
  }
  if (hasher.contentKey(raw) !== expected.key) throw corrupt('fails content verification (hash mismatch)');
  return raw;
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/**
 * Checks a whole blob on its own: header, that it holds the chunk its name
 * promises, that the payload decodes to exactly the raw length, and that the
 * decoded bytes hash to the content key. `scratch` (at least rawLength bytes)
 * receives LZ4 output. Throws CHUNK_CORRUPT naming the blob by `where`, which
 * names it whole (see decodeBlob).
 */
export function verifyBlob(blob: Uint8Array, expected: { key: string; rawLength: number }, hasher: Hasher, where: string, scratch: Buffer): void {
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  decodeBlob(buf, expected, hasher, (n) => scratch.subarray(0, n), where, { blob: where });
}
