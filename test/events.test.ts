/**
 * The embedding API's events on real RocksDB state: every operation's
 * lifecycle, progress figures that only grow and end equal to the returned
 * result, and a listener that throws does not break a snapshot.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunkpoint } from '../src/chunkpoint.js';
import type { ChunkpointEvent, EventOf } from '../src/events.js';
import { mutateRocksState, removeTempDirs, rocksState, tempDir, treeDigest, type RocksState } from './support.js';

let state: RocksState;
let store: string;
const events: ChunkpointEvent[] = [];
// progressIntervalMs 0: an event after every chunk, so the test sees the whole sequence.
let cp: Chunkpoint;

beforeAll(async () => {
  state = await rocksState(4 * 1024 * 1024);
  store = await tempDir('events-store');
  cp = new Chunkpoint({ threads: 2, progressIntervalMs: 0, onEvent: (e) => events.push(e) });
});

afterAll(async () => {
  await cp.close();
  await removeTempDirs();
});

/** Runs `fn` and returns the events it emitted (one operation). */
async function capture<T>(fn: () => Promise<T>): Promise<{ result: T; seen: ChunkpointEvent[] }> {
  const from = events.length;
  const result = await fn();
  return { result, seen: events.slice(from) };
}

function ofType<T extends ChunkpointEvent['type']>(seen: ChunkpointEvent[], type: T): EventOf<T>[] {
  return seen.filter((e): e is EventOf<T> => e.type === type);
}

function expectMonotonic(values: number[]): void {
  for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThanOrEqual(values[i - 1] ?? 0);
}

function expectLifecycle(seen: ChunkpointEvent[], op: string, end: string): void {
  expect(seen[0]?.type).toBe(`${op}.started`);
  expect(seen.at(-1)?.type).toBe(`${op}.${end}`);
  expect(new Set(seen.map((e) => e.operationId)).size).toBe(1);
  expect(seen.slice(1, -1).every((e) => e.type === `${op}.progress`)).toBe(true);
}

const job = (): { store: string; job: string } => ({ store, job: 'events' });

describe('events', () => {
  it('snapshot: started, growing progress, committed; the last progress equals the result', async () => {
    let kept = 0;
    for (const round of [1, 2]) {
      if (round === 2) {
        const before = await treeDigest(state.dir);
        await mutateRocksState(state, 7);
        // The SSTs RocksDB left untouched (its compaction decides how many) are what the snapshot reuses.
        kept = [...(await treeDigest(state.dir))].filter(([name, info]) => name.endsWith('.sst') && before.get(name)?.size === info.size).length;
      }
      const { result, seen } = await capture(() => cp.snapshot(state.dir, job()));
      expectLifecycle(seen, 'snapshot', 'committed');
      const progress = ofType(seen, 'snapshot.progress');
      expect(progress.length).toBeGreaterThan(2);
      expectMonotonic(progress.map((p) => p.bytesDone));
      expectMonotonic(progress.map((p) => p.filesDone));
      for (const p of progress) expect(p.bytesTotal).toBe(result.bytes);
      const last = progress.at(-1);
      expect(last).toMatchObject({
        bytesDone: result.bytes,
        bytesTotal: result.bytes,
        bytesRead: result.bytesRead,
        bytesWritten: result.bytesWritten,
        filesDone: result.files,
        filesTotal: result.files,
        filesReused: result.filesReused,
        chunksNew: result.chunksNew,
        chunksDeduped: result.chunksDeduped,
      });
      expect(ofType(seen, 'snapshot.committed')[0]?.result).toEqual(result);
      // The first progress event already counts the files reused without reading.
      expect(progress[0]?.filesReused).toBe(result.filesReused);
      if (round === 2) expect(result.filesReused).toBe(kept);
    }
  });

  it('restore: the last progress equals the result', async () => {
    const target = join(await tempDir('events-restore'), 't');
    const { result, seen } = await capture(() => cp.restore({ ...job(), checkpoint: 'latest' }, target));
    expectLifecycle(seen, 'restore', 'completed');
    const progress = ofType(seen, 'restore.progress');
    expectMonotonic(progress.map((p) => p.bytesDone));
    expect(progress.at(-1)).toMatchObject({
      checkpoint: result.checkpoint,
      bytesDone: result.bytes,
      bytesTotal: result.bytes,
      bytesFromRemote: result.bytesFromRemote,
      bytesFromCache: result.bytesFromCache,
      filesDone: result.files,
      filesTotal: result.files,
      chunks: result.chunks,
    });
    expect(ofType(seen, 'restore.completed')[0]?.result).toEqual(result);
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
  });

  it('verify and copy: the last progress equals the result', async () => {
    const verified = await capture(() => cp.verify(job()));
    expectLifecycle(verified.seen, 'verify', 'completed');
    expect(ofType(verified.seen, 'verify.progress').at(-1)).toMatchObject({
      bytesChecked: verified.result.bytesChecked,
      blobsDone: verified.result.blobsChecked,
      blobsTotal: verified.result.blobsChecked,
      problems: 0,
    });
    const copied = await capture(() => cp.copy(job(), { store: store, job: 'events-copy' }));
    expectLifecycle(copied.seen, 'copy', 'completed');
    const last = ofType(copied.seen, 'copy.progress').at(-1);
    expect(last).toMatchObject({ bytesCopied: copied.result.bytesCopied, objectsCopied: copied.result.objectsCopied });
    expect(last?.bytesDone).toBe(last?.bytesTotal);
  });

  it('gc: the last progress equals the result', async () => {
    const { result, seen } = await capture(() => cp.gc(job(), { graceMs: 0, retain: 1 }));
    expectLifecycle(seen, 'gc', 'completed');
    // Retention removed chk-1; its manifest, and whatever pack only it referenced, went with it.
    expect(result.checkpointsRemoved).toEqual(['chk-1']);
    expect(result.manifestsRemoved).toBe(1);
    expect(result.bytesFreed).toBeGreaterThan(0);
    expect(ofType(seen, 'gc.progress').at(-1)).toMatchObject({
      packsRemoved: result.packsRemoved,
      incompleteRemoved: result.incompleteRemoved,
      bytesFreed: result.bytesFreed,
      youngKept: result.youngKept,
    });
    expect(ofType(seen, 'gc.completed')[0]?.result).toEqual(result);
  });

  it('failures end with <op>.failed carrying the typed error', async () => {
    const missing = join(await tempDir('events-missing'), 'nope');
    const from = events.length;
    await expect(cp.snapshot(missing, job())).rejects.toMatchObject({ code: 'STATE_DIR_MISSING' });
    const seen = events.slice(from);
    expect(seen.map((e) => e.type)).toEqual(['snapshot.started', 'snapshot.failed']);
    expect(ofType(seen, 'snapshot.failed')[0]?.error.code).toBe('STATE_DIR_MISSING');
  });

  it('a listener that throws does not break a snapshot', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    const throwing = new Chunkpoint({
      threads: 2,
      progressIntervalMs: 0,
      onEvent: () => {
        throw new Error('metrics backend down');
      },
    });
    try {
      const result = await throwing.snapshot(state.dir, { store, job: 'events-throwing' });
      expect(result.checkpoint).toBe('chk-1');
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.includes('metrics backend down'))).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
      await throwing.close();
    }
  });
});
