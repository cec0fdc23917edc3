/**
 * Several tasks, one checkpoint: P task processes snapshot their own RocksDB
 * state into one job root and hand back task snapshots; one coordinator
 * commits the checkpoint; each task restores only its own state.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunkpoint, type TaskSnapshot } from '../src/index.js';
import { listFiles, mutateRocksState, refusal, removeTempDirs, rocksState, runCli, tempDir, treeDigest, type RocksState } from './support.js';

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
  expect((await refusal(promise)).code).toBe(code);
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

    // Task-private (mutable) files live under taskowned/<task>/, SSTs under shared/.
    const owned = await listFiles(join(store, 'multi', 'taskowned'));
    expect(new Set(owned.map((p) => p.split('/')[0]))).toEqual(new Set(TASKS));
    const report = await cp.inspect({ store, job: 'multi' });
    expect(report.tasks).toEqual(TASKS);
    const metadata = await readFile(join(store, 'multi', 'chk-1', '_metadata'));
    const body = JSON.parse(metadata.subarray(24).toString('utf8')) as { tasks: { task: string; files: { path: string; chunks: { handle: { area: string; name: string } }[] }[] }[] };
    for (const t of body.tasks) {
      for (const f of t.files) {
        const areas = new Set(f.chunks.map((c) => c.handle.area));
        if (f.path.endsWith('.sst')) expect([...areas]).toEqual(['shared']);
        else if (f.chunks.length > 0) {
          expect([...areas]).toEqual(['taskowned']);
          for (const c of f.chunks) expect(c.handle.name.startsWith(`${t.task}/`)).toBe(true);
        }
      }
    }
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
    const referenced = new Set<string>();
    for (const c of ['chk-2', 'chk-3']) {
      const body = JSON.parse((await readFile(join(store, 'multi', c, '_metadata'))).subarray(24).toString('utf8')) as { tasks: { files: { chunks: { handle: { area: string; name: string } }[] }[] }[] };
      for (const f of body.tasks.flatMap((t) => t.files)) for (const ch of f.chunks) referenced.add(`${ch.handle.area}/${ch.handle.name}`);
    }
    const stored = [...(await listFiles(join(store, 'multi', 'shared'))).map((p) => `shared/${p}`), ...(await listFiles(join(store, 'multi', 'taskowned'))).map((p) => `taskowned/${p}`)];
    expect(new Set(stored)).toEqual(referenced);
    for (const [i, task] of TASKS.entries()) {
      const target = join(await tempDir('restore'), task);
      await cp.restore({ store, job: 'multi' }, target, { task });
      expect(await treeDigest(target)).toEqual(await treeDigest((states[i] as RocksState).dir));
    }
  });

  it('refuses bad commits: duplicate task, another job, a tampered or stale task snapshot; a refused commit commits nothing', async () => {
    const a = await cp.snapshotTask((states[0] as RocksState).dir, { store, job: 'multi', task: 't0' });
    const b = await cp.snapshotTask((states[1] as RocksState).dir, { store, job: 'multi', task: 't1' });
    const before = (await cp.list({ store, job: 'multi' })).map((c) => c.checkpoint);
    await expectCode(cp.commit({ store, job: 'multi' }, [a, a]), 'DUPLICATE_TASK');
    await expectCode(cp.commit({ store, job: 'other' }, [a, b]), 'TASK_SNAPSHOT_WRONG_JOB');
    await expectCode(cp.commit({ store, job: 'multi' }, []), 'NO_TASK_SNAPSHOTS');
    const tampered = structuredClone(b);
    (tampered.files[0] as { path: string }).path = '../escape.sst';
    await expectCode(cp.commit({ store, job: 'multi' }, [a, tampered]), 'UNSAFE_PATH');
    const foreign = structuredClone(b);
    const chunk = foreign.files.flatMap((f) => f.chunks).find((c) => c.handle.area === 'taskowned');
    if (chunk === undefined) throw new Error('test setup: task t1 has no task-owned chunk');
    chunk.handle.name = chunk.handle.name.replace(/^t1\//, 't0/');
    await expectCode(cp.commit({ store, job: 'multi' }, [a, foreign]), 'INVALID_TASK_SNAPSHOT');
    const old = { ...a, createdAt: new Date(Date.now() - 2 * 3600_000).toISOString() };
    await expectCode(cp.commit({ store, job: 'multi' }, [old, b]), 'TASK_SNAPSHOT_EXPIRED');
    // A blob the task snapshot relies on is not in the store (collected meanwhile): refused, not committed.
    const missing = structuredClone(a);
    const fresh = missing.files.flatMap((f) => f.chunks).find((c) => c.handle.area === 'shared');
    if (fresh === undefined) throw new Error('test setup: task t0 has no shared chunk');
    fresh.handle.name = fresh.handle.name.replace(/[0-9a-f]{32}/, '0'.repeat(32));
    await expectCode(cp.commit({ store, job: 'multi' }, [missing, b]), 'TASK_SNAPSHOT_STALE');
    expect((await cp.list({ store, job: 'multi' })).map((c) => c.checkpoint)).toEqual(before);
    // The untouched pair still commits.
    expect((await cp.commit({ store, job: 'multi' }, [a, b])).tasks).toBe(2);
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
    expect(noTask.stderr).toMatch(/^chunkpoint: TASK_REQUIRED: .*t0, t1.*--task/);
    const r = await runCli(['restore', '--store', store, '--job', 'cli', '--task', 't1', target, '--json']);
    expect(r.code).toBe(0);
    expect(await treeDigest(target)).toEqual(await treeDigest((states[1] as RocksState).dir));
    await writeFile(join(dir, 'junk.json'), '{"format":"nope"}');
    const bad = await runCli(['commit', '--store', store, '--job', 'cli', join(dir, 'junk.json')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^chunkpoint: INVALID_TASK_SNAPSHOT: task snapshot #1: field \$\.format/);
  });
});
