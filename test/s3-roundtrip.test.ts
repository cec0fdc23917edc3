/**
 * End to end on a real S3 server (Ceph RGW) and real RocksDB SST data:
 * snapshot to S3 and restore from it (with the local cache), relocation
 * directory → S3 → directory (API and CLI), and snapshots whose S3 calls
 * fail on purpose (seeded faults): they commit correctly thanks to retries,
 * or fail cleanly with the previous checkpoint intact.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedCheckpointIds } from '../src/checkpoint.js';
import { loadHasher } from '../src/format/content-key.js';
import { ChunkpointError } from '../src/errors.js';
import { Chunkpoint } from '../src/index.js';
import { WorkerPool } from '../src/pool.js';
import { snapshot } from '../src/snapshot/index.js';
import { injectedInThisThread, withFaults } from '../sim/faulty-store.js';
import { jobRootSpec, openStore } from '../src/store/open.js';
import type { StoreSpec } from '../src/store/store.js';
import { skipS3, startS3Server, TEST_BUCKET, type S3Server } from './s3-server.js';
import { mutateRocksState, removeTempDirs, rocksState, runCli, tempDir, treeDigest, type FileInfo, type RocksState } from './support.js';

/** These tests move real data through a real server on a small shared machine: allow them time (no timing is asserted). */
const SLOW = 600_000;
const SEED = Number(process.env['CHUNKPOINT_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

describe.skipIf(skipS3('S3 end-to-end tests (test/s3-roundtrip.test.ts)'))('snapshot, restore and copy through S3 (Ceph RGW, real RocksDB state)', () => {
  let server: S3Server;
  let cp: Chunkpoint;
  let state: RocksState;
  let run = 0;
  let snapshotted: { location: string; digest1: Map<string, FileInfo> } | undefined;
  const store = (): string => `s3://${TEST_BUCKET}/e2e-${Date.now()}-${run++}`;

  beforeAll(async () => {
    server = await startS3Server();
    cp = new Chunkpoint({ threads: 2 });
    state = await rocksState(12 * 1024 * 1024, 71);
  });

  afterAll(async () => {
    await cp?.close();
    await server?.stop();
    await removeTempDirs();
  });

  it('snapshots to S3 and restores byte-identical; a cached second restore reads nothing remote; incremental checkpoints', async () => {
    const location = store();
    const job = { store: location, job: 'orders' };
    const before = await server.requests();
    const first = await cp.snapshot(state.dir, job);
    // The gateway's own counter (read over its admin socket, not over S3).
    const requestsFirst = (await server.requests()) - before;
    expect(first.checkpoint).toBe('chk-1');
    expect(first.compressionRatio).toBeGreaterThan(1.5);
    const digest1 = await treeDigest(state.dir);

    const cache = { dir: await tempDir('s3-cache') };
    const target = join(await tempDir('s3-restore'), 'out');
    const restored = await cp.restore(job, target, { cache });
    expect(await treeDigest(target)).toEqual(digest1);
    expect(restored.bytesFromRemote).toBeGreaterThan(0);
    const again = join(await tempDir('s3-restore'), 'again');
    const cached = await cp.restore(job, again, { cache });
    expect(cached.bytesFromRemote).toBe(0);
    expect(cached.bytesFromCache).toBeGreaterThan(0);
    expect(await treeDigest(again)).toEqual(digest1);

    await mutateRocksState(state, 72);
    // The SSTs RocksDB left untouched (its compaction decides how many) are what the snapshot reuses.
    const kept = [...(await treeDigest(state.dir))].filter(([name, info]) => name.endsWith('.sst') && digest1.get(name)?.size === info.size);
    const mid = await server.requests();
    const second = await cp.snapshot(state.dir, job);
    const requestsSecond = (await server.requests()) - mid;
    expect(second.checkpoint).toBe('chk-2');
    expect(second.filesReused).toBe(kept.length);
    if (kept.length > 0) expect(second.bytesRead).toBeLessThan(first.bytesRead);
    console.log(
      `S3 requests per checkpoint (RGW counter): chk-1 ${requestsFirst} (${first.chunksNew} new chunks, ${first.files} files); ` +
        `chk-2 ${requestsSecond} (${second.chunksNew} new, ${second.chunksDeduped} deduplicated chunks, ${second.filesReused} files reused)`,
    );
    const latest = join(await tempDir('s3-restore'), 'latest');
    await cp.restore({ ...job, checkpoint: 'latest' }, latest);
    expect(await treeDigest(latest)).toEqual(await treeDigest(state.dir));
    snapshotted = { location, digest1 };
  }, SLOW);

  it('the CLI restores, lists and inspects by s3:// location', async () => {
    expect(snapshotted, 'needs the previous test').toBeDefined();
    const { location, digest1 } = snapshotted as { location: string; digest1: Map<string, FileInfo> };
    // By checkpoint location: s3://bucket/prefix/job/chk-1.
    const cliTarget = join(await tempDir('s3-restore'), 'cli');
    const cli = await runCli(['restore', `${location}/orders/chk-1`, cliTarget, '--json', '--threads', '2']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ checkpoint: 'chk-1' });
    expect(await treeDigest(cliTarget)).toEqual(digest1);
    const list = await runCli(['list', '--store', location, '--job', 'orders', '--json']);
    expect(JSON.parse(list.stdout)).toMatchObject({ checkpoints: [{ checkpoint: 'chk-1' }, { checkpoint: 'chk-2' }] });
    const missing = await runCli(['inspect', `${location}/orders/chk-9`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^chunkpoint: CHECKPOINT_NOT_FOUND: .*s3:\/\//);
  }, SLOW);

  it('relocates directory → S3 → directory (and S3 → S3); every copy restores', async () => {
    const dirStore = await tempDir('reloc-dir');
    const job = { store: dirStore, job: 'reloc' };
    const local = await rocksState(8 * 1024 * 1024, 73);
    await cp.snapshot(local.dir, job);
    const digest = await treeDigest(local.dir);

    const s3Root = `${store()}/reloc`;
    const up = await cp.copy(job, s3Root);
    expect(up.checkpointsCopied).toEqual(['chk-1']);
    // Every pack verified on the way, plus the one manifest of the one task.
    expect(up.packsVerified).toBeGreaterThan(0);
    expect(up.objectsCopied).toBe(up.packsVerified + 1);
    const fromS3 = join(await tempDir('reloc-restore'), 's3');
    await cp.restore({ path: `${s3Root}/chk-1` }, fromS3);
    expect(await treeDigest(fromS3)).toEqual(digest);

    const s3Other = `${store()}/moved-again`;
    const sideways = await runCli(['copy', s3Root, s3Other, '--json', '--threads', '2']);
    expect(sideways.code, sideways.stderr).toBe(0);
    expect(JSON.parse(sideways.stdout)).toMatchObject({ checkpointsCopied: ['chk-1'], objectsSkipped: 0 });

    const backDir = join(await tempDir('reloc-back'), 'reloc-home');
    const down = await runCli(['copy', s3Other, backDir, '--json', '--threads', '2']);
    expect(down.code, down.stderr).toBe(0);
    const fromDir = join(await tempDir('reloc-restore'), 'dir');
    await cp.restore({ path: join(backDir, 'chk-1') }, fromDir);
    expect(await treeDigest(fromDir)).toEqual(digest);

    const resumed = await cp.copy(job, s3Root);
    expect(resumed).toMatchObject({ checkpointsCopied: [], checkpointsPresent: ['chk-1'], objectsCopied: 0 });
  }, SLOW);

  it(`a snapshot whose S3 calls fail transiently still commits correctly (fault seed ${SEED}; replay with CHUNKPOINT_SEED=${SEED})`, async () => {
    console.log(`fault injection seed ${SEED}`);
    const hasher = await loadHasher();
    const pool = new WorkerPool({ threads: 2 });
    try {
      const location = store();
      const spec: StoreSpec = { ...withFaults(jobRootSpec(location, 'flaky'), { seed: SEED, transient: { '*': 0.2 } }), retry: { baseDelayMs: 5, maxDelayMs: 100, maxAttempts: 12 } };
      const faulty = openStore(spec);
      const injectedBefore = injectedInThisThread.transient;
      const result = await snapshot({ pool, hasher }, state.dir, { store: faulty, jobId: 'flaky' }, {});
      expect(result.checkpoint).toBe('chk-1');
      console.log(`coordinator-side transient faults injected: ${injectedInThisThread.transient - injectedBefore}`);
      const clean = openStore(jobRootSpec(location, 'flaky'));
      expect(await committedCheckpointIds(clean)).toEqual([1]);
      const target = join(await tempDir('flaky-restore'), 'out');
      await cp.restore({ path: `${location}/flaky/chk-1` }, target);
      expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
    } finally {
      await pool.close();
    }
  }, SLOW);

  it(`a snapshot whose S3 writes fail permanently commits nothing and leaves the previous checkpoint restorable (seed ${SEED})`, async () => {
    const hasher = await loadHasher();
    const pool = new WorkerPool({ threads: 2 });
    try {
      const local = await rocksState(6 * 1024 * 1024, 74);
      const location = store();
      const base = jobRootSpec(location, 'broken');
      const clean = openStore(base);
      await snapshot({ pool, hasher }, local.dir, { store: clean, jobId: 'broken' }, {});
      const digest1 = await treeDigest(local.dir);
      await mutateRocksState(local, 75);
      const faulty = openStore({ ...withFaults(base, { seed: SEED, permanent: { write: 0.5, put: 0.5 } }), retry: { baseDelayMs: 5 } });
      let outcome: 'committed' | 'failed';
      try {
        await snapshot({ pool, hasher }, local.dir, { store: faulty, jobId: 'broken' }, {});
        outcome = 'committed';
      } catch (error) {
        expect(error).toBeInstanceOf(ChunkpointError);
        expect((error as ChunkpointError).code).toBe('STORE_FAULT_INJECTED_PERMANENT');
        outcome = 'failed';
      }
      const ids = await committedCheckpointIds(clean);
      if (outcome === 'failed') expect(ids).toEqual([1]);
      else expect(ids).toEqual([1, 2]);
      const target = join(await tempDir('broken-restore'), 'out');
      await cp.restore({ store: location, job: 'broken', checkpoint: 1 }, target);
      expect(await treeDigest(target)).toEqual(digest1);
      console.log(`permanent-fault snapshot ${outcome}; committed checkpoints ${ids.join(', ')}`);
    } finally {
      await pool.close();
    }
  }, SLOW);
});
