/**
 * Content keys: the 128-bit name of a chunk's raw bytes.
 *
 * xxhash-wasm offers XXH32 and XXH64 only, so the key is two independent XXH64
 * digests of the same bytes under different seeds, concatenated (see
 * docs/FORMAT.md for the collision odds). The raw length travels beside the key
 * in every name and record, so two chunks collide only if both digests and the
 * length agree.
 */
import xxhash from 'xxhash-wasm';

export const KEY_HEX_LENGTH = 32;
const SEED_A = 0n;
/** 2^64 / golden ratio: a well-mixed constant unrelated to SEED_A. */
const SEED_B = 0x9e3779b97f4a7c15n;

export interface Hasher {
  /** 32 lowercase hex characters. */
  contentKey(data: Uint8Array): string;
  /** Checksum for small framing structures (headers, metadata bodies). */
  checksum32(data: Uint8Array): number;
  checksum64(data: Uint8Array): string;
}

let loading: Promise<Hasher> | undefined;

/** The wasm module is compiled once per thread and shared by every caller on it. */
export function loadHasher(): Promise<Hasher> {
  loading ??= xxhash().then((api) => ({
    contentKey(data: Uint8Array): string {
      return hex64(api.h64Raw(data, SEED_A)) + hex64(api.h64Raw(data, SEED_B));
    },
    checksum32(data: Uint8Array): number {
      return api.h32Raw(data, 0) >>> 0;
    },
    checksum64(data: Uint8Array): string {
      return hex64(api.h64Raw(data, SEED_A));
    },
  }));
  return loading;
}

function hex64(value: bigint): string {
  return value.toString(16).padStart(16, '0');
}

const KEY_RE = /^[0-9a-f]{32}$/;

export function isContentKey(value: unknown): value is string {
  return typeof value === 'string' && KEY_RE.test(value);
}

export function keyToBytes(key: string): Buffer {
  return Buffer.from(key, 'hex');
}

export function bytesToKey(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
