/**
 * The two content-key implementations (the optional native addon and the
 * portable xxhash-wasm) must name every chunk the same: a checkpoint written
 * by one is read and verified by the other, on real RocksDB SSTs.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunkpoint } from '../src/index.js';
import { loadHasher, loadNativeHasher, loadWasmHasher, type Hasher } from '../src/format/content-key.js';
import { alignedMemory } from '../src/store/direct-io.js';
import { prng } from '../src/random.js';
import { removeTempDirs, rocksState, tempDir, treeDigest, withEnv, type RocksState } from './support.js';

let state: RocksState;
let wasm: Hasher;
let native: Hasher | undefined;

beforeAll(async () => {
  state = await rocksState(6 * 1024 * 1024, 41);
  wasm = await loadWasmHasher();
  native = await loadNativeHasher();
});
afterAll(removeTempDirs);

/** Where npm installs the addon's prebuilt binary (@node-rs/xxhash-linux-x64-gnu and its kin). */
function nativeExpected(): boolean {
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;
  return ['x64', 'arm64'].includes(process.arch) && ((process.platform === 'linux' && glibc) || process.platform === 'darwin');
}

/** Runs `work` with CHUNKPOINT_NATIVE_HASH=0 in the environment (worker threads started meanwhile copy it). */
function portableOnly<T>(work: () => Promise<T>): Promise<T> {
  return withEnv('CHUNKPOINT_NATIVE_HASH', '0', work);
}

describe('content keys', () => {
  it('the native implementation loads where its prebuilt binary exists, and is what chunkpoint uses there', async () => {
    if (!nativeExpected()) {
      process.stdout.write(`content-key test: no prebuilt native xxhash for ${process.platform}-${process.arch}; only the portable implementation ran\n`);
      expect((await loadHasher()).kind).toBe('wasm');
      return;
    }
    expect(native?.kind, 'the native xxhash did not load or failed its known digests (is @node-rs/xxhash installed?)').toBe('native');
    expect((await loadHasher()).kind).toBe('native');
    expect(await portableOnly(() => loadNativeHasher())).toBeUndefined();
  });

  it('both implementations give the same keys and checksums for real SST bytes, at every length and in every kind of memory', async (context) => {
    if (native === undefined) {
      context.skip();
      return;
    }
    const seed = 20261202;
    process.stdout.write(`content-key test: seed ${seed}\n`);
    const random = prng(seed);
    const files = (await readdir(state.dir)).filter((f) => f.endsWith('.sst'));
    expect(files.length).toBeGreaterThan(0);
    const bytes = await readFile(join(state.dir, files[0] as string));
    const lengths = [0, 1, 3, 4, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 100, 1000, 4096, 65537, 1048576];
    for (let i = 0; i < 200; i++) lengths.push(Math.floor(random() * 2 * 1048576));
    for (const length of lengths) {
      const at = Math.floor(random() * Math.max(1, bytes.byteLength - length));
      const slice = bytes.subarray(at, at + length);
      // The memory a worker hashes: plain buffers, shared memory (a relayed store's bodies), aligned wasm memory (a restore's blobs).
      const shared = Buffer.from(new SharedArrayBuffer(Math.max(1, slice.byteLength))).subarray(0, slice.byteLength);
      slice.copy(shared);
      const aligned = alignedMemory(Math.max(1, slice.byteLength)).subarray(0, slice.byteLength);
      slice.copy(aligned);
      for (const view of [slice, shared, aligned]) {
        expect(native.contentKey(view), `key of ${length} bytes at ${at}`).toBe(wasm.contentKey(view));
        expect(native.checksum32(view)).toBe(wasm.checksum32(view));
        expect(native.checksum64(view)).toBe(wasm.checksum64(view));
      }
    }
  });

  it('a checkpoint written with one implementation restores, every chunk verified, with the other', async (context) => {
    if (native === undefined) {
      context.skip();
      return;
    }
    const expected = await treeDigest(state.dir);
    for (const [writer, reader] of [
      ['native', 'wasm'],
      ['wasm', 'native'],
    ] as const) {
      const store = await tempDir(`keys-${writer}`);
      const job = { store, job: 'keys' };
      // Worker threads copy the environment when they start: each instance's threads start inside its operation.
      const as = <T>(kind: 'native' | 'wasm', work: () => Promise<T>): Promise<T> => (kind === 'wasm' ? portableOnly(work) : work());
      const a = new Chunkpoint({ threads: 2 });
      try {
        await as(writer, () => a.snapshot(state.dir, job));
      } finally {
        await a.close();
      }
      const b = new Chunkpoint({ threads: 2 });
      const target = join(await tempDir(`keys-${reader}`), 'restored');
      try {
        const verified = await as(reader, async () => {
          await b.restore({ ...job, checkpoint: 'latest' }, target);
          return b.verify({ ...job, checkpoint: 'latest' });
        });
        expect(verified.problems, `${reader} verified what ${writer} wrote`).toEqual([]);
        expect(verified.blobsChecked).toBe(verified.blobs);
        expect(verified.blobs).toBeGreaterThan(0);
      } finally {
        await b.close();
      }
      expect(await treeDigest(target), `${writer} -> ${reader}`).toEqual(expected);
    }
  });
});
