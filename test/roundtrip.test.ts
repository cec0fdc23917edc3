import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, rm, stat, utimes, writeFile, readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunkpoint } from '../src/index.js';
import { checkpointFiles, copyTree, objectPath, storedMetadata, mutateRocksState, REPO_ROOT, storedPacks, rocksState, removeTempDirs, tempDir, treeDigest, type FileInfo, type RocksState } from './support.js';

describe('snapshot and restore on the directory store (real RocksDB state)', () => {
  let cp: Chunkpoint;
  let state: RocksState;

  beforeAll(async () => {
    cp = new Chunkpoint({ threads: 2 });
    state = await rocksState(12 * 1024 * 1024, 11);
  });

  afterAll(async () => {
    await cp.close();
    await removeTempDirs();
  });

  it('restores a byte-identical copy of the state', async () => {
    const store = await tempDir('store');
    const target = join(await tempDir('restore'), 'out');
    const snap = await cp.snapshot(state.dir, { store, job: 'orders' });
    const sstCount = (await readdir(state.dir)).filter((n) => n.endsWith('.sst')).length;
    expect(sstCount).toBeGreaterThan(2);
    expect(snap.checkpoint).toBe('chk-1');
    expect(snap.bytesRead).toBe(snap.bytes);
    expect(snap.filesReused).toBe(0);
    // Uncompressed SST blocks: LZ4 must have done real work.
    expect(snap.compressionRatio).toBeGreaterThan(1.5);

    const restored = await cp.restore({ store, job: 'orders' }, target);
    expect(restored.files).toBe(snap.files);
    expect(restored.bytes).toBe(snap.bytes);
    expect(restored.bytesFromRemote).toBeGreaterThan(0);
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
    // No staging leftovers.
    expect((await readdir(target)).some((n) => n.startsWith('.chunkpoint'))).toBe(false);
  });

  it('the first snapshot of a restored state reuses every immutable file: mtimes come back to the sub-millisecond', async () => {
    const store = await tempDir('store');
    const target = join(await tempDir('restore'), 'out');
    await cp.snapshot(state.dir, { store, job: 'orders' });
    await cp.restore({ store, job: 'orders' }, target);
    const again = await cp.snapshot(target, { store, job: 'orders' });
    const ssts = (await readdir(state.dir)).filter((n) => n.endsWith('.sst'));
    expect(again.filesReused).toBe(ssts.length);
    // Only the small mutable files (MANIFEST, OPTIONS, CURRENT…) are read again.
    const sstBytes = (await Promise.all(ssts.map(async (n) => (await stat(join(state.dir, n))).size))).reduce((a, b) => a + b, 0);
    expect(again.bytesRead).toBe(again.bytes - sstBytes);
    expect(again.bytesRead).toBeLessThan(again.bytes / 100);
  });

  it('keeps handles relative: a job root copied elsewhere restores after the original is deleted', async () => {
    const store = await tempDir('store');
    await cp.snapshot(state.dir, { store, job: 'orders' });
    const raw = await readFile(join(store, 'orders', 'chk-1', '_metadata'));
    expect(raw.includes(Buffer.from(store))).toBe(false);
    // Nor does the task's manifest, which holds every file and chunk handle.
    const [task] = (await storedMetadata(join(store, 'orders'), 1)).tasks;
    const manifest = await readFile(objectPath(join(store, 'orders'), task?.manifest.key ?? 'missing'));
    expect(manifest.includes(Buffer.from(store))).toBe(false);

    const elsewhere = join(await tempDir('moved'), 'another-name');
    await copyTree(join(store, 'orders'), elsewhere);
    await rm(store, { recursive: true, force: true });

    const target = join(await tempDir('restore'), 'out');
    const restored = await cp.restore({ path: join(elsewhere, 'chk-1') }, target);
    expect(restored.checkpoint).toBe('chk-1');
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
  });

  it('an incremental snapshot reads only new and rewritten files, and restores the new state', async () => {
    const local = await rocksState(10 * 1024 * 1024, 21);
    const store = await tempDir('store');
    // RocksDB's background compaction decides whether an old SST survives a change: when one
    // round of changes happened to rewrite all of them there is nothing to reuse, so the state is
    // snapshotted and changed again (a new base each time) until some SST is left untouched.
    let first = await cp.snapshot(local.dir, { store, job: 'inc' });
    let before = await treeDigest(local.dir);
    let after = before;
    let keptSsts: [string, FileInfo][] = [];
    for (let seed = 22; ; seed++) {
      await mutateRocksState(local, seed);
      after = await treeDigest(local.dir);
      keptSsts = [...after].filter(([name, info]) => name.endsWith('.sst') && before.get(name)?.size === info.size);
      if (keptSsts.length > 0 || seed >= 26) break;
      console.warn(`roundtrip: RocksDB rewrote every SST in mutation ${seed}; changing the state once more`);
      first = await cp.snapshot(local.dir, { store, job: 'inc' });
      before = after;
    }
    const changedSsts = [...after].filter(([name, info]) => name.endsWith('.sst') && before.get(name)?.size !== info.size);
    expect(changedSsts.length).toBeGreaterThan(0);
    expect(keptSsts.length).toBeGreaterThan(0);
    const mutableBytes = [...after].filter(([name]) => !name.endsWith('.sst')).reduce((sum, [, f]) => sum + f.size, 0);
    const changedBytes = changedSsts.reduce((sum, [, f]) => sum + f.size, 0);

    const second = await cp.snapshot(local.dir, { store, job: 'inc' });
    expect(second.checkpoint).toBe(`chk-${first.checkpointId + 1}`);
    expect(second.filesReused).toBe(keptSsts.length);
    // Exactly the new/rewritten SSTs plus the small mutable files were read (and what mostly dead packs held, read again).
    expect(second.bytesRead).toBe(changedBytes + mutableBytes + second.bytesRewritten);
    expect(second.bytesRead).toBeLessThan(first.bytesRead / 2);
    expect(second.bytesWritten).toBeLessThan(first.bytesWritten / 2);

    const list = await cp.list({ store, job: 'inc' });
    expect(list.map((c) => c.checkpoint).slice(-2)).toEqual([first.checkpoint, second.checkpoint]);

    const target = join(await tempDir('restore'), 'out');
    await cp.restore({ store, job: 'inc', checkpoint: 'latest' }, target);
    expect(await treeDigest(target)).toEqual(after);

    // The older checkpoint still restores the older state.
    const older = join(await tempDir('restore'), 'old');
    await cp.restore({ store, job: 'inc', checkpoint: first.checkpointId }, older);
    expect(await treeDigest(older)).toEqual(before);
  });

  it('deduplicates identical chunks within a snapshot and against its base; an unchanged incremental writes no new pack', async () => {
    const dir = join(await tempDir('dedupe'), 'state');
    await mkdir(join(dir, 'sub'), { recursive: true });
    const sst = (await readdir(state.dir)).find((n) => n.endsWith('.sst'));
    expect(sst).toBeDefined();
    const content = await readFile(join(state.dir, sst as string));
    // Same bytes under three names (one in a subdirectory), one of them mutable.
    await writeFile(join(dir, 'a.sst'), content);
    await writeFile(join(dir, 'sub', 'b.sst'), content);
    await writeFile(join(dir, 'copy.bin'), content);
    const chunkSize = 256 * 1024;
    const chunksPerFile = Math.ceil(content.byteLength / chunkSize);
    expect(chunksPerFile).toBeGreaterThan(1);
    // Distinct chunk contents of one file (an independent hash: SHA-256 of each slice).
    const distinct = new Set<string>();
    for (let at = 0; at < content.byteLength; at += chunkSize) distinct.add(createHash('sha256').update(content.subarray(at, at + chunkSize)).digest('hex'));
    const store = await tempDir('store');
    const jobRoot = join(store, 'dedupe');

    const first = await cp.snapshot(dir, { store, job: 'dedupe' }, { chunkSize });
    expect(first.chunksNew + first.chunksDeduped).toBe(3 * chunksPerFile);
    // The two SSTs go into one shared pack, their content stored once; the mutable copy goes into the
    // task's own pack (packs of files that die at every checkpoint never pin SST packs), stored once more.
    expect(first.chunksNew).toBe(2 * distinct.size);
    expect((await storedPacks(jobRoot)).filter((k) => k.startsWith('shared/'))).toHaveLength(1);
    expect((await storedPacks(jobRoot)).filter((k) => k.startsWith('taskowned/main/'))).toHaveLength(1);
    const files = new Map((await checkpointFiles(jobRoot, 1)).map((f) => [f.path, f]));
    // a.sst and sub/b.sst name the very same blobs.
    expect(files.get('sub/b.sst')?.chunks.map((c) => c.handle)).toEqual(files.get('a.sst')?.chunks.map((c) => c.handle));
    expect(new Set(files.get('copy.bin')?.chunks.map((c) => c.handle.area))).toEqual(new Set(['taskowned']));
    const packsBefore = await storedPacks(jobRoot);

    // A mutable file rewritten with the same content is read again but stores nothing new:
    // its chunks are found in the base checkpoint. The SSTs are reused unread.
    const mtime = new Date(Date.now() + 5000);
    await writeFile(join(dir, 'copy.bin'), content);
    await utimes(join(dir, 'copy.bin'), mtime, mtime);
    const second = await cp.snapshot(dir, { store, job: 'dedupe' }, { chunkSize });
    expect(second.base).toBe('chk-1');
    expect(second.filesReused).toBe(2);
    expect(second.bytesRead).toBe(content.byteLength);
    expect(second.chunksNew).toBe(0);
    expect(second.chunksDeduped).toBe(chunksPerFile);
    expect(second.packsWritten).toBe(0);
    expect(await storedPacks(jobRoot)).toEqual(packsBefore);

    const target = join(await tempDir('restore'), 'out');
    await cp.restore({ store, job: 'dedupe' }, target);
    expect(await treeDigest(target)).toEqual(await treeDigest(dir));
    expect((await stat(join(target, 'sub'))).isDirectory()).toBe(true);
  });

  it('restores empty files and empty directories', async () => {
    const dir = join(await tempDir('shape'), 'state');
    await mkdir(join(dir, 'empty-dir', 'nested'), { recursive: true });
    await writeFile(join(dir, 'LOCK'), '');
    await writeFile(join(dir, 'CURRENT'), 'MANIFEST-000001\n');
    const store = await tempDir('store');
    await cp.snapshot(dir, { store, job: 'shape' });
    const target = join(await tempDir('restore'), 'out');
    await cp.restore({ store, job: 'shape' }, target);
    expect(await treeDigest(target)).toEqual(await treeDigest(dir));
    expect((await stat(join(target, 'empty-dir', 'nested'))).isDirectory()).toBe(true);
  });
});

