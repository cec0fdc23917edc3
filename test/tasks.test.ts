/**
 * Several tasks, one checkpoint: P task processes snapshot their own RocksDB
 * state into one job root and hand back task snapshots; one coordinator
 * commits the checkpoint; each task restores only its own state.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHasher } from '../src/format/content-key.js';
import { decodeManifest, encodeManifest, manifestChecksum } from '../src/format/manifest.js';
import { parseStoreKey } from '../src/format/names.js';
import { Chunkpoint, type TaskSnapshot } from '../src/index.js';
import {
  checkpointManifests,
  listFiles,
  mutateRocksState,
  objectPath,
  referencedObjects,
  refusal,
  removeTempDirs,
  rocksState,
  runCli,
  storedObjects,
  tempDir,
  treeDigest,
  type RocksState,
} from './support.js';

const TASKS = ['t0', 't1', 't2', 't3'];

/** Runs one task snapshot in its own process, as a task of a real job would, and reads back what it handed over. */
async function taskProcess(state: RocksState, store: string, job: string, task: string): Promise<TaskSnapshot> {
  const file = join(await tempDir('handover'), `${task}.json`);
  const r = await runCli(['snapshot', state.dir, '--store', store, '--job', job, '--task', task, '--task-snapshot', file, '--threads', '1', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(await readFile(file, 'utf8')) as TaskSnapshot;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await refusal(promise);
  expect(error.code, error.message).toBe(code);
}

describe('a job of 4 tasks, each in its own process, committed by one coordinator', () => {
  let cp: Chunkpoint;
  let states: RocksState[];
  let store: string;

  beforeAll(async () => {
    cp = new Chunkpoint({ threads: 2 });
    states = [];
    for (const [i] of TASKS.entries()) states.push(await rocksState(3 * 1024 * 1024, 70 + i));
    store = await tempDir('store');
  });

  afterAll(async () => {
    await cp.close();
    await removeTempDirs();
  });

  it('commits one checkpoint from 4 task snapshots; each task restores only its own state; task-private files are in taskowned/', async () => {
    const parts = await Promise.all(TASKS.map((task, i) => taskProcess(states[i] as RocksState, store, 'multi', task)));
    // Nothing is visible before the coordinator commits.
    expect(await cp.list({ store, job: 'multi' })).toEqual([]);
    const committed = await cp.commit({ store, job: 'multi' }, parts);
    expect(committed.checkpoint).toBe('chk-1');
    expect(committed.tasks).toBe(4);
    expect(committed.files).toBe(parts.reduce((n, p) => n + p.figures.files, 0));

    for (const [i, task] of TASKS.entries()) {
      const target = join(await tempDir('restore'), task);
      const r = await cp.restore({ store, job: 'multi' }, target, { task });
      expect(r.task).toBe(task);
      expect(await treeDigest(target)).toEqual(await treeDigest((states[i] as RocksState).dir));
    }
    await expectCode(cp.restore({ store, job: 'multi' }, join(await tempDir('restore'), 'x')), 'TASK_REQUIRED');
    await expectCode(cp.restore({ store, job: 'multi' }, join(await tempDir('restore'), 'y'), { task: 't9' }), 'TASK_NOT_FOUND');

    // Task-private (mutable) files and each task's manifest live under taskowned/<task>/, SSTs under shared/.
    const owned = await listFiles(join(store, 'multi', 'taskowned'));
    expect(new Set(owned.map((p) => p.split('/')[0]))).toEqual(new Set(TASKS));
    const report = await cp.inspect({ store, job: 'multi' });
    expect(report.tasks).toEqual(TASKS);
    const manifests = await checkpointManifests(join(store, 'multi'), 1);
    expect(manifests.map((m) => m.entry.task)).toEqual(TASKS);
    for (const { entry, manifest } of manifests) {
      expect(entry.manifest.key.startsWith(`taskowned/${entry.task}/`)).toBe(true);
      // A task references shared packs and its own task-owned ones, never another task's.
      for (const p of entry.packs) {
        const parsed = parseStoreKey(p.key);
        expect(parsed?.kind).toBe('pack');
        if (parsed?.kind === 'pack' && parsed.area === 'taskowned') expect(parsed.task).toBe(entry.task);
      }
      for (const f of manifest.files) {
        const areas = new Set(f.chunks.map((c) => c.handle.area));
        if (f.path.endsWith('.sst')) expect([...areas]).toEqual(['shared']);
        else if (f.chunks.length > 0) {
          expect([...areas]).toEqual(['taskowned']);
          for (const c of f.chunks) expect(c.handle.name.startsWith(`${entry.task}/`)).toBe(true);
        }
      }
    }
    // The commit ended the tasks' writer sessions.
    expect(await listFiles(join(store, 'multi', 'sessions'))).toEqual([]);
  });

  it('the next checkpoint reuses unchanged SSTs per task, and retention plus gc keep exactly what the retained checkpoints need', async () => {
    for (const round of [1, 2]) {
      // Two of the four tasks change their state each round (compaction: new and rewritten SSTs).
      await mutateRocksState(states[round % 4] as RocksState, 300 + round);
      await mutateRocksState(states[(round + 1) % 4] as RocksState, 400 + round);
      // In-process this time (the first test covers separate processes): four task snapshots share one pool.
      const parts = await Promise.all(TASKS.map((task, i) => cp.snapshotTask((states[i] as RocksState).dir, { store, job: 'multi', task })));
      // Unchanged tasks read nothing new but their mutable files.
      const unchanged = parts.filter((_, i) => i !== round % 4 && i !== (round + 1) % 4);
      for (const p of unchanged) expect(p.figures.filesReused).toBeGreaterThan(0);
      const committed = await cp.commit({ store, job: 'multi' }, parts, { retain: 2, graceMs: 0 });
      expect(committed.checkpoint).toBe(`chk-${round + 1}`);
    }
    expect((await cp.list({ store, job: 'multi' })).map((c) => c.checkpoint)).toEqual(['chk-2', 'chk-3']);
    await cp.gc({ store, job: 'multi' }, { graceMs: 0 });
    // Exactly the packs and manifests chk-2 and chk-3 reference are left.
    const referenced = await referencedObjects(join(store, 'multi'));
    expect(referenced.size).toBeGreaterThan(TASKS.length * 2);
    expect(new Set(await storedObjects(join(store, 'multi')))).toEqual(referenced);
    for (const [i, task] of TASKS.entries()) {
      const target = join(await tempDir('restore'), task);
      await cp.restore({ store, job: 'multi' }, target, { task });
      expect(await treeDigest(target)).toEqual(await treeDigest((states[i] as RocksState).dir));
    }
  });

  it('refuses bad commits: duplicate, missing or mixed tasks, another job, a tampered, expired or stale task snapshot; a refused commit commits nothing', async () => {
    const take = (i: number, options: { leaseMs?: number } = {}): Promise<TaskSnapshot> =>
      cp.snapshotTask((states[i] as RocksState).dir, { store, job: 'multi', task: TASKS[i] as string }, options);
    const [a, b, c, d] = await Promise.all(TASKS.map((_, i) => take(i)));
    if (a === undefined || b === undefined || c === undefined || d === undefined) throw new Error('test setup: missing task snapshot');
    const before = (await cp.list({ store, job: 'multi' })).map((x) => x.checkpoint);
    await expectCode(cp.commit({ store, job: 'multi' }, [a, a, b, c, d]), 'DUPLICATE_TASK');
    await expectCode(cp.commit({ store, job: 'other' }, [a, b, c, d]), 'TASK_SNAPSHOT_WRONG_JOB');
    await expectCode(cp.commit({ store, job: 'multi' }, []), 'NO_TASK_SNAPSHOTS');
    // The base has four tasks: a commit of two would leave t2 and t3 without any checkpoint once retention ran.
    const missingTasks = await refusal(cp.commit({ store, job: 'multi' }, [a, b]));
    expect(missingTasks.code).toBe('TASK_MISSING');
    expect(missingTasks.details).toMatchObject({ tasks: 't2,t3' });
    expect(missingTasks.message).toContain('say so (`dropTasks`)');
    expect(missingTasks.message).not.toContain('--drop-task');

    const tampered = structuredClone(b);
    tampered.manifest.key = 'taskowned/t1/../../escape.manifest';
    await expectCode(cp.commit({ store, job: 'multi' }, [a, tampered, c, d]), 'INVALID_TASK_SNAPSHOT');
    // Task t1 claiming a pack private to task t0.
    const foreign = structuredClone(b);
    const owned = foreign.packs.find((p) => p.key.startsWith('taskowned/t1/'));
    if (owned === undefined) throw new Error('test setup: task t1 references no task-owned pack');
    owned.key = owned.key.replace(/^taskowned\/t1\//, 'taskowned/t0/');
    await expectCode(cp.commit({ store, job: 'multi' }, [a, foreign, c, d]), 'INVALID_TASK_SNAPSHOT');
    // A task snapshot that does not match its manifest (a pack left out).
    const trimmed = structuredClone(b);
    trimmed.packs.pop();
    await expectCode(cp.commit({ store, job: 'multi' }, [a, trimmed, c, d]), 'INVALID_TASK_SNAPSHOT');

    // A manifest rewritten (validly encoded, checksum matching the task snapshot) whose handle of a chunk in a
    // pack the base already references has the wrong length: its pack's own index says otherwise (issue #16 item 10).
    const bent = await take(3);
    const hasher = await loadHasher();
    const manifestFile = objectPath(join(store, 'multi'), bent.manifest.key);
    const manifest = decodeManifest(await readFile(manifestFile), hasher, manifestFile, { task: bent.task, session: bent.session });
    const chunk = manifest.files.flatMap((f) => f.chunks).find((ch) => !ch.handle.name.includes(bent.session));
    if (chunk === undefined) throw new Error('test setup: task t3 reuses no chunk of its base');
    chunk.handle.length += 1;
    const encoded = encodeManifest(manifest, hasher);
    await writeFile(manifestFile, encoded);
    const bentSnapshot = { ...bent, manifest: { ...bent.manifest, size: encoded.byteLength, checksum: manifestChecksum(encoded) } };
    const bentError = await refusal(cp.commit({ store, job: 'multi' }, [a, b, c, bentSnapshot]));
    expect(bentError.code, bentError.message).toBe('INVALID_TASK_SNAPSHOT');
    expect(bentError.message).toContain("pack's index lists with another key or length");

    // The same with a chunk's content key changed (item 10a): a manifest whose key the pack's trailer does not
    // list at that handle would restore a chunk that fails verification, so it is refused at the commit.
    const rekeyed = await take(3);
    const rekeyedFile = objectPath(join(store, 'multi'), rekeyed.manifest.key);
    const rekeyedManifest = decodeManifest(await readFile(rekeyedFile), hasher, rekeyedFile, { task: rekeyed.task, session: rekeyed.session });
    const file = rekeyedManifest.files.find((f) => f.chunks.length > 0);
    const first = file?.chunks[0];
    if (file === undefined || first === undefined) throw new Error('test setup: task t3 has no chunk');
    first.key = `${first.key.startsWith('0') ? '1' : '0'}${first.key.slice(1)}`;
    const rekeyedEncoded = encodeManifest(rekeyedManifest, hasher);
    await writeFile(rekeyedFile, rekeyedEncoded);
    const rekeyedSnapshot = { ...rekeyed, manifest: { ...rekeyed.manifest, size: rekeyedEncoded.byteLength, checksum: manifestChecksum(rekeyedEncoded) } };
    const rekeyedError = await refusal(cp.commit({ store, job: 'multi' }, [a, b, c, rekeyedSnapshot]));
    expect(rekeyedError.code, rekeyedError.message).toBe('INVALID_TASK_SNAPSHOT');
    expect(rekeyedError.message).toContain(`references chunk 0 of ${file.path} at offset ${first.handle.offset} of pack ${first.handle.area}/${first.handle.name}, which that pack's index lists with another key or length`);

    // A task whose session's lease ran out: gc may have taken its packs. What the task snapshot claims does not matter.
    const short = await take(2, { leaseMs: 1000 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await expectCode(cp.commit({ store, job: 'multi' }, [a, b, short, d]), 'TASK_SNAPSHOT_EXPIRED');
    await expectCode(cp.commit({ store, job: 'multi' }, [a, b, { ...short, expiresAt: new Date(Date.now() + 3600_000).toISOString() }, d]), 'TASK_SNAPSHOT_EXPIRED');

    // A pack the task snapshot relies on is not in the store (collected, or lost): refused, not committed.
    await mutateRocksState(states[0] as RocksState, 500);
    const fresh = await take(0);
    const own = fresh.packs.find((p) => parseStoreKey(p.key)?.kind === 'pack' && p.key.includes(fresh.session));
    if (own === undefined) throw new Error('test setup: the changed task wrote no pack');
    await rm(objectPath(join(store, 'multi'), own.key));
    await expectCode(cp.commit({ store, job: 'multi' }, [fresh, b, c, d]), 'TASK_SNAPSHOT_STALE');
    // Its manifest gone: the same.
    const again = await take(0);
    await rm(objectPath(join(store, 'multi'), again.manifest.key));
    await expectCode(cp.commit({ store, job: 'multi' }, [again, b, c, d]), 'TASK_SNAPSHOT_STALE');
    expect((await cp.list({ store, job: 'multi' })).map((x) => x.checkpoint)).toEqual(before);

    // The untouched set still commits.
    const committed = await cp.commit({ store, job: 'multi' }, [a, b, c, d]);
    expect(committed.tasks).toBe(4);
    // Task snapshots taken after different commits do not mix; a task gone for good is dropped only when said so.
    const [e0, e1] = await Promise.all([take(0), take(1)]);
    if (e0 === undefined || e1 === undefined) throw new Error('test setup: missing task snapshot');
    expect(e0.checkpointId).toBe(committed.checkpointId + 1);
    await expectCode(cp.commit({ store, job: 'multi' }, [e0, e1, c, d]), 'TASK_SNAPSHOTS_MIXED');
    await expectCode(cp.commit({ store, job: 'multi' }, [e0, e1]), 'TASK_MISSING');
    const scaledDown = await cp.commit({ store, job: 'multi' }, [e0, e1], { dropTasks: ['t2', 't3'] });
    expect(scaledDown.tasks).toBe(2);
    expect((await cp.inspect({ store, job: 'multi' })).tasks).toEqual(['t0', 't1']);
  });

  it('CLI: commit from task snapshot files, restore --task', async () => {
    const dir = await tempDir('cli');
    const files: string[] = [];
    for (const [i, task] of TASKS.slice(0, 2).entries()) {
      const file = join(dir, `${task}.json`);
      const r = await runCli(['snapshot', (states[i] as RocksState).dir, '--store', store, '--job', 'cli', '--task', task, '--task-snapshot', file]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`task '${task}' snapshot written to ${file}`);
      files.push(file);
    }
    const commit = await runCli(['commit', '--store', store, '--job', 'cli', ...files, '--json']);
    expect(commit.stderr).toBe('');
    expect((JSON.parse(commit.stdout) as { checkpoint: string; tasks: number }).tasks).toBe(2);
    const target = join(dir, 'out');
    const noTask = await runCli(['restore', '--store', store, '--job', 'cli', target]);
    expect(noTask.code).toBe(1);
    expect(noTask.stderr).toMatch(/^chunkpoint: TASK_REQUIRED: .*t0, t1.*pick the one to restore \(--task\)$/m);
    const r = await runCli(['restore', '--store', store, '--job', 'cli', '--task', 't1', target, '--json']);
    expect(r.code).toBe(0);
    expect(await treeDigest(target)).toEqual(await treeDigest((states[1] as RocksState).dir));
    await writeFile(join(dir, 'junk.json'), '{"format":"nope"}');
    const bad = await runCli(['commit', '--store', store, '--job', 'cli', join(dir, 'junk.json')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^chunkpoint: INVALID_TASK_SNAPSHOT: task snapshot #1: field \$\.format/);
  });
});
