/**
 * Faults during snapshot and restore on the directory store: ENOSPC, EACCES
 * and EIO from the store (a seeded fault-injecting wrapper, and a real
 * ENOSPC on a small tmpfs where the machine allows mounting one), and a
 * worker thread dying mid-chunk. A failed snapshot commits nothing, leaves
 * the previous checkpoint restorable, and the next snapshot on the same pool
 * succeeds; a failed restore leaves no partial file and names the file and
 * chunk.
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedCheckpointIds, loadCheckpoint, loadManifest } from '../src/checkpoint.js';
import { loadHasher, type Hasher } from '../src/format/content-key.js';
import { Chunkpoint } from '../src/index.js';
import { WorkerPool } from '../src/pool.js';
import { restore, selectTask, type RestoreSource } from '../src/restore/index.js';
import { snapshot } from '../src/snapshot/index.js';
import { FaultyStore, injectedFault, withFaults } from '../sim/faulty-store.js';
import { ConflictError, InternalError, deserializeError, serializeError, withContext } from '../src/errors.js';
import { jobRootSpec, openStore } from '../src/store/open.js';
import type { ObjectWriter, Store, StoreSpec } from '../src/store/store.js';
import { newId } from '../src/format/ids.js';
import type { WritePackRequest } from '../src/protocol.js';
import { PackWriter } from '../workers/write-pack.js';
import { isEmptyOrMissing, listFiles, mutateRocksState, referencedObjects, refusal, removeTempDirs, rocksState, storedObjects, tempDir, treeDigest, type RocksState } from './support.js';

const SEED = Number(process.env['CHUNKPOINT_SEED'] ?? 20261121);
const FAST_RETRY = { baseDelayMs: 1, maxDelayMs: 5 };

let pool: WorkerPool;
let hasher: Hasher;
let state: RocksState;

beforeAll(async () => {
  console.log(`fault tests seed=${SEED} (replay: CHUNKPOINT_SEED=${SEED} npm test)`);
  pool = new WorkerPool({ threads: 2 });
  hasher = await loadHasher();
  state = await rocksState(4 * 1024 * 1024, 101);
});

afterAll(async () => {
  await pool.close();
  await removeTempDirs();
});

/** chk-1 of `state`, then `state` changed, so the next snapshot must write new blobs. */
async function jobWithOneCheckpoint(job: string): Promise<{ location: string; base: StoreSpec; before: Awaited<ReturnType<typeof treeDigest>>; local: RocksState }> {
  const location = await tempDir('store');
  const local = await rocksState(3 * 1024 * 1024, 102);
  const base = jobRootSpec(location, job);
  await snapshot({ pool, hasher }, local.dir, { store: openStore(base), jobId: job });
  const before = await treeDigest(local.dir);
  await mutateRocksState(local, 103);
  return { location, base, before, local };
}

/** What a restore of checkpoint `id` reads: its metadata and its task's manifest (loaded from `from`), and the store its chunks come from. */
async function sourceOf(store: Store, id: number, from: Store = store): Promise<RestoreSource> {
  const metadata = await loadCheckpoint(from, id, hasher);
  const { manifest } = await loadManifest(from, selectTask(metadata, undefined), hasher);
  return { store, metadata, manifest, metadataFromCache: false };
}

async function expectOnlyChk1Restorable(location: string, job: string, before: Awaited<ReturnType<typeof treeDigest>>): Promise<void> {
  const clean = openStore(jobRootSpec(location, job));
  expect(await committedCheckpointIds(clean)).toEqual([1]);
  // The failed snapshot left no pack or manifest behind (it removes what it wrote), and no session.
  const jobRoot = join(location, job);
  expect(new Set(await storedObjects(jobRoot))).toEqual(await referencedObjects(jobRoot));
  expect(await listFiles(join(jobRoot, 'sessions'))).toEqual([]);
  const target = join(await tempDir('restore'), 'out');
  await restore({ pool, hasher }, await sourceOf(clean, 1), target, {});
  expect(await treeDigest(target)).toEqual(before);
}

