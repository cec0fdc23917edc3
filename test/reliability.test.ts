/**
 * Reliability: state that changes while it is read, symlinks planted in the
 * restore target, and `verify` scrubbing a damaged checkpoint. Real RocksDB
 * state throughout; every failure must commit nothing, keep the previous
 * checkpoint restorable and leave the pool usable.
 */
import { appendFileSync, truncateSync, unlinkSync, utimesSync, writeFileSync, readFileSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunkpoint, type VerifyResult } from '../src/index.js';
import { checkpointFiles, copyTree, objectPath, packOf, refusal, removeTempDirs, rocksState, runCli, storedMetadata, tempDir, treeDigest, type RocksState } from './support.js';

let cp: Chunkpoint;
let state: RocksState;

beforeAll(async () => {
  cp = new Chunkpoint({ threads: 2 });
  state = await rocksState(4 * 1024 * 1024, 91);
});

afterAll(async () => {
  await cp.close();
  await removeTempDirs();
});

async function largestSst(dir: string): Promise<string> {
  let best = '';
  let size = -1;
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.sst')) continue;
    const st = await lstat(join(dir, name));
    if (st.size > size) {
      best = name;
      size = st.size;
    }
  }
  return best;
}

describe('state that changes while the snapshot reads it', () => {
  // The `immutable` predicate runs once per file right after the listing recorded its size and
  // mtime and before any worker reads it: the exact window a concurrent writer would hit.
  const changes: Record<string, (file: string) => void> = {
    grows: (file) => appendFileSync(file, Buffer.alloc(4096, 7)),
    shrinks: (file) => truncateSync(file, 1000),
    'is rewritten with the same size': (file) => {
      const data = readFileSync(file);
      data[data.byteLength >> 1] = (data[data.byteLength >> 1] ?? 0) ^ 0xff;
      writeFileSync(file, data);
      const later = new Date(Date.now() + 10_000);
      utimesSync(file, later, later);
    },
    vanishes: (file) => unlinkSync(file),
  };

  for (const [what, change] of Object.entries(changes)) {
    it(`a state file that ${what} fails the snapshot with STATE_CHANGED; nothing is committed; the previous checkpoint restores; the next snapshot succeeds`, async () => {
      const dir = join(await tempDir('changing'), 'db');
      await copyTree(state.dir, dir);
      const store = await tempDir('store');
      await cp.snapshot(dir, { store, job: 'changing' });
      const before = await treeDigest(dir);
      // A new file, so the snapshot must read it (reused SSTs are never read).
      const victim = 'zz-new.sst';
      await writeFile(join(dir, victim), await readFile(join(dir, await largestSst(dir))));
      let fired = false;
      const error = await refusal(
        cp.snapshot(
          dir,
          { store, job: 'changing' },
          {
            immutable: (rel) => {
              if (rel === victim && !fired) {
                fired = true;
                change(join(dir, rel));
              }
              return rel.endsWith('.sst');
            },
          },
        ),
      );
      expect(fired).toBe(true);
      expect(error.code, error.message).toBe('STATE_CHANGED');
      expect(error.kind).toBe('conflict');
      expect(error.message).toContain(victim);
      expect((await cp.list({ store, job: 'changing' })).map((c) => c.checkpoint)).toEqual(['chk-1']);
      const target = join(await tempDir('restore'), 'out');
      await cp.restore({ store, job: 'changing' }, target);
      expect(await treeDigest(target)).toEqual(before);
      // Same pool, state now stable: the next snapshot commits chk-2 and restores exactly.
      const next = await cp.snapshot(dir, { store, job: 'changing' });
      expect(next.checkpoint).toBe('chk-2');
      const again = join(await tempDir('restore'), 'again');
      await cp.restore({ store, job: 'changing' }, again);
      expect(await treeDigest(again)).toEqual(await treeDigest(dir));
    });
  }
});

describe('symlinks planted in the restore target are never followed out of it', () => {
  let store: string;
  let nested: string;

  beforeAll(async () => {
    // A state with a subdirectory, so a planted directory link lies on a restore path.
    nested = join(await tempDir('nested'), 'db');
    await copyTree(state.dir, nested);
    await mkdir(join(nested, 'archive'));
    await writeFile(join(nested, 'archive', 'old.sst'), await readFile(join(nested, await largestSst(nested))));
    store = await tempDir('store');
    await cp.snapshot(nested, { store, job: 'links' });
  });

  async function outside(): Promise<{ dir: string; file: string; digest: () => Promise<unknown> }> {
    const dir = await tempDir('outside');
    const file = join(dir, 'precious');
    await writeFile(file, 'must survive');
    return { dir, file, digest: () => treeDigest(dir) };
  }

  for (const mode of ['overwrite', 'keepMatching'] as const) {
    it(`${mode}: a file-name link and a directory link pointing outside are replaced, and their targets are untouched`, async () => {
      const out = await outside();
      const before = await out.digest();
      const target = join(await tempDir('restore'), 'out');
      await mkdir(target);
      const sst = await largestSst(nested);
      await symlink(out.file, join(target, sst));
      await symlink(out.dir, join(target, 'archive'));
      await symlink(out.file, join(target, 'CURRENT'));
      await cp.restore({ store, job: 'links' }, target, mode === 'overwrite' ? { overwrite: true } : { keepMatching: true });
      expect(await out.digest()).toEqual(before);
      expect((await lstat(join(target, sst))).isFile()).toBe(true);
      expect((await lstat(join(target, 'archive'))).isDirectory()).toBe(true);
      expect(await treeDigest(target)).toEqual(await treeDigest(nested));
    });
  }

  it('a link planted where the staging directory goes cannot redirect it (fresh random name, created exclusively)', async () => {
    const out = await outside();
    const before = await out.digest();
    const target = join(await tempDir('restore'), 'out');
    await mkdir(target);
    // Guessable names are useless: the staging name is random; plant many anyway.
    for (let i = 0; i < 20; i++) await symlink(out.dir, join(target, `.chunkpoint-restore-${i.toString(16).padStart(12, '0')}`));
    await cp.restore({ store, job: 'links' }, target, { overwrite: true });
    expect(await out.digest()).toEqual(before);
    expect(await treeDigest(target)).toEqual(await treeDigest(nested));
  });
});

