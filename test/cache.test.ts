import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, rename, rm, symlink, truncate, utimes, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CACHE_LAYOUT_VERSION } from '../src/cache.js';
import { Chunkpoint } from '../src/index.js';
import { copyTree, listFiles, objectPath, rocksState, removeTempDirs, storedPacks, tempDir, treeDigest, type RocksState } from './support.js';

/** Every blob file of a cache directory, absolute paths. */
async function cacheEntries(cacheDir: string): Promise<string[]> {
  const root = join(cacheDir, CACHE_LAYOUT_VERSION, 'blobs');
  return (await listFiles(root)).filter((p) => !p.split('/').at(-1)?.startsWith('.tmp-')).map((p) => join(root, p));
}

/** Bytes of every regular file under a directory (links and special files not followed). */
async function bytesUnder(dir: string): Promise<number> {
  let bytes = 0;
  for (const rel of await readdir(dir, { recursive: true })) {
    const st = await lstat(join(dir, rel));
    if (st.isFile()) bytes += st.size;
  }
  return bytes;
}

describe('local-first restore with a verified local cache (real RocksDB state)', () => {
  let cp: Chunkpoint;
  let state: RocksState;
  let expected: Awaited<ReturnType<typeof treeDigest>>;

  beforeAll(async () => {
    cp = new Chunkpoint({ threads: 2 });
    state = await rocksState(10 * 1024 * 1024, 41);
    expected = await treeDigest(state.dir);
  });

  afterAll(async () => {
    await cp.close();
    await removeTempDirs();
  });

  it('a task-local copy written while snapshotting serves a relocated restore with 0 bytes from the store', async () => {
    const store = await tempDir('store');
    const cache = await tempDir('cache');
    const snap = await cp.snapshot(state.dir, { store, job: 'local' }, { cache: { dir: cache } });
    expect(snap.bytesCached).toBeGreaterThan(0);

    const moved = join(await tempDir('moved'), 'local');
    await copyTree(join(store, 'local'), moved);
    const target = join(await tempDir('restore'), 'out');
    const result = await cp.restore({ path: join(moved, 'chk-1') }, target, { cache: { dir: cache } });
    expect(result.bytesFromRemote).toBe(0);
    expect(result.bytesFromCache).toBeGreaterThan(0);
    expect(await treeDigest(target)).toEqual(expected);

    // Proof that the store's packs really were not needed: without any pack in the store it still restores
    // (the metadata and the manifest still come from the store, which is reachable).
    const packs = await storedPacks(moved);
    expect(packs.length).toBeGreaterThan(0);
    for (const key of packs) await rename(objectPath(moved, key), `${objectPath(moved, key)}.gone`);
    const again = join(await tempDir('restore'), 'out');
    const second = await cp.restore({ path: join(moved, 'chk-1') }, again, { cache: { dir: cache } });
    expect(second.bytesFromRemote).toBe(0);
    expect(await treeDigest(again)).toEqual(expected);
  });

  it('a cold cache is filled by the first restore; the second reads nothing remote; it serves a restore while the store is down', async () => {
    const store = await tempDir('store');
    const cache = await tempDir('cache');
    await cp.snapshot(state.dir, { store, job: 'cold' });

    const cold = await cp.restore({ store, job: 'cold' }, join(await tempDir('restore'), 'out'), { cache: { dir: cache } });
    expect(cold.bytesFromCache).toBe(0);
    expect(cold.bytesFromRemote).toBeGreaterThan(0);
    const stats = await cp.cacheStats({ dir: cache });
    expect(stats.bytes).toBe(cold.bytesFromRemote);
    expect(stats.checkpoints).toBe(1);

    const warm = await cp.restore({ store, job: 'cold' }, join(await tempDir('restore'), 'out'), { cache: { dir: cache } });
    expect(warm.bytesFromRemote).toBe(0);
    expect(warm.bytesFromCache).toBe(cold.bytesFromRemote);

    // The store goes down: its directory cannot be read any more (a symbolic link loop in its place, as a
    // broken mount leaves it). The cache's copies of the metadata and manifest, and its chunks, are enough.
    const away = `${store}-away`;
    await rename(store, away);
    await symlink(store, store);
    try {
      const target = join(await tempDir('restore'), 'out');
      const offline = await cp.restore({ store, job: 'cold' }, target, { cache: { dir: cache } });
      expect(offline.metadataFromCache).toBe(true);
      expect(offline.bytesFromRemote).toBe(0);
      expect(await treeDigest(target)).toEqual(expected);
      // Without the cache the same restore is refused: the store cannot be reached.
      await expect(cp.restore({ store, job: 'cold' }, join(await tempDir('restore'), 'out'))).rejects.toMatchObject({ kind: 'store_unavailable' });
    } finally {
      await rm(store);
      await rename(away, store);
    }
    // A job root that is gone (deleted, not unreachable) is not restored from old copies: the store is the truth.
    await rm(join(store, 'cold'), { recursive: true, force: true });
    await expect(cp.restore({ store, job: 'cold' }, join(await tempDir('restore'), 'out'), { cache: { dir: cache } })).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
  });

  it('with the store down, the cache serves the newest checkpoint it holds of the job root\'s current history, never a copy an older job of the same id left (issue #16 item 1)', async () => {
    const store = await tempDir('store');
    const cache = await tempDir('cache');
    const other = await rocksState(3 * 1024 * 1024, 43);
    // An old job 'j': chk-1 and chk-2, both restored through the cache.
    await cp.snapshot(other.dir, { store, job: 'j' });
    await writeFile(join(other.dir, 'extra.sst'), 'the old job, second checkpoint');
    await cp.snapshot(other.dir, { store, job: 'j' });
    for (const checkpoint of [1, 2]) await cp.restore({ store, job: 'j', checkpoint }, join(await tempDir('restore'), 'out'), { cache: { dir: cache } });
    // 'j' is deleted and recreated: its chk-1 is new state, restored once through the cache.
    await rm(join(store, 'j'), { recursive: true });
    await cp.snapshot(state.dir, { store, job: 'j' });
    await cp.restore({ store, job: 'j' }, join(await tempDir('restore'), 'out'), { cache: { dir: cache } });
    const away = `${store}-away`;
    await rename(store, away);
    await symlink(store, store);
    try {
      // 'latest' is the newest checkpoint the cache has seen (the new chk-1), not the highest cached id (the old chk-2).
      const target = join(await tempDir('restore'), 'out');
      const offline = await cp.restore({ store, job: 'j' }, target, { cache: { dir: cache } });
      expect(offline.checkpoint).toBe('chk-1');
      expect(offline.metadataFromCache).toBe(true);
      expect(offline.metadataNote).toMatch(/chk-1, the newest checkpoint of .* the local cache holds; the store could not be asked for its latest/);
      expect(await treeDigest(target)).toEqual(expected);
      // The old chk-2 predates a checkpoint the cache saw later with a lower id: it is another job's history, refused.
      const stale = await cp.restore({ store, job: 'j', checkpoint: 2 }, join(await tempDir('restore'), 'out'), { cache: { dir: cache } }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(stale).toMatchObject({ kind: 'store_unavailable' });
      expect((stale as Error).message).toContain('the local cache\'s copy of chk-2 was committed before chk-1');
    } finally {
      await rm(store);
      await rename(away, store);
    }
  });

  it('a corrupted cache entry is dropped and exactly that chunk is fetched from the store', async () => {
    const store = await tempDir('store');
    const cache = await tempDir('cache');
    await cp.snapshot(state.dir, { store, job: 'bad' }, { cache: { dir: cache } });
    const entries = await cacheEntries(cache);
    // Pick a compressed SST chunk and flip a byte of its payload.
    const victim = entries.find((p) => p.endsWith('-1048576')) ?? entries[0];
    expect(victim).toBeDefined();
    const data = await readFile(victim as string);
    const storedSize = data.byteLength;
    data[data.byteLength - 100] = (data[data.byteLength - 100] ?? 0) ^ 0xff;
    await writeFile(victim as string, data);
    // And a torn insert left by a crash: a temp file, never trusted.
    await writeFile(join(cache, CACHE_LAYOUT_VERSION, 'blobs', '.tmp-crashed'), 'partial');

    const target = join(await tempDir('restore'), 'out');
    const result = await cp.restore({ store, job: 'bad' }, target, { cache: { dir: cache } });
    expect(result.cacheEntriesDropped).toBe(1);
    expect(result.bytesFromRemote).toBe(storedSize);
    expect(await treeDigest(target)).toEqual(expected);
    // The entry was replaced by the verified copy.
    expect((await readFile(victim as string)).byteLength).toBe(storedSize);
    const again = await cp.restore({ store, job: 'bad' }, join(await tempDir('restore'), 'out'), { cache: { dir: cache } });
    expect(again.bytesFromRemote).toBe(0);
  });

  it('entries untouched for the TTL expire; each use resets the TTL', async () => {
    const store = await tempDir('store');
    const cache = await tempDir('cache');
    await cp.snapshot(state.dir, { store, job: 'ttl' }, { cache: { dir: cache } });
    const entries = await cacheEntries(cache);
    const old = new Date(Date.now() - 3 * 3600_000);
    // Half the entries were last used three hours ago.
    const stale = entries.filter((_, i) => i % 2 === 0);
    for (const p of stale) await utimes(p, old, old);
    const staleBytes = (await Promise.all(stale.map((p) => stat(p)))).reduce((s, st) => s + st.size, 0);

    const freshBytes = (await Promise.all(entries.filter((p) => !stale.includes(p)).map((p) => stat(p)))).reduce((s, st) => s + st.size, 0);
    const result = await cp.restore({ store, job: 'ttl' }, join(await tempDir('restore'), 'out'), { cache: { dir: cache, ttlMs: 3600_000 } });
    // Every fresh entry was used; the expired ones were fetched from the store, in pack reads that may span
    // the (cached) blobs between them: at least their bytes, never more than the packs hold.
    expect(result.bytesFromCache).toBe(freshBytes);
    expect(result.bytesFromRemote).toBeGreaterThanOrEqual(staleBytes);
    const packBytes = (await Promise.all((await storedPacks(join(store, 'ttl'))).map((k) => stat(objectPath(join(store, 'ttl'), k))))).reduce((s, st) => s + st.size, 0);
    expect(result.bytesFromRemote).toBeLessThan(packBytes);
    // Refetched entries are fresh again; used ones had their clock reset.
    for (const p of entries) expect(Date.now() - (await stat(p)).mtimeMs).toBeLessThan(3600_000);

    for (const p of stale) await utimes(p, old, old);
    const pruned = await cp.cachePrune({ dir: cache, ttlMs: 3600_000 });
    expect(pruned.removedEntries).toBe(stale.length);
    expect(pruned.removedBytes).toBe(staleBytes);
    expect((await cacheEntries(cache)).length).toBe(entries.length - stale.length);
  });

  it('the size cap holds during a restore and evicts least recently used entries first', async () => {
    const store = await tempDir('store');
    const cache = await tempDir('cache');
    const snap = await cp.snapshot(state.dir, { store, job: 'cap' });
    const cap = Math.floor(snap.bytesWritten / 3);
    const result = await cp.restore({ store, job: 'cap' }, join(await tempDir('restore'), 'out'), { cache: { dir: cache, maxBytes: cap } });
    expect(result.bytesFromRemote).toBeGreaterThan(cap);
    const stats = await cp.cacheStats({ dir: cache });
    expect(stats.bytes).toBeLessThanOrEqual(cap);
    expect(stats.entries).toBeGreaterThan(0);

    // LRU: the most recently used entries survive a prune to a smaller cap.
    const entries = await cacheEntries(cache);
    const sizes = new Map(await Promise.all(entries.map(async (p) => [p, (await stat(p)).size] as const)));
    const base = Date.now() - 600_000;
    for (const [i, p] of entries.entries()) await utimes(p, new Date(base + i * 1000), new Date(base + i * 1000));
    const newest = entries.at(-1) as string;
    const pruned = await cp.cachePrune({ dir: cache, maxBytes: sizes.get(newest) ?? 0 });
    expect(pruned.entries).toBe(1);
    expect(await cacheEntries(cache)).toEqual([newest]);
  });

  it('the size cap holds at every moment under three concurrent restores of one instance, temp files included (issue #16 item 8)', async () => {
    const store = await tempDir('store');
    const cache = await tempDir('cache');
    // Three jobs of different data, so every restore inserts entries of its own.
    const jobs = ['c0', 'c1', 'c2'];
    for (const [i, job] of jobs.entries()) {
      const own = await rocksState(4 * 1024 * 1024, 140 + i);
      await cp.snapshot(own.dir, { store, job });
    }
    const cap = 1500 * 1024;
    const root = join(cache, CACHE_LAYOUT_VERSION, 'blobs');
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        let bytes = 0;
        for (const p of await listFiles(root).catch(() => [])) bytes += (await stat(join(root, p)).catch(() => ({ size: 0 }))).size;
        peak = Math.max(peak, bytes);
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    try {
      const results = await Promise.all(jobs.map(async (job) => cp.restore({ store, job }, join(await tempDir('restore'), job), { cache: { dir: cache, maxBytes: cap } })));
      for (const r of results) expect(r.bytesFromRemote).toBeGreaterThan(cap / 2);
    } finally {
      sampling = false;
      await sampler;
    }
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(cap);
    expect((await cp.cacheStats({ dir: cache })).bytes).toBeLessThanOrEqual(cap);
  });

  it('the cap counts the cache\'s copies of _metadata and manifests, and a scan evicts entries that are oversized or not files instead of evicting good ones for them (issue #16 item 8)', async () => {
    const store = await tempDir('store');
    await cp.snapshot(state.dir, { store, job: 'copies' });
    // The job's chunk bytes, from an uncapped cache.
    const full = await tempDir('cache');
    await cp.restore({ store, job: 'copies' }, join(await tempDir('restore'), 'out'), { cache: { dir: full } });
    const chunkBytes = (await cp.cacheStats({ dir: full })).bytes;
    // A cap of exactly the chunk bytes: the metadata and manifest copies must fit under it too.
    const capped = await tempDir('cache');
    await cp.restore({ store, job: 'copies' }, join(await tempDir('restore'), 'out'), { cache: { dir: capped, maxBytes: chunkBytes } });
    expect(await bytesUnder(capped)).toBeLessThanOrEqual(chunkBytes);
    const cappedStats = await cp.cacheStats({ dir: capped });
    expect(cappedStats.bytes + cappedStats.checkpointBytes).toBe(await bytesUnder(capped));
    // The index counts the copies as the directory holds them, and a prune to 0 leaves nothing.
    const stats = await cp.cacheStats({ dir: full });
    expect(stats.checkpoints).toBe(1);
    expect(stats.checkpointBytes).toBeGreaterThan(0);
    expect(stats.bytes + stats.checkpointBytes).toBe(await bytesUnder(full));
    await cp.cachePrune({ dir: capped, maxBytes: 0 });
    expect(await bytesUnder(capped)).toBe(0);

    // Bad entries in the full cache: the most recently used one grown to 100 GiB, a FIFO, a directory,
    // a link to a large file, and a metadata copy grown past any real one.
    const entries = await cacheEntries(full);
    expect(entries.length).toBeGreaterThanOrEqual(5);
    const [giant, fifo, dir, link, ...good] = entries as [string, string, string, string, ...string[]];
    const old = new Date(Date.now() - 600_000);
    for (const p of good) await utimes(p, old, old);
    await truncate(giant, 100 * 2 ** 30);
    await rm(fifo);
    execFileSync('mkfifo', [fifo]);
    await rm(dir);
    await mkdir(join(dir, 'x'), { recursive: true });
    const big = join(await tempDir('big'), 'big');
    await writeFile(big, '');
    await truncate(big, 10 * 2 ** 30);
    await rm(link);
    await symlink(big, link);
    const metadataCopy = (await listFiles(join(full, CACHE_LAYOUT_VERSION, 'checkpoints'))).find((p) => p.endsWith('chk-1')) ?? '';
    await truncate(join(full, CACHE_LAYOUT_VERSION, 'checkpoints', metadataCopy), 300 * 2 ** 20);
    const pruned = await cp.cachePrune({ dir: full, maxBytes: chunkBytes });
    for (const p of [giant, fifo, dir, link]) await expect(lstat(p), p).rejects.toThrow();
    await expect(lstat(join(full, CACHE_LAYOUT_VERSION, 'checkpoints', metadataCopy))).rejects.toThrow();
    // Every good entry is still there: none was evicted to make room for what was never an entry.
    for (const p of good) expect((await lstat(p)).isFile(), p).toBe(true);
    expect(pruned.entries).toBe(good.length);
    expect(await bytesUnder(full)).toBeLessThanOrEqual(chunkBytes);
  });

  it('two restores sharing one cache directory at once both succeed', async () => {
    const store = await tempDir('store');
    const cache = await tempDir('cache');
    await cp.snapshot(state.dir, { store, job: 'shared-cache' });
    const other = new Chunkpoint({ threads: 2 });
    try {
      const [a, b] = [join(await tempDir('restore'), 'a'), join(await tempDir('restore'), 'b')];
      await Promise.all([
        cp.restore({ store, job: 'shared-cache' }, a, { cache: { dir: cache } }),
        other.restore({ store, job: 'shared-cache' }, b, { cache: { dir: cache, maxBytes: 4 * 1024 * 1024 } }),
      ]);
      expect(await treeDigest(a)).toEqual(expected);
      expect(await treeDigest(b)).toEqual(expected);
    } finally {
      await other.close();
    }
  });

  it('restore in place keeps files that verify and fetches only deleted, corrupted or missing ones', async () => {
    const store = await tempDir('store');
    const snap = await cp.snapshot(state.dir, { store, job: 'inplace' });
    const target = join(await tempDir('restore'), 'out');
    await cp.restore({ store, job: 'inplace' }, target);

    // A crashed process left this behind: one SST gone, one corrupted, a stray new file, a changed MANIFEST-size file.
    // The two largest files (SSTs in practice): one deleted, one corrupted.
    const entries = await readdir(target);
    const bySize = (await Promise.all(entries.map(async (n) => ({ n, size: (await stat(join(target, n))).size })))).sort((a, b) => b.size - a.size);
    expect(bySize.length, `restored target holds ${entries.join(', ')}`).toBeGreaterThanOrEqual(3);
    const [gone, damaged] = bySize.map((e) => e.n);
    await rm(join(target, gone as string));
    const bytes = await readFile(join(target, damaged as string));
    bytes[Math.floor(bytes.byteLength / 2)] = (bytes[Math.floor(bytes.byteLength / 2)] ?? 0) ^ 0x01;
    await writeFile(join(target, damaged as string), bytes);
    await writeFile(join(target, '999999.sst'), 'written after the checkpoint');

    const report = await cp.inspect({ store, job: 'inplace' });
    const refetch = report.fileReports.filter((f) => f.path === gone || f.path === damaged);
    const result = await cp.restore({ store, job: 'inplace' }, target, { keepMatching: true });
    expect(result.filesKept).toBe(snap.files - 2);
    expect(result.bytesKept).toBe(snap.bytes - refetch.reduce((s, f) => s + f.size, 0));
    expect(result.bytesFromRemote).toBe(refetch.reduce((s, f) => s + f.storedBytes, 0));
    expect(await treeDigest(target)).toEqual(expected);

    // Without --keep-matching a non-empty target is refused.
    await expect(cp.restore({ store, job: 'inplace' }, target)).rejects.toMatchObject({ code: 'TARGET_NOT_EMPTY' });
  });
});
