import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHasher } from '../src/format/content-key.js';
import { newId } from '../src/format/ids.js';
import { parseStoreKey } from '../src/format/names.js';
import { encodeSession } from '../src/format/session.js';
import { Chunkpoint, type GcResult } from '../src/index.js';
import { prng } from '../src/random.js';
import { CLI, committedIds, copyTree, listFiles, mutateRocksState, objectPath, referencedObjects, refusal, rocksState, removeTempDirs, runCli, storedObjects, tempDir, treeDigest, type RocksState } from './support.js';

/** Every pack and manifest stored is one a committed checkpoint references (nothing leaked, nothing missing), and no session is left. */
async function expectOnlyReferenced(jobRoot: string): Promise<void> {
  const referenced = await referencedObjects(jobRoot);
  expect(new Set(await storedObjects(jobRoot))).toEqual(referenced);
  expect(await listFiles(join(jobRoot, 'sessions'))).toEqual([]);
}

/** Writes a session object as a snapshot task in flight (or one that died) would have left it. */
async function plantSession(jobRoot: string, session: string, startedAt: number, expiresAt: number): Promise<void> {
  const record = {
    formatVersion: 2 as const,
    session,
    jobId: 'gc',
    task: 'main',
    base: 1,
    checkpointId: 2,
    startedAt: new Date(startedAt).toISOString(),
    expiresAt: new Date(expiresAt).toISOString(),
    leaseMs: 600_000,
    holder: `${hostname()} pid ${process.pid}`,
  };
  await mkdir(join(jobRoot, 'sessions'), { recursive: true });
  await writeFile(objectPath(jobRoot, `sessions/${session}`), encodeSession(record, await loadHasher()));
}