describe(`faults during a snapshot (seed ${SEED})`, () => {
  for (const errno of ['ENOSPC', 'EACCES', 'EIO']) {
    it(`${errno} from the store: the snapshot fails with STORE_${errno}, commits nothing; the next snapshot on the same pool succeeds`, async () => {
      const job = `fault-${errno.toLowerCase()}`;
      const { location, base, before, local } = await jobWithOneCheckpoint(job);
      // Every third pack write fails, in the worker threads (and the session, manifest and commit puts).
      const faulty = openStore({ ...withFaults(base, { seed: SEED, permanent: { write: 0.34, put: 0.34 }, errno }), retry: FAST_RETRY });
      const error = await refusal(snapshot({ pool, hasher }, local.dir, { store: faulty, jobId: job }));
      expect(error.code, error.message).toBe(`STORE_${errno}`);
      expect(error.kind).toBe('store_unavailable');
      expect(error.message).toContain(errno);
      expect(injectedFault(error)).toBe('permanent');
      await expectOnlyChk1Restorable(location, job, before);
      const next = await snapshot({ pool, hasher }, local.dir, { store: openStore(base), jobId: job });
      expect(next.checkpoint).toBe('chk-2');
    });
  }

  it('a failure while publishing the staged packs (EIO on fsync or link) commits nothing and leaves no staged files behind', async () => {
    const job = 'fault-publish';
    const { location, base, before, local } = await jobWithOneCheckpoint(job);
    const faulty = openStore({ ...withFaults(base, { seed: SEED, permanent: { publish: 1 }, errno: 'EIO' }), retry: FAST_RETRY });
    const error = await refusal(snapshot({ pool, hasher }, local.dir, { store: faulty, jobId: job }));
    expect(error.code, error.message).toBe('STORE_EIO');
    const leftovers: string[] = [];
    for await (const o of openStore(base).listIncomplete('')) leftovers.push(o.key);
    expect(leftovers).toEqual([]);
    await expectOnlyChk1Restorable(location, job, before);
  });

  it('a torn write (a crash half-way through a pack) is never published by a retry: the writer fails for good, the retry layer stops, the torn temp file stays for gc', async () => {
    const location = await tempDir('store');
    const spec = jobRootSpec(location, 'torn');
    const torn = openStore({ ...withFaults(spec, { seed: SEED, torn: 1 }), retry: FAST_RETRY });
    const writer = await torn.createWriter('shared/01M8P61MQ3DVZ2K41KMY50ME8S-01M8P61MJNEJQJ2QSRS5SVGDPK.pack');
    await writer.write([Buffer.alloc(1759, 7)]);
    const error = await refusal(writer.finish());
    expect(error.code).toBe('WRITE_FAILED');
    expect(error.transient).toBe(false);
    expect(String((error.cause as Error).message)).toContain('injected torn write');
    expect(injectedFault(error)).toBe('torn');
    const plain = openStore(spec);
    expect(await plain.stat(writer.key)).toBeUndefined();
    const left: string[] = [];
    for await (const o of plain.listIncomplete('')) left.push(o.target);
    expect(left).toEqual([writer.key]);
  });

  it('a pack whose trailer cannot be written is aborted, so its file is closed and removed rather than left to the garbage collector', async () => {
    // Before the fix the writer was dropped unaborted: its temp file stayed in shared/ and its
    // FileHandle was closed by GC, which Node 24 (--throw-deprecation) turns into a crash.
    const location = await tempDir('store');
    const inner = openStore(jobRootSpec(location, 'j'));
    let writes = 0;
    let aborts = 0;
    const failing = new Proxy(inner, {
      get(target, property) {
        if (property === 'createWriter') {
          return async (key: string): Promise<ObjectWriter> => {
            const writer = await target.createWriter(key);
            return {
              key,
              get size() {
                return writer.size;
              },
              // Writes are the header, one blob, then the trailer.
              write: (parts) => (++writes === 3 ? Promise.reject(new Error('injected: the trailer write failed')) : writer.write(parts)),
              finish: () => writer.finish(),
              abort: () => {
                aborts++;
                return writer.abort();
              },
            };
          };
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const request = { op: 'writePack', store: inner.spec, area: 'shared', task: 't1', session: newId(), runs: [], packSize: 1 << 20, durable: false } satisfies WritePackRequest;
    const packs = new PackWriter(failing, request);
    await packs.append('0'.repeat(32), 5, [Buffer.from('hello')]);
    await expect(packs.close()).rejects.toThrow(/trailer write failed/);
    expect(aborts).toBe(1);
    expect(await listFiles(location)).toEqual([]);
  });

  it('a worker thread dying mid-chunk fails the snapshot (WORKER_FAILED), commits nothing; the pool replaces the thread and the next snapshot succeeds', async () => {
    const job = 'worker-death';
    const { location, base, before, local } = await jobWithOneCheckpoint(job);
    const dying = openStore({ ...withFaults(base, { seed: SEED, workerExit: { write: 0.3 } }), retry: FAST_RETRY });
    const error = await refusal(snapshot({ pool, hasher }, local.dir, { store: dying, jobId: job }));
    expect(error.code, error.message).toBe('WORKER_FAILED');
    expect(error.kind).toBe('internal');
    await expectOnlyChk1Restorable(location, job, before);
    const next = await snapshot({ pool, hasher }, local.dir, { store: openStore(base), jobId: job });
    expect(next.checkpoint).toBe('chk-2');
    const target = join(await tempDir('restore'), 'next');
    await restore({ pool, hasher }, await sourceOf(openStore(base), 2), target, {});
    expect(await treeDigest(target)).toEqual(await treeDigest(local.dir));
  });

  it('an aborted snapshot has stopped when it rejects: on a slow store, its tasks in flight cleaned up their packs and write nothing afterwards', async () => {
    const location = await tempDir('store');
    const base = jobRootSpec(location, 'abort-slow');
    // Every store call of the workers waits up to 30 ms: a pack batch in flight takes far longer than the abort path.
    const slow = openStore({ ...withFaults(base, { seed: SEED, maxLatencyMs: 30 }), retry: FAST_RETRY });
    const controller = new AbortController();
    // Aborted as soon as a pack is being written (its temp file exists), with other pack batches in flight.
    const watch = setInterval(() => {
      void listFiles(join(location, 'abort-slow')).then(
        (files) => files.some((f) => f.includes('.tmp-')) && controller.abort(new Error('stop')),
        () => undefined,
      );
    }, 5);
    let error;
    try {
      error = await refusal(snapshot({ pool, hasher }, state.dir, { store: slow, jobId: 'abort-slow' }, { signal: controller.signal, chunkSize: 64 * 1024, packSize: 1024 * 1024 }));
    } finally {
      clearInterval(watch);
    }
    expect(error.code, error.message).toBe('ABORTED');
    // Each worker request in flight saw the abort, removed the pack it was writing, and answered before the snapshot rejected;
    // the session ended on the way out. Nothing is left, and nothing changes later.
    const atRejection = await treeDigest(join(location, 'abort-slow'));
    expect([...atRejection.keys()]).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await treeDigest(join(location, 'abort-slow'))).toEqual(atRejection);
    // The pool, whose threads were never terminated, runs the next snapshot.
    const next = await snapshot({ pool, hasher }, state.dir, { store: openStore(base), jobId: 'abort-slow' });
    expect(next.checkpoint).toBe('chk-1');
  });

  it('aborting one snapshot does not fail another whose tasks share its thread', async () => {
    const location = await tempDir('store');
    const one = new WorkerPool({ threads: 1 });
    const slowJob = (job: string): Store => openStore({ ...withFaults(jobRootSpec(location, job), { seed: SEED, maxLatencyMs: 30 }), retry: FAST_RETRY });
    const controller = new AbortController();
    // Aborted once both are writing a pack on the one thread.
    const watch = setInterval(() => {
      void Promise.all(['kept', 'aborted'].map(async (job) => (await listFiles(join(location, job)).catch(() => [])).some((f) => f.includes('.tmp-')))).then((writing) => {
        if (writing.every(Boolean)) controller.abort(new Error('stop'));
      });
    }, 5);
    try {
      const options = { chunkSize: 64 * 1024, packSize: 1024 * 1024 };
      const [kept, aborted] = await Promise.allSettled([
        snapshot({ pool: one, hasher }, state.dir, { store: slowJob('kept'), jobId: 'kept' }, options),
        snapshot({ pool: one, hasher }, state.dir, { store: slowJob('aborted'), jobId: 'aborted' }, { ...options, signal: controller.signal }),
      ]);
      expect(controller.signal.aborted).toBe(true);
      expect(aborted.status === 'rejected' && (aborted.reason as { code?: string }).code).toBe('ABORTED');
      if (kept.status === 'rejected') throw kept.reason;
      expect(kept.value.checkpoint).toBe('chk-1');
    } finally {
      clearInterval(watch);
      await one.close();
    }
    const target = await tempDir('target');
    const store = openStore(jobRootSpec(location, 'kept'));
    await restore({ pool, hasher }, await sourceOf(store, 1), target, {});
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
  });

  it('a real ENOSPC: a store on a full tmpfs fails cleanly; with room again the next snapshot succeeds', async (ctx) => {
    const mountPoint = await tempDir('tmpfs');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint], { stdio: 'pipe' });
    } catch (error) {
      console.warn(`SKIPPED the real-ENOSPC test: cannot mount a tmpfs here (${String(error).split('\n')[0] ?? ''}); the injected ENOSPC test above still ran`);
      ctx.skip();
      return;
    }
    try {
      const cp = new Chunkpoint({ threads: 2 });
      try {
        const small = join(await tempDir('small'), 'db');
        await mkdir(small);
        const { writeFile } = await import('node:fs/promises');
        await writeFile(join(small, 'CURRENT'), 'MANIFEST-000001\n');
        await cp.snapshot(small, { store: mountPoint, job: 'full' });
        const error = await refusal(cp.snapshot(state.dir, { store: mountPoint, job: 'full' }));
        expect(error.code, error.message).toBe('STORE_ENOSPC');
        expect(error.message).toMatch(/free space/);
        expect((await cp.list({ store: mountPoint, job: 'full' })).map((c) => c.checkpoint)).toEqual(['chk-1']);
        const target = join(await tempDir('restore'), 'small');
        await cp.restore({ store: mountPoint, job: 'full' }, target);
        expect(await treeDigest(target)).toEqual(await treeDigest(small));
        // gc reclaims what the failed snapshot left; with more room the same snapshot commits.
        await cp.gc({ store: mountPoint, job: 'full' }, { graceMs: 0 });
        execFileSync('mount', ['-o', 'remount,size=64m', mountPoint]);
        expect((await cp.snapshot(state.dir, { store: mountPoint, job: 'full' })).checkpoint).toBe('chk-2');
      } finally {
        await cp.close();
      }
    } finally {
      execFileSync('umount', [mountPoint]);
    }
  });
});