describe('verify scrubs a checkpoint and reports every problem', () => {
  let store: string;

  beforeAll(async () => {
    store = await tempDir('store');
    // Small packs, so that there are several to damage in different ways.
    await cp.snapshot(state.dir, { store, job: 'scrub' }, { chunkSize: 256 * 1024, packSize: 1024 * 1024 });
  });

  it('a sound checkpoint verifies, all blobs or a seeded sample', async () => {
    const full = await cp.verify({ store, job: 'scrub' });
    expect(full.ok).toBe(true);
    expect(full.blobsChecked).toBe(full.blobs);
    expect(full.packsPresent).toBe(full.packs);
    expect(full.packs).toBeGreaterThanOrEqual(3);
    expect(full.bytesChecked).toBeGreaterThan(0);
    const a = await cp.verify({ store, job: 'scrub' }, { sample: 0.5, sampleSeed: 7 });
    const b = await cp.verify({ store, job: 'scrub' }, { sample: 0.5, sampleSeed: 7 });
    expect(a.blobsChecked).toBe(b.blobsChecked);
    expect(a.bytesChecked).toBe(b.bytesChecked);
    expect(a.blobsChecked).toBeGreaterThan(0);
    expect(a.blobsChecked).toBeLessThan(full.blobs);
    expect(a.sampleSeed).toBe(7);
    // Packs are checked for presence and size whatever the sample.
    expect(a.packs).toBe(full.packs);
  });

  it('a missing pack, a truncated pack and a bit-flipped blob are all reported, with the files that need them; the CLI exits 1', async () => {
    const copy = join(await tempDir('scrubcopy'), 'scrub');
    await copyTree(join(store, 'scrub'), copy);
    const chunks = (await checkpointFiles(copy, 1)).flatMap((f) => f.chunks);
    const packs = [...new Set(chunks.map(packOf))].filter((k) => k.startsWith('shared/')).sort();
    const [missing, truncated, flipped] = packs;
    if (missing === undefined || truncated === undefined || flipped === undefined) throw new Error(`test setup: fewer than 3 shared packs (${packs.length})`);
    const blobsIn = (pack: string): { offset: number; length: number }[] =>
      [...new Map(chunks.filter((c) => packOf(c) === pack).map((c) => [c.handle.offset, c.handle] as const)).values()].sort((x, y) => x.offset - y.offset);
    await rm(objectPath(copy, missing));
    // Cut in the middle of the truncated pack's last blob.
    const last = blobsIn(truncated).at(-1);
    if (last === undefined) throw new Error('test setup: empty pack');
    await truncate(objectPath(copy, truncated), last.offset + Math.floor(last.length / 2));
    const victim = blobsIn(flipped)[0];
    if (victim === undefined) throw new Error('test setup: empty pack');
    const data = await readFile(objectPath(copy, flipped));
    const at = victim.offset + victim.length - 1;
    data[at] = (data[at] ?? 0) ^ 1;
    await writeFile(objectPath(copy, flipped), data);

    const report = await cp.verify({ path: join(copy, 'chk-1') });
    expect(report.ok).toBe(false);
    expect(report.packs).toBe(new Set(chunks.map(packOf)).size);
    expect(report.packsPresent).toBe(report.packs - 2);
    // Every blob that can be read is read: all but those of the missing pack.
    expect(report.blobsChecked).toBe(report.blobs - blobsIn(missing).length);
    const byObject = new Map(report.problems.map((p) => [p.object, p]));
    expect([...byObject.keys()].sort()).toEqual([missing, truncated, `${truncated}@${last.offset}`, `${flipped}@${victim.offset}`].sort());
    expect(report.problems).toHaveLength(4);
    expect(byObject.get(missing)?.code).toBe('PACK_MISSING');
    expect(byObject.get(truncated)?.code).toBe('PACK_SIZE');
    expect(byObject.get(`${truncated}@${last.offset}`)?.code).toBe('CHUNK_CORRUPT');
    expect(byObject.get(`${flipped}@${victim.offset}`)?.code).toBe('CHUNK_CORRUPT');
    // A missing pack is reported with every chunk it held.
    expect(byObject.get(missing)?.uses).toBe(chunks.filter((c) => packOf(c) === missing).length);
    for (const p of report.problems) {
      expect(p.usedBy.length).toBeGreaterThan(0);
      expect(p.usedBy[0]?.path).toMatch(/\.sst$/);
    }

    const cli = await runCli(['verify', join(copy, 'chk-1'), '--json']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/^chunkpoint: CHECKPOINT_DAMAGED: chk-1 .* 4 problem\(s\)/);
    const json = JSON.parse(cli.stdout) as VerifyResult;
    expect(json.problems.map((p) => p.code).sort()).toEqual(['CHUNK_CORRUPT', 'CHUNK_CORRUPT', 'PACK_MISSING', 'PACK_SIZE']);
    const text = await runCli(['verify', join(copy, 'chk-1')]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(`${report.packs - 2} of ${report.packs} packs whole`);
    expect(text.stdout).toContain('4 problem(s)');
    expect(text.stdout).toContain('PACK_MISSING');
    const ok = await runCli(['verify', '--store', store, '--job', 'scrub', '--sample', '50%', '--sample-seed', '3']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/read \d+ of \d+ chunks \(sample 0\.5, seed 3\)/);
    expect(ok.stdout).toContain('no problems found');
  });

  it("a pack deleted or truncated behind chunkpoint's back is routed around by the next snapshot: it reads those chunks again from the state, says so, and commits a whole checkpoint", async () => {
    const parent = await tempDir('routed');
    const copy = join(parent, 'scrub');
    await copyTree(join(store, 'scrub'), copy);
    const files = await checkpointFiles(copy, 1);
    const packs = [...new Set(files.flatMap((f) => f.chunks.map(packOf)))].filter((k) => k.startsWith('shared/')).sort();
    const [gone, short] = packs;
    if (gone === undefined || short === undefined) throw new Error('test setup: fewer than 2 shared packs');
    await rm(objectPath(copy, gone));
    const size = (await readFile(objectPath(copy, short))).byteLength;
    await truncate(objectPath(copy, short), size - 1);
    const damaged = new Set([gone, short]);

    const next = await cp.snapshot(state.dir, { store: parent, job: 'scrub' }, { chunkSize: 256 * 1024, packSize: 1024 * 1024 });
    expect(next.base).toBe('chk-1');
    for (const key of damaged) expect(next.warnings.some((w) => w.includes(key)), `no warning names ${key}: ${next.warnings.join('; ')}`).toBe(true);
    expect(next.packsRewritten).toBe(2);
    // Those chunks are stored anew (counted as new, and as rewritten: they are no new content).
    const rewritten = files.reduce((n, f) => n + (f.immutable ? f.chunks.filter((c) => damaged.has(packOf(c))).length : 0), 0);
    expect(next.chunksRewritten).toBe(rewritten);
    expect(next.chunksNew).toBeGreaterThanOrEqual(rewritten);
    // Read again: exactly the chunks that lived in the damaged packs, and the mutable files (always read).
    const reread = files.reduce((sum, f) => sum + (f.immutable ? f.chunks.filter((c) => damaged.has(packOf(c))).reduce((n, c) => n + c.rawLength, 0) : f.size), 0);
    expect(next.bytesRead).toBe(reread);
    expect(next.filesReused).toBe(files.filter((f) => f.immutable && f.chunks.length > 0 && !f.chunks.some((c) => damaged.has(packOf(c)))).length);
    // The new checkpoint references neither damaged pack, verifies whole and restores the state.
    const referenced = new Set((await storedMetadata(copy, 2)).tasks.flatMap((t) => t.packs.map(([key]) => key)));
    for (const key of damaged) expect(referenced.has(key)).toBe(false);
    expect((await cp.verify({ store: parent, job: 'scrub', checkpoint: 2 })).ok).toBe(true);
    const target = join(await tempDir('restore'), 'out');
    await cp.restore({ store: parent, job: 'scrub', checkpoint: 2 }, target);
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
  });

  it('errors keep their kind and code across the worker boundary', async () => {
    // A pack read fails inside a worker; the coordinator sees the typed error, not a generic one.
    const copy = join(await tempDir('boundary'), 'scrub');
    await copyTree(join(store, 'scrub'), copy);
    const [task] = (await storedMetadata(copy, 1)).tasks;
    const pack = task?.packs.map(([key]) => key).find((key) => key.startsWith('shared/'));
    if (pack === undefined) throw new Error('test setup: no shared pack');
    await rm(objectPath(copy, pack));
    const error = await refusal(cp.restore({ path: join(copy, 'chk-1') }, join(await tempDir('restore'), 'out')));
    expect(error.constructor.name).toBe('CorruptDataError');
    expect(error.kind).toBe('corrupt_data');
    expect(error.code).toBe('CHUNK_MISSING');
    expect(error.details).toMatchObject({ pack });
    expect(error.message).toMatch(/chunk \d+ of \S+/);
  });
});