describe('several chunks per worker thread at once', () => {
  afterAll(removeTempDirs);

  it('one thread working on four chunks at a time keeps every chunk its own bytes, through snapshot, cache and restore', async () => {
    // Small chunks, many per file: the tasks on the one thread interleave at every await, so any
    // buffer two of them shared would put one chunk's bytes under another's name or offset.
    const cp = new Chunkpoint({ threads: 1, requestsPerThread: 4 });
    try {
      const state = await rocksState(6 * 1024 * 1024, 31);
      const store = await tempDir('store');
      const cache = await tempDir('cache');
      const snap = await cp.snapshot(state.dir, { store, job: 'interleaved' }, { chunkSize: 64 * 1024, cache: { dir: cache } });
      expect(snap.chunksNew).toBeGreaterThan(50);
      const fromStore = join(await tempDir('restore'), 'out');
      await cp.restore({ store, job: 'interleaved' }, fromStore);
      expect(await treeDigest(fromStore)).toEqual(await treeDigest(state.dir));
      const fromCache = join(await tempDir('restore'), 'out');
      const restored = await cp.restore({ store, job: 'interleaved' }, fromCache, { cache: { dir: cache } });
      expect(restored.bytesFromCache).toBeGreaterThan(0);
      expect(await treeDigest(fromCache)).toEqual(await treeDigest(state.dir));
      expect((await cp.verify({ store, job: 'interleaved' })).problems).toEqual([]);
    } finally {
      await cp.close();
    }
  });

  it('rejects a task count out of range with a clear error', () => {
    expect(() => new Chunkpoint({ requestsPerThread: 0 })).toThrow(/requests per thread 0 is out of range/);
  });
});

describe('worker pool lifecycle', () => {
  it('a process that snapshots, restores and closes exits on its own', async () => {
    const state = await rocksState(4 * 1024 * 1024, 31);
    const store = await tempDir('store');
    const target = join(await tempDir('restore'), 'out');
    const script = `
      const { Chunkpoint } = await import(${JSON.stringify(join(REPO_ROOT, 'dist', 'src', 'index.js'))});
      const cp = new Chunkpoint({ threads: 2 });
      await cp.snapshot(${JSON.stringify(state.dir)}, { store: ${JSON.stringify(store)}, job: 'exit' });
      await cp.restore({ store: ${JSON.stringify(store)}, job: 'exit' }, ${JSON.stringify(target)});
      await cp.close();
      console.log('done');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      // No process.exit() in the script: only a clean pool shutdown lets it end.
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('the process did not exit within 60 s after close(): the worker pool kept it alive'));
      }, 60_000);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code).toBe(0);
    expect(stdout.trim()).toBe('done');
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
    await removeTempDirs();
  });
});
