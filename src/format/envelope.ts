/**
 * The checksummed envelope around every small structured object chunkpoint
 * stores (`_metadata`, task manifests, sessions): a 24-byte header, a UTF-8
 * JSON part, and an optional binary tail (a manifest's chunk records).
 *
 *   0  8  magic, e.g. `CPMETA\r\n` (the CR LF catches text-mode mangling)
 *   8  4  format version (u32 LE)
 *   12 4  length of the JSON part (u32 LE)
 *   16 8  XXH64(JSON part ‖ tail, seed 0), big-endian
 *   24 …  JSON part, then the tail
 *
 * The version is read before anything else, so an object of another format
 * version is refused as such (FORMAT_UNSUPPORTED), not as damage. JSON keeps
 * the objects inspectable with ordinary tools; the envelope makes
 * truncation, bit rot and foreign files detectable before one field is trusted.
 */
import { CorruptDataError, InvalidInputError } from '../errors.js';
import type { Hasher } from './content-key.js';

export const ENVELOPE_HEADER_SIZE = 24;
/** The storage format this chunkpoint writes and reads. */
export const FORMAT_VERSION = 2;

export interface Envelope {
  json: unknown;
  /** Bytes after the JSON part (a view into the input). */
  tail: Buffer;
}

export function encodeEnvelope(magic: Buffer, value: unknown, hasher: Hasher, tail?: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER_SIZE + json.byteLength + (tail?.byteLength ?? 0));
  magic.copy(out, 0);
  out.writeUInt32LE(FORMAT_VERSION, 8);
  out.writeUInt32LE(json.byteLength, 12);
  json.copy(out, ENVELOPE_HEADER_SIZE);
  if (tail !== undefined) out.set(tail, ENVELOPE_HEADER_SIZE + json.byteLength);
  Buffer.from(hasher.checksum64(out.subarray(ENVELOPE_HEADER_SIZE)), 'hex').copy(out, 16);
  return out;
}

/**
 * Checks and opens an envelope. `what` names the object in errors ("checkpoint
 * metadata s3://…/chk-3/_metadata"); `codePrefix` makes the codes
 * (METADATA_CHECKSUM, MANIFEST_TRUNCATED…).
 */
export function decodeEnvelope(data: Uint8Array, magic: Buffer, hasher: Hasher, what: string, codePrefix: 'METADATA' | 'MANIFEST' | 'SESSION'): Envelope {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const corrupt = (code: 'TRUNCATED' | 'BAD_MAGIC' | 'CHECKSUM' | 'SYNTAX', why: string): CorruptDataError =>
    new CorruptDataError(`${codePrefix}_${code}`, `${what} ${why}; it cannot be used (restore an older checkpoint, or re-copy the job root from its source)`);
  if (buf.byteLength < ENVELOPE_HEADER_SIZE) throw corrupt('TRUNCATED', `is ${buf.byteLength} bytes, shorter than its header`);
  if (!buf.subarray(0, 8).equals(magic)) throw corrupt('BAD_MAGIC', `does not start with the chunkpoint magic '${magic.toString('latin1').trim()}'`);
  const version = buf.readUInt32LE(8);
  if (version !== FORMAT_VERSION) throw formatUnsupported(what, version);
  const jsonLength = buf.readUInt32LE(12);
  if (jsonLength > buf.byteLength - ENVELOPE_HEADER_SIZE) throw corrupt('TRUNCATED', `declares a ${jsonLength}-byte body but holds ${buf.byteLength - ENVELOPE_HEADER_SIZE} bytes`);
  const body = buf.subarray(ENVELOPE_HEADER_SIZE);
  const stored = buf.subarray(16, 24).toString('hex');
  const actual = hasher.checksum64(body);
  if (stored !== actual) throw corrupt('CHECKSUM', `fails its checksum (${stored} stored, ${actual} computed)`);
  let json: unknown;
  try {
    json = JSON.parse(body.subarray(0, jsonLength).toString('utf8'));
  } catch (error) {
    throw corrupt('SYNTAX', `has a body that is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  return { json, tail: body.subarray(jsonLength) };
}

/** Refusal of an object written in a format this chunkpoint does not read (older or newer); nothing is changed. */
export function formatUnsupported(what: string, version: number): InvalidInputError {
  const advice =
    version < FORMAT_VERSION
      ? `it was written by an earlier chunkpoint (format ${version}); this chunkpoint reads and writes format ${FORMAT_VERSION} only. Restore it with the chunkpoint that wrote it, then snapshot the state into a new job`
      : `it was written by a newer chunkpoint (format ${version}); this chunkpoint reads format ${FORMAT_VERSION}. Upgrade chunkpoint to use this job root`;
  return new InvalidInputError('FORMAT_UNSUPPORTED', `${what}: ${advice}; nothing was changed`, { details: { formatVersion: version } });
}
