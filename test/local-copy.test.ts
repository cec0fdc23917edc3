/**
 * Task-local recovery: a snapshot keeps its files in a local copy (SSTs as
 * hard links); a restore on the same machine takes them from there in
 * O(files) when their identity proves them unchanged, reads and checks them
 * when it does not, and never uses one that changed behind its back.
 */
import { chmod, link, lstat, open, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunkpoint } from '../src/index.js';
import { refusal, removeTempDirs, rocksState, runCli, tempDir, treeDigest, type RocksState } from './support.js';

describe('task-local recovery from a local copy (real RocksDB state)', () => {
  let cp: Chunkpoint;
  let state: RocksState;
  let expected: Awaited<ReturnType<typeof treeDigest>>;
  let store: string;
  let local: string;

  beforeAll(async () => {
    cp = new Chunkpoint({ threads: 2 });
    state = await rocksState(8 * 1024 * 1024, 91);
    expected = await treeDigest(state.dir);
    store = await tempDir('store');
    local = join(await tempDir('local'), 'copy');
  });

  afterAll(async () => {
    await cp.close();
    await removeTempDirs();
  });

  /** Every regular file of the local copy (not the identity records). */
  async function copies(): Promise<string[]> {
    const out: string[] = [];
    for (const rel of await readdir(local, { recursive: true })) {
      const path = join(local, rel);
      if (!rel.endsWith('.id') && (await lstat(path)).isFile()) out.push(path);
    }
    return out;
  }

  it('a snapshot keeps its SSTs as hard links of the state and its other files as copies; a restore takes every file from there, nothing from the store', async () => {
    const snap = await cp.snapshot(state.dir, { store, job: 'j' }, { localCopy: { dir: local } });
    const files = [...expected.keys()];
    expect(snap.localCopy?.files).toBe(files.filter((f) => (expected.get(f)?.size ?? 0) > 0).length);
    const ssts = files.filter((f) => f.endsWith('.sst'));
    expect(ssts.length).toBeGreaterThan(0);
    const inodes = new Set((await Promise.all((await copies()).map((p) => stat(p)))).map((s) => s.ino));
    for (const sst of ssts) expect(inodes.has((await stat(join(state.dir, sst))).ino), sst).toBe(true);

    const target = join(await tempDir('restore'), 'out');
    const first = await cp.restore({ store, job: 'j' }, target, { localCopy: { dir: local } });
    expect(first.bytesFromRemote).toBe(0);
    expect(first.filesFromLocalCopy).toBe(snap.localCopy?.files);
    expect(first.localCopiesVerified).toBe(0);
    expect(await treeDigest(target)).toEqual(expected);
    // Restored SSTs are links too; the mutable files are copies of their own, so the database writing them cannot touch the local copy.
    expect((await stat(join(target, ssts[0] ?? ''))).ino).toBe((await stat(join(state.dir, ssts[0] ?? ''))).ino);
    const current = join(target, 'CURRENT');
    expect((await stat(current)).ino).not.toBe((await stat(join(state.dir, 'CURRENT'))).ino);

    // The restore's own link and rename moved the copies' ctime; it recorded that, so the next restore reads nothing either.
    const second = await cp.restore({ store, job: 'j' }, join(await tempDir('restore'), 'out'), { localCopy: { dir: local } });
    expect(second.localCopiesVerified).toBe(0);
    expect(second.bytesFromRemote).toBe(0);
  });

  it('a copy whose ctime moved (linked elsewhere, chmod) is read and proven before use; one whose bytes changed is refused and fetched from the store', async () => {
    // The SST copies, largest first.
    const bySize = async (): Promise<string[]> => (await Promise.all((await copies()).map(async (p) => ({ p, size: (await stat(p)).size })))).sort((x, y) => y.size - x.size).map((x) => x.p);
    const [a, b] = await bySize();
    if (a === undefined || b === undefined) throw new Error('test setup: too few local copies');
    await link(a, join(await tempDir('elsewhere'), 'another-link'));
    await chmod(b, (await stat(b)).mode & 0o777);
    const proven = await cp.restore({ store, job: 'j' }, join(await tempDir('restore'), 'out'), { localCopy: { dir: local } });
    expect(proven.localCopiesVerified).toBeGreaterThanOrEqual(1);
    expect(proven.localCopiesRejected).toBe(0);
    expect(proven.bytesFromRemote).toBe(0);

    // Behind chunkpoint's back, one byte of an SST in the local copy changes in place: same size, same inode.
    const victim = a;
    const fh = await open(victim, 'r+');
    try {
      const byte = Buffer.alloc(1);
      await fh.read(byte, 0, 1, 4096);
      byte[0] = (byte[0] ?? 0) ^ 0x5a;
      await fh.write(byte, 0, 1, 4096);
    } finally {
      await fh.close();
    }
    const target = join(await tempDir('restore'), 'out');
    const refused = await cp.restore({ store, job: 'j' }, target, { localCopy: { dir: local } });
    expect(refused.localCopiesRejected).toBe(1);
    expect(refused.bytesFromRemote).toBeGreaterThan(0);
    expect(refused.bytesFromRemote).toBeLessThan((await stat(victim)).size * 2);
    expect(await treeDigest(target)).toEqual(expected);
  });

  it('the CLI keeps and uses a local copy, and refuses one inside the state directory or the target', async () => {
    const own = await rocksState(2 * 1024 * 1024, 92);
    const st = await tempDir('store');
    const dir = join(await tempDir('local'), 'copy');
    const snap = await runCli(['snapshot', own.dir, '--store', st, '--job', 'c', '--local-copy', dir, '--threads', '1']);
    expect(snap.code, snap.stderr).toBe(0);
    expect(snap.stdout).toMatch(/local +\d+ files .* kept in the task-local copy/);
    const target = join(await tempDir('restore'), 'out');
    const restored = await runCli(['restore', '--store', st, '--job', 'c', target, '--local-copy', dir, '--threads', '1', '--json']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ bytesFromRemote: 0, localCopiesRejected: 0 });
    expect(await treeDigest(target)).toEqual(await treeDigest(own.dir));

    const inside = await runCli(['snapshot', own.dir, '--store', st, '--job', 'c', '--local-copy', join(own.dir, 'copy')]);
    expect(inside.code).toBe(1);
    expect(inside.stderr).toContain('LOCAL_COPY_INSIDE_STATE');
    const error = await refusal(cp.restore({ store: st, job: 'c' }, join(dir, '..'), { localCopy: { dir }, overwrite: true }));
    expect(error.code).toBe('TARGET_OVERLAPS_LOCAL_COPY');
    expect((await readFile(join(target, 'CURRENT'), 'utf8')).startsWith('MANIFEST-')).toBe(true);
  });
});
