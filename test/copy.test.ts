/**
 * `chunkpoint copy` between directory job roots (S3 directions are in
 * s3-roundtrip.test.ts): every checkpoint restores from the copy, a rerun
 * skips what is there, and bad sources and conflicting destinations are
 * refused before anything is written.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../src/format/ids.js';
import { Chunkpoint } from '../src/index.js';
import {
  checkpointFiles,
  isEmptyOrMissing,
  mutateRocksState,
  objectPath,
  packOf,
  referencedObjects,
  removeTempDirs,
  rocksState,
  runCli,
  storedObjects,
  storedPacks,
  tempDir,
  treeDigest,
  type FileInfo,
  type RocksState,
} from './support.js';

describe('copy between directory job roots (real RocksDB state)', () => {
  let cp: Chunkpoint;
  let state: RocksState;
  let store: string;
  let digests: Map<string, FileInfo>[];

  beforeAll(async () => {
    cp = new Chunkpoint({ threads: 2 });
    state = await rocksState(6 * 1024 * 1024, 61);
    store = await tempDir('copy-src');
    digests = [];
    await cp.snapshot(state.dir, { store, job: 'src' });
    digests.push(await treeDigest(state.dir));
    await mutateRocksState(state, 62);
    await cp.snapshot(state.dir, { store, job: 'src' });
    digests.push(await treeDigest(state.dir));
  });

  afterAll(async () => {
    await cp.close();
    await removeTempDirs();
  });

  it('copies every checkpoint (CLI, --json), each restores from the copy, and a rerun copies nothing', async () => {
    // An object no checkpoint references (a crashed snapshot's pack) stays behind: only what is referenced travels.
    const orphan = `shared/${newId()}-${newId()}.pack`;
    await writeFile(objectPath(join(store, 'src'), orphan), 'not referenced by any checkpoint');
    const dest = join(await tempDir('copy-dst'), 'moved');
    const first = await runCli(['copy', join(store, 'src'), dest, '--json', '--threads', '2']);
    expect(first.code, first.stderr).toBe(0);
    const result = JSON.parse(first.stdout) as Record<string, unknown>;
    expect(result['checkpointsCopied']).toEqual(['chk-1', 'chk-2']);
    // Exactly the packs and manifests the checkpoints reference, every pack verified on the way.
    const referenced = await referencedObjects(join(store, 'src'));
    expect(new Set(await storedObjects(dest))).toEqual(referenced);
    expect(result['objectsCopied']).toBe(referenced.size);
    expect(result['packsVerified']).toBe((await storedPacks(dest)).length);
    expect(result['packsVerified']).toBeGreaterThan(0);
    expect(result['objectsSkipped']).toBe(0);
    for (const [i, digest] of digests.entries()) {
      const target = join(await tempDir('copy-restore'), 'out');
      await cp.restore({ path: join(dest, `chk-${i + 1}`) }, target);
      expect(await treeDigest(target)).toEqual(digest);
    }
    const again = await cp.copy(join(store, 'src'), dest);
    expect(again.checkpointsCopied).toEqual([]);
    expect(again.checkpointsPresent).toEqual(['chk-1', 'chk-2']);
    expect(again.objectsCopied).toBe(0);
    expect(again.objectsSkipped).toBe(result['objectsCopied']);
    const text = await runCli(['copy', join(store, 'src'), dest]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^copied no new checkpoints from .* to .*\n {2}objects {3}0 copied/);
  });

  it('refuses a destination holding other checkpoints, and a source with a damaged blob or a missing pack, writing nothing', async () => {
    const other = await tempDir('copy-other');
    await cp.snapshot(state.dir, { store: other, job: 'else' });
    const conflict = await runCli(['copy', join(store, 'src'), join(other, 'else')]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^chunkpoint: COPY_CONFLICT: .*chk-1.*another job's history/);

    const damaged = await tempDir('copy-damaged');
    await cp.copy({ store, job: 'src' }, { store: damaged, job: 'src' });
    // The last byte of an SST chunk's blob, inside its pack (the pack's size stays right).
    const chunk = (await checkpointFiles(join(damaged, 'src'), 1)).flatMap((f) => f.chunks).find((c) => c.handle.area === 'shared');
    if (chunk === undefined) throw new Error('test setup: no chunk in shared/');
    const pack = objectPath(join(damaged, 'src'), packOf(chunk));
    const bytes = await readFile(pack);
    const last = chunk.handle.offset + chunk.handle.length - 1;
    bytes[last] = (bytes[last] ?? 0) ^ 0xff;
    await writeFile(pack, bytes);
    const dest = join(await tempDir('copy-dst'), 'never');
    const corrupt = await runCli(['copy', join(damaged, 'src'), dest]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(new RegExp(`^chunkpoint: CHUNK_CORRUPT: blob at ${chunk.handle.offset} of pack .*${packOf(chunk)}`));
    // No checkpoint became visible at the destination.
    expect(await isEmptyOrMissing(join(dest, 'chk-1'))).toBe(true);
    expect(await isEmptyOrMissing(join(dest, 'chk-2'))).toBe(true);

    // A pack gone from the source is found by its listing, before anything is written.
    await rm(pack);
    const gone = join(await tempDir('copy-dst'), 'never');
    const missing = await runCli(['copy', join(damaged, 'src'), gone]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(new RegExp(`^chunkpoint: SOURCE_DAMAGED: .*${packOf(chunk)}.* is missing`));
    expect(await isEmptyOrMissing(gone)).toBe(true);
  });

  it('takes the job roots as any spelling of an absolute path: trailing slash, doubled slashes, /., file:// (issue #16 item 11)', async () => {
    const src = join(store, 'src');
    const base = await tempDir('copy-paths');
    const spellings: [string, string][] = [
      [`${src}/`, `${join(base, 'a')}/`],
      [src.replace(/\//g, '//'), join(base, 'b').replace(/\//g, '//')],
      [`${src}/.`, `${join(base, 'c')}/.`],
      [`file://${src}/`, `file://${join(base, 'd')}`],
    ];
    for (const [from, to] of spellings) {
      const r = await runCli(['copy', from, to, '--json', '--threads', '1']);
      expect(r.code, `${from} -> ${to}: ${r.stderr}`).toBe(0);
      expect((JSON.parse(r.stdout) as { checkpointsCopied: string[] }).checkpointsCopied, from).toEqual(['chk-1', 'chk-2']);
    }
  });

  it('updates a copy made before retention removed its oldest checkpoints; an unreferenced corrupt orphan does not block; a pack with trailing bytes is damaged for verify and copy alike (issue #16 item 11)', async () => {
    const own = await rocksState(3 * 1024 * 1024, 65);
    const source = await tempDir('copy-history');
    const job = { store: source, job: 'h' };
    await cp.snapshot(own.dir, job);
    await mutateRocksState(own, 66);
    await cp.snapshot(own.dir, job);
    const backup = join(await tempDir('copy-backup'), 'h');
    expect((await cp.copy(job, { store: join(backup, '..'), job: 'h' })).checkpointsCopied).toEqual(['chk-1', 'chk-2']);
    // The source moves on and its retention removes chk-1 and chk-2.
    for (const seed of [67, 68]) {
      await mutateRocksState(own, seed);
      await cp.snapshot(own.dir, job, { retain: 2, graceMs: 0 });
    }
    expect((await cp.list(job)).map((c) => c.checkpoint)).toEqual(['chk-3', 'chk-4']);
    // An orphan at the source (a crashed snapshot's pack), corrupt: only referenced data decides a copy.
    await writeFile(join(source, 'h', 'shared', `${newId()}-${newId()}.pack`), 'not a pack at all');
    const update = await runCli(['copy', join(source, 'h'), backup, '--json', '--threads', '1']);
    expect(update.code, update.stderr).toBe(0);
    expect((JSON.parse(update.stdout) as { checkpointsCopied: string[] }).checkpointsCopied).toEqual(['chk-3', 'chk-4']);
    expect((await cp.list({ store: join(backup, '..'), job: 'h' })).map((c) => c.checkpoint)).toEqual(['chk-1', 'chk-2', 'chk-3', 'chk-4']);
    const restored = join(await tempDir('copy-restore'), 'out');
    await cp.restore({ path: join(backup, 'chk-4') }, restored);
    expect(await treeDigest(restored)).toEqual(await treeDigest(own.dir));

    // Trailing bytes after a pack's trailer: its size is not the recorded one, so it is not whole,
    // whichever command looks (restore too: hardening.test.ts, item 11).
    const pack = (await checkpointFiles(join(source, 'h'), 4)).flatMap((f) => f.chunks).map(packOf).find((key) => key.startsWith('shared/'));
    if (pack === undefined) throw new Error('test setup: chk-4 references no shared pack');
    await writeFile(objectPath(join(source, 'h'), pack), Buffer.concat([await readFile(objectPath(join(source, 'h'), pack)), Buffer.from('trailing')]));
    const verified = await runCli(['verify', join(source, 'h', 'chk-4')]);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toContain('PACK_SIZE');
    const copied = await runCli(['copy', join(source, 'h'), join(await tempDir('copy-dst'), 'x')]);
    expect(copied.code).toBe(1);
    expect(copied.stderr).toMatch(/^chunkpoint: SOURCE_DAMAGED: /);
    expect(copied.stderr).toContain(pack);
  });

  it('updates a copy after a checkpoint in the middle was dropped at the source: the source\'s fence says it removed that id (issue #16 item 11)', async () => {
    const own = await rocksState(3 * 1024 * 1024, 75);
    const source = await tempDir('copy-middle');
    const job = { store: source, job: 'm' };
    for (const seed of [76, 77, 78]) {
      await cp.snapshot(own.dir, job);
      await mutateRocksState(own, seed);
    }
    const backupStore = await tempDir('copy-backup');
    expect((await cp.copy(job, { store: backupStore, job: 'm' })).checkpointsCopied).toEqual(['chk-1', 'chk-2', 'chk-3']);
    // chk-2 is dropped at the source (damaged, say), and the source moves on.
    await cp.drop(job, 2);
    await cp.snapshot(own.dir, job);
    expect((await cp.list(job)).map((c) => c.checkpoint)).toEqual(['chk-1', 'chk-3', 'chk-4']);
    const update = await cp.copy(job, { store: backupStore, job: 'm' });
    expect(update.checkpointsCopied).toEqual(['chk-4']);
    expect(update.checkpointsPresent).toEqual(['chk-1', 'chk-3']);
    expect((await cp.list({ store: backupStore, job: 'm' })).map((c) => c.checkpoint)).toEqual(['chk-1', 'chk-2', 'chk-3', 'chk-4']);
    const restored = join(await tempDir('copy-restore'), 'out');
    await cp.restore({ store: backupStore, job: 'm' }, restored);
    expect(await treeDigest(restored)).toEqual(await treeDigest(own.dir));
    // A checkpoint the source never removed and does not have (past its newest) is still another history.
    const other = await tempDir('copy-other');
    await cp.copy(job, { store: other, job: 'm' });
    expect((await cp.snapshot(own.dir, { store: other, job: 'm' })).checkpoint).toBe('chk-5');
    await expect(cp.copy(job, { store: other, job: 'm' })).rejects.toMatchObject({ code: 'COPY_CONFLICT' });
  });

  it('is listed in --help, and usage errors exit 2', async () => {
    const help = await runCli(['--help']);
    expect(help.stdout).toMatch(/^ {2}copy +copy a job root/m);
    const copyHelp = await runCli(['copy', '--help']);
    expect(copyHelp.stdout).toContain('usage: chunkpoint copy <jobRoot> <otherStore>/<jobId>');
    const usage = await runCli(['copy', join(store, 'src')]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^chunkpoint: usage: copy takes exactly/);
  });
});