describe(`faults during a restore (seed ${SEED})`, () => {
  it('EIO reading packs fails the restore with STORE_EIO naming the file and chunk; no partial file is left in the target', async () => {
    const location = await tempDir('store');
    const base = jobRootSpec(location, 'restore-eio');
    await snapshot({ pool, hasher }, state.dir, { store: openStore(base), jobId: 'restore-eio' });
    const faulty = openStore({ ...withFaults(base, { seed: SEED, permanent: { read: 0.3 }, errno: 'EIO' }), retry: FAST_RETRY });
    const target = join(await tempDir('restore'), 'out');
    const error = await refusal(restore({ pool, hasher }, await sourceOf(faulty, 1, openStore(base)), target, {}));
    expect(error.code, error.message).toBe('STORE_EIO');
    expect(error.message).toMatch(/fetching chunk \d+ of \S+/);
    // The pack being read is in the details, and it is one the checkpoint references.
    const pack = String(error.details['pack']);
    expect(await referencedObjects(join(location, 'restore-eio'))).toContain(pack);
    expect(await isEmptyOrMissing(target)).toBe(true);
  });
});

describe('an injected fault is recognised by its mark, never by its wording', () => {
  it('a torn pack write in a worker thread, wrapped by the layers above it, still carries its mark when the snapshot fails on the main thread', async () => {
    const location = await tempDir('store');
    const local = await rocksState(1024 * 1024, 104);
    const base = jobRootSpec(location, 'marked');
    // Only the worker threads tear: they open the store from its spec, the main thread writes through the clean one.
    const tornInWorkers = withFaults(base, { seed: SEED, torn: 1 });
    const clean = openStore({ ...base, retry: FAST_RETRY });
    const store = new Proxy(clean, { get: (target, property) => (property === 'spec' ? { ...tornInWorkers, retry: FAST_RETRY } : (Reflect.get(target, property) as unknown)) });
    const error = await refusal(snapshot({ pool, hasher }, local.dir, { store, jobId: 'marked' }));
    expect(error.code, error.message).toBe('WRITE_FAILED');
    expect(injectedFault(error), `${error.code}: ${error.message}`).toBe('torn');
  });

  it('the mark crosses the worker boundary however deep in the cause chain it is; a message that merely says "injected" is no mark', async () => {
    const store = new FaultyStore(openStore(jobRootSpec(await tempDir('store'), 'marked')), { seed: SEED, permanent: { get: 1 } });
    const fault = await refusal(store.get('chk-1/_metadata'));
    const wrapped = withContext(new ConflictError('COPY_CONFLICT', 'an outer layer', { cause: new InternalError('WORKER_FAILED', 'a middle layer', { cause: fault }) }), 'reading', { file: 'x' });
    expect(injectedFault(deserializeError(serializeError(wrapped)))).toBe('permanent');
    expect(injectedFault(deserializeError(serializeError(new InternalError('UNEXPECTED', 'injected: a real failure that says so', { cause: new Error('injected') }))))).toBeUndefined();
  });
});