describe('checkpoint lifecycle (real RocksDB state)', () => {
  let cp: Chunkpoint;
  let state: RocksState;

  beforeAll(async () => {
    cp = new Chunkpoint({ threads: 2 });
    state = await rocksState(6 * 1024 * 1024, 51);
  });

  afterAll(async () => {
    await cp.close();
    await removeTempDirs();
  });

  it('retention over 10 incremental checkpoints with N=2 keeps exactly 2, intact; gc leaves no unreferenced blob', async () => {
    const local = await rocksState(4 * 1024 * 1024, 52);
    const store = await tempDir('store');
    const digests = new Map<string, Awaited<ReturnType<typeof treeDigest>>>();
    for (let i = 1; i <= 10; i++) {
      if (i > 1) await mutateRocksState(local, 100 + i);
      const snap = await cp.snapshot(local.dir, { store, job: 'ret' }, { retain: 2, graceMs: 0 });
      digests.set(snap.checkpoint, await treeDigest(local.dir));
      if (i > 2) expect(snap.checkpointsRemoved).toEqual([`chk-${i - 2}`]);
    }
    const jobRoot = join(store, 'ret');
    expect(await committedIds(jobRoot)).toEqual([9, 10]);
    // Of the removed checkpoints only the fence is left: the tombstone of the highest id ever removed.
    expect((await readdir(jobRoot)).filter((n) => n.startsWith('chk-')).sort()).toEqual(['chk-10', 'chk-8', 'chk-9']);
    expect(await readdir(join(jobRoot, 'chk-8'))).toEqual(['_removed']);
    // Retention already freed what only the removed checkpoints referenced: gc finds nothing left to do.
    await expectOnlyReferenced(jobRoot);

    const gc = await cp.gc({ store, job: 'ret' }, { graceMs: 0 });
    expect(gc.checkpointsKept).toBe(2);
    expect(gc).toMatchObject({ packsRemoved: 0, manifestsRemoved: 0, incompleteRemoved: 0, unknownObjects: 0 });
    await expectOnlyReferenced(jobRoot);
    for (const c of ['chk-9', 'chk-10']) {
      const target = join(await tempDir('restore'), c);
      await cp.restore({ store, job: 'ret', checkpoint: Number(c.slice(4)) }, target);
      expect(await treeDigest(target)).toEqual(digests.get(c));
    }
  });

  it('gc removes objects of dead sessions older than the grace period, keeps young ones, live sessions\' and unknown ones, and honours --dry-run', async () => {
    const store = await tempDir('store');
    await cp.snapshot(state.dir, { store, job: 'gc' });
    const jobRoot = join(store, 'gc');
    const now = Date.now();
    const old = now - 2 * 3600_000;
    // Ages come from the time in the names (ULIDs), never from mtimes.
    const deadSession = newId(now - 3 * 3600_000);
    const liveSession = newId(old);
    const orphans = {
      // A crashed snapshot's pack: its session is gone.
      oldPack: `shared/${newId(old)}-${newId(old)}.pack`,
      // A dead session (lease ran out long ago) and its pack.
      deadPack: `taskowned/main/${newId(old)}-${deadSession}.pack`,
      oldManifest: `taskowned/main/${newId(old)}.manifest`,
      // Unreferenced, but younger than the grace period.
      youngPack: `shared/${newId(now)}-${newId(now)}.pack`,
      // Old, but its session holds a live lease: a long snapshot in flight.
      livePack: `shared/${newId(old)}-${liveSession}.pack`,
      // Interrupted writes: a temp file, and a commit that never linked its _metadata.
      tempOld: `shared/.tmp-${newId(old)}-crashed`,
      abortedCommit: `chk-2/.tmp-${newId(old)}-_metadata`,
      // Not chunkpoint's (a format-1 blob, a stray file): counted, never deleted.
      format1: `shared/ff/${'f'.repeat(32)}-10`,
      stray: 'taskowned/README',
    };
    for (const key of Object.values(orphans)) {
      await mkdir(join(objectPath(jobRoot, key), '..'), { recursive: true });
      await writeFile(objectPath(jobRoot, key), 'orphan!!!!');
    }
    await plantSession(jobRoot, deadSession, now - 3 * 3600_000, old);
    await plantSession(jobRoot, liveSession, old, now + 600_000);
    const expected = { packsRemoved: 2, manifestsRemoved: 1, sessionsRemoved: 1, incompleteRemoved: 2, youngKept: 1, liveKept: 1, unknownObjects: 2 };

    const dry = await cp.gc({ store, job: 'gc' }, { dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, ...expected, bytesFreed: 30 });
    expect(dry.unknownExamples.sort()).toEqual([orphans.format1, orphans.stray].sort());
    for (const key of Object.values(orphans)) await expect(readFile(objectPath(jobRoot, key))).resolves.toBeDefined();
    expect(await listFiles(join(jobRoot, 'sessions'))).toHaveLength(2);

    const real = await cp.gc({ store, job: 'gc' });
    expect(real).toMatchObject({ dryRun: false, ...expected, bytesFreed: 30 });
    for (const key of [orphans.oldPack, orphans.deadPack, orphans.oldManifest, orphans.tempOld, orphans.abortedCommit]) {
      await expect(readFile(objectPath(jobRoot, key)), key).rejects.toThrow();
    }
    for (const key of [orphans.youngPack, orphans.livePack, orphans.format1, orphans.stray]) await expect(readFile(objectPath(jobRoot, key)), key).resolves.toBeDefined();
    expect(await listFiles(join(jobRoot, 'sessions'))).toEqual([liveSession]);
    expect((await readdir(jobRoot)).includes('chk-2')).toBe(false);
    const target = join(await tempDir('restore'), 'out');
    await cp.restore({ store, job: 'gc' }, target);
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
  });

  it('two writers racing to commit the same checkpoint number: exactly one wins, no _metadata is overwritten', async () => {
    const store = await tempDir('store');
    await cp.snapshot(state.dir, { store, job: 'race' });
    const other = await rocksState(6 * 1024 * 1024, 53);
    const second = new Chunkpoint({ threads: 2 });
    try {
      const results = await Promise.allSettled([cp.snapshot(state.dir, { store, job: 'race' }), second.snapshot(other.dir, { store, job: 'race' })]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]?.reason).toMatchObject({ kind: 'conflict', code: 'CHECKPOINT_EXISTS' });
      const winnerState = results[0]?.status === 'fulfilled' ? state.dir : other.dir;
      const target = join(await tempDir('restore'), 'out');
      await cp.restore({ store, job: 'race', checkpoint: 2 }, target);
      expect(await treeDigest(target)).toEqual(await treeDigest(winnerState));
    } finally {
      await second.close();
    }
  });

  it('a copied job root does not delete checkpoints it does not own unless claimed', async () => {
    const store = await tempDir('store');
    await cp.snapshot(state.dir, { store, job: 'origin' });
    await copyTree(join(store, 'origin'), join(store, 'fork'));
    const local = await rocksState(4 * 1024 * 1024, 54);
    for (let i = 0; i < 3; i++) {
      await mutateRocksState(local, 200 + i);
      await cp.snapshot(local.dir, { store, job: 'fork' }, { retain: 1, graceMs: 0 });
    }
    const gc = await cp.gc({ store, job: 'fork' }, { retain: 1, graceMs: 0 });
    expect(gc.checkpointsNotOwned).toBe(1);
    expect(await committedIds(join(store, 'fork'))).toEqual([1, 4]);
    const target = join(await tempDir('restore'), 'out');
    await cp.restore({ store, job: 'fork', checkpoint: 1 }, target);
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));

    const claimed = await cp.gc({ store, job: 'fork' }, { retain: 1, graceMs: 0, claim: true });
    expect(claimed.checkpointsRemoved).toEqual(['chk-1']);
    expect(await committedIds(join(store, 'fork'))).toEqual([4]);
    await cp.gc({ store, job: 'fork' }, { graceMs: 0 });
    await expectOnlyReferenced(join(store, 'fork'));
  });

  it('an aborted snapshot commits nothing, leaves nothing behind, and the next snapshot succeeds', async () => {
    const store = await tempDir('store');
    const controller = new AbortController();
    // Aborted mid-snapshot: as soon as the first pack batch has stored chunks (small packs: several batches), before anything is published.
    const aborting = new Chunkpoint({
      threads: 2,
      progressIntervalMs: 0,
      onEvent: (e) => {
        if (e.type === 'snapshot.progress' && e.chunksNew > 0) controller.abort(new Error('stop'));
      },
    });
    try {
      const error = await refusal(aborting.snapshot(state.dir, { store, job: 'abort' }, { signal: controller.signal, chunkSize: 64 * 1024, packSize: 1024 * 1024 }));
      expect(controller.signal.aborted).toBe(true);
      expect(error.code, error.message).toBe('ABORTED');
      // Settled means stopped: no task of it still writes (the other jobs in flight saw the abort and cleaned up).
      const atRejection = await listFiles(join(store, 'abort'));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await listFiles(join(store, 'abort'))).toEqual(atRejection);
    } finally {
      await aborting.close();
    }
    expect(await cp.list({ store, job: 'abort' })).toEqual([]);
    // Its session ended on the way out, and no manifest was written. Packs a worker was writing when the abort
    // stopped it may be left (as a crash leaves them): all of the aborted session, for gc.
    const left = await listFiles(join(store, 'abort'));
    const sessions = new Set<string>();
    for (const key of left) {
      const parsed = parseStoreKey(key);
      const pack = parsed?.kind === 'temp' ? parseStoreKey(parsed.target) : parsed;
      expect(pack?.kind, key).toBe('pack');
      if (pack?.kind === 'pack') sessions.add(pack.session);
    }
    expect(sessions.size).toBeLessThanOrEqual(1);
    const next = await cp.snapshot(state.dir, { store, job: 'abort' });
    expect(next.checkpoint).toBe('chk-1');
    const gc = await cp.gc({ store, job: 'abort' }, { graceMs: 0 });
    await expectOnlyReferenced(join(store, 'abort'));
    expect(gc.checkpointsKept).toBe(1);
  });

  it('gc running concurrently with a slow snapshot in another process loses nothing, without any grace period: the lease protects it', async () => {
    const big = await rocksState(16 * 1024 * 1024, 55);
    const store = await tempDir('store');
    await cp.snapshot(state.dir, { store, job: 'slow' });
    // One thread and small chunks: thousands of tasks, so gc runs many times meanwhile.
    const child = spawn(process.execPath, [CLI, 'snapshot', big.dir, '--store', store, '--job', 'slow', '--threads', '1', '--chunk-size', '64KiB', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let done = false;
    void exited.then(() => (done = true));
    const runs: GcResult[] = [];
    while (!done) {
      // No grace period at all: what the snapshot in flight wrote is kept because its session is live.
      runs.push(await cp.gc({ store, job: 'slow' }, { graceMs: 0 }));
    }
    expect(await exited, stderr).toBe(0);
    expect(runs.length).toBeGreaterThan(0);
    // gc did see the snapshot's objects (packs being written, or written and not yet committed) and kept them.
    expect(runs.some((r) => r.liveKept > 0)).toBe(true);
    expect(runs.every((r) => r.packsRemoved === 0 && r.manifestsRemoved === 0)).toBe(true);
    expect((JSON.parse(stdout) as { checkpoint: string }).checkpoint).toBe('chk-2');
    const target = join(await tempDir('restore'), 'out');
    await cp.restore({ store, job: 'slow' }, target);
    expect(await treeDigest(target)).toEqual(await treeDigest(big.dir));
    await cp.gc({ store, job: 'slow' }, { graceMs: 0 });
    await expectOnlyReferenced(join(store, 'slow'));
  });
});

