/**
 * Content keys: the 128-bit name of a chunk's raw bytes.
 *
 * The key is two independent XXH64 digests of the same bytes under different
 * seeds, concatenated (see docs/FORMAT.md for the collision odds). The raw
 * length travels beside the key in every name and record, so two chunks
 * collide only if both digests and the length agree.
 *
 * Two implementations compute the same digests. xxhash-wasm is the portable
 * one and always works. The optional native one (@node-rs/xxhash, a prebuilt
 * addon for the common platforms) hashes the caller's memory where it lies;
 * xxhash-wasm copies every input into its own memory first, and together the
 * copies and the slower wasm code made hashing about a fifth of a snapshot's
 * CPU time (docs/PERFORMANCE.md). The native one is used only after it has
 * reproduced known digests on this thread; CHUNKPOINT_NATIVE_HASH=0 keeps the
 * portable one.
 */
import { createRequire } from 'node:module';

export const KEY_HEX_LENGTH = 32;
const SEED_A = 0n;
/** 2^64 / golden ratio: a well-mixed constant unrelated to SEED_A. */
const SEED_B = 0x9e3779b97f4a7c15n;

export type HasherKind = 'native' | 'wasm';

export interface Hasher {
  /** Which implementation this is (both compute the same values). */
  readonly kind: HasherKind;
  /** 32 lowercase hex characters. */
  contentKey(data: Uint8Array): string;
  /** Checksum for small framing structures (headers, metadata bodies). */
  checksum32(data: Uint8Array): number;
  checksum64(data: Uint8Array): string;
}

/** The three digest functions both implementations provide. */
interface Digests {
  h64(data: Uint8Array, seed: bigint): bigint;
  h32(data: Uint8Array, seed: number): number;
}

function hasherOf(kind: HasherKind, d: Digests): Hasher {
  return {
    kind,
    contentKey: (data) => hex64(d.h64(data, SEED_A)) + hex64(d.h64(data, SEED_B)),
    checksum32: (data) => d.h32(data, 0) >>> 0,
    checksum64: (data) => hex64(d.h64(data, SEED_A)),
  };
}

/** The portable implementation (compiled once per thread and cached by the caller); loaded only where it is used. */
export async function loadWasmHasher(): Promise<Hasher> {
  const { default: xxhash } = await import('xxhash-wasm');
  const api = await xxhash();
  return hasherOf('wasm', { h64: (data, seed) => api.h64Raw(data, seed), h32: (data, seed) => api.h32Raw(data, seed) });
}

/**
 * Digests of knownInput() (XXH64 under both seeds, XXH32 under 0) as the
 * portable implementation computes them (test/content-key.test.ts checks
 * they still agree): the native addon must reproduce them before it names a
 * single chunk.
 */
const KNOWN = { a: 0x0bf0bdbcc82eb373n, b: 0x3ecb5d7b5e7c64cfn, h32: 0x47c1e8da };
/** The key of zero bytes (XXH64 of nothing under seed 0 is the reference implementation's own test vector, 0xef46db3751d8e999). */
const EMPTY_KEY = 'ef46db3751d8e999c4349fc93c010000';
/** 1000 bytes (several 32-byte stripes and a ragged tail), a fixed pattern. */
function knownInput(): Uint8Array {
  const input = new Uint8Array(1000);
  for (let i = 0; i < input.length; i++) input[i] = (i * 131 + 7) & 0xff;
  return input;
}

/**
 * The native implementation, or undefined where it is not installed (an
 * unsupported platform: npm skips the optional package), does not load, is
 * turned off, or disagrees with the reference digests.
 */
export function loadNativeHasher(): Promise<Hasher | undefined> {
  return Promise.resolve(nativeHasher());
}

function nativeHasher(): Hasher | undefined {
  if (process.env['CHUNKPOINT_NATIVE_HASH'] === '0') return undefined;
  const native = requireNative();
  if (native === undefined) return undefined;
  const hasher = hasherOf('native', { h64: (data, seed) => native.xxh64(data, seed), h32: (data, seed) => native.xxh32(data, seed) });
  try {
    const input = knownInput();
    if (hasher.contentKey(input) !== hex64(KNOWN.a) + hex64(KNOWN.b) || hasher.checksum32(input) !== KNOWN.h32) return undefined;
    if (hasher.contentKey(new Uint8Array(0)) !== EMPTY_KEY) return undefined;
  } catch {
    return undefined;
  }
  return hasher;
}

type NativeXxhash = { xxh64(input: Uint8Array, seed?: bigint | null): bigint; xxh32(input: Uint8Array, seed?: number | null): number };

/**
 * The addon. On Linux its binary package is required directly: the
 * package's own entry point first works out which of its dozen binaries
 * fits, which costs every thread a few milliseconds of start-up. npm
 * installs only the binary matching the C library (the packages declare
 * it), so trying glibc's and then musl's finds the right one; anywhere else,
 * or if neither loads, the entry point decides.
 */
function requireNative(): NativeXxhash | undefined {
  const require = createRequire(import.meta.url);
  const candidates = process.platform === 'linux' ? [`@node-rs/xxhash-linux-${process.arch}-gnu`, `@node-rs/xxhash-linux-${process.arch}-musl`] : [];
  for (const name of [...candidates, '@node-rs/xxhash']) {
    try {
      return require(name) as NativeXxhash;
    } catch {
      // Not installed here, or built for another C library: the next candidate.
    }
  }
  return undefined;
}

let loading: Promise<Hasher> | undefined;

/** This thread's hasher: the native one where it works, else the portable one; loaded once and shared by every caller on the thread. */
export function loadHasher(): Promise<Hasher> {
  loading ??= loadNativeHasher().then((native) => native ?? loadWasmHasher());
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