describe('crash safety: snapshot processes killed with SIGKILL at random moments', () => {
  // Process start-ups dominate (20+ of them); a slow CI machine needs several minutes.
  it('leaves only complete checkpoints; the latest restores; the next snapshot and gc reclaim the orphans', async () => {
    const seed = Number(process.env['CHUNKPOINT_SEED'] ?? 20261121);
    const LEASE_S = 3;
    const kills = Number(process.env['CHUNKPOINT_KILLS'] ?? 20);
    console.log(`crash test seed=${seed} kills=${kills} (replay: CHUNKPOINT_SEED=${seed} npm test)`);
    const random = prng(seed);
    const states = [await rocksState(6 * 1024 * 1024, 61), await rocksState(6 * 1024 * 1024, 62)];
    const digests = await Promise.all(states.map((s) => treeDigest(s.dir)));
    const store = await tempDir('store');

    // How long an uninterrupted snapshot takes here, so kills land before, during and after the commit.
    const t0 = performance.now();
    const first = await runCli(['snapshot', (states[0] as RocksState).dir, '--store', store, '--job', 'crash', '--json']);
    expect(first.code).toBe(0);
    const typicalMs = performance.now() - t0;
    const committedFrom = new Map<string, number>([['chk-1', 0]]);

    let killed = 0;
    // Kills land within this window; it narrows whenever a run finished before its kill. The first, full
    // snapshot can take much longer than the later ones (how much depends on the Node version, the disk and
    // the load), and then most runs would commit before their kill: seen on Node 24 under load.
    let windowMs = typicalMs;
    // Until `kills` processes died by SIGKILL (some finish before their kill lands: those commit).
    for (let i = 0; killed < kills && i < kills * 4; i++) {
      const which = Math.floor(random() * 2);
      // Most of a run is process start-up; aim the kills at the part that writes blobs and commits.
      const delay = Math.floor(windowMs * (0.3 + 0.7 * random()));
      // A short lease, so that the sessions of the killed processes are dead by the end of the test (and gc may take their packs).
      const child = spawn(process.execPath, [CLI, 'snapshot', (states[which] as RocksState).dir, '--store', store, '--job', 'crash', '--chunk-size', '256KiB', '--lease', `${LEASE_S}s`, '--json'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.kill('SIGKILL');
      const code = await closed;
      if (code === null) killed++;
      if (code === 0) {
        const r = JSON.parse(out) as { checkpoint: string };
        committedFrom.set(r.checkpoint, which);
        windowMs *= 0.85;
      }
      // Invariant after every kill: every visible checkpoint is complete and verifies.
      const cp = new Chunkpoint({ threads: 2 });
      try {
        const list = await cp.list({ store, job: 'crash' });
        expect(list.length).toBeGreaterThan(0);
        const latest = list.at(-1);
        if (latest !== undefined && i % 5 === 4) {
          const target = join(await tempDir('restore'), `kill-${i}`);
          await cp.restore({ store, job: 'crash' }, target);
          const from = committedFrom.get(latest.checkpoint);
          // A checkpoint committed just before the kill landed has no recorded source; it must equal one of the states.
          const actual = JSON.stringify([...(await treeDigest(target))]);
          const candidates = from === undefined ? digests : [digests[from]];
          expect(candidates.some((d) => d !== undefined && JSON.stringify([...d]) === actual)).toBe(true);
        }
      } finally {
        await cp.close();
      }
    }
    expect(killed).toBe(kills);

    // Every killed session's lease has run out (plus its clock margin, a quarter of it): its objects are now gc's.
    await new Promise((resolve) => setTimeout(resolve, LEASE_S * 1250 + 500));
    const cp = new Chunkpoint({ threads: 2 });
    try {
      const next = await cp.snapshot((states[0] as RocksState).dir, { store, job: 'crash' }, { retain: 100 });
      // No writer runs any more: even an interrupted session or metadata write (kept 10 minutes by default) may go.
      const gc = await cp.gc({ store, job: 'crash' }, { graceMs: 0, writeGraceMs: 0 });
      console.log(
        `crash test: ${killed} kills, ${committedFrom.size} snapshots committed (incl. the first), gc reclaimed ${gc.packsRemoved} packs, ${gc.manifestsRemoved} manifests, ${gc.sessionsRemoved} sessions + ${gc.incompleteRemoved} interrupted writes`,
      );
      expect(gc.liveKept).toBe(0);
      await expectOnlyReferenced(join(store, 'crash'));
      const target = join(await tempDir('restore'), 'final');
      await cp.restore({ store, job: 'crash', checkpoint: next.checkpointId }, target);
      expect(await treeDigest(target)).toEqual(digests[0]);
    } finally {
      await cp.close();
      await removeTempDirs();
    }
  }, 900_000);
});
