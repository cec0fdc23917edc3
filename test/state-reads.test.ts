/**
 * A snapshot's workers read state files synchronously while the page cache
 * serves them and through libuv's threads, one chunk ahead, otherwise
 * (CHUNKPOINT_SYNC_READS=0 forces the latter). Both ways must store the same
 * chunks and restore the same bytes, on real RocksDB state.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunkpoint } from '../src/index.js';
import { checkpointFiles, mutateRocksState, removeTempDirs, rocksState, tempDir, treeDigest, withEnv, type RocksState } from './support.js';

let state: RocksState;

beforeAll(async () => {
  state = await rocksState(10 * 1024 * 1024, 51);
});
afterAll(removeTempDirs);

describe('state reads', () => {
  it('synchronous and libuv reads store the same chunks, full and incremental, and restore the same bytes', async () => {
    const stores = new Map<string, string>();
    for (const mode of ['default', 'libuv'] as const) stores.set(mode, await tempDir(`reads-${mode}`));
    const snapshotBoth = async (): Promise<void> => {
      for (const [mode, store] of stores) {
        // A fresh instance per mode: its threads start inside withEnv and keep that setting.
        const cp = new Chunkpoint({ threads: 2, requestsPerThread: 2 });
        try {
          const result = await withEnv('CHUNKPOINT_SYNC_READS', mode === 'libuv' ? '0' : undefined, () => cp.snapshot(state.dir, { store, job: 'reads' }));
          expect(result.bytesRead, mode).toBeGreaterThan(0);
        } finally {
          await cp.close();
        }
      }
    };
    await snapshotBoth();
    await mutateRocksState(state, 52);
    await snapshotBoth();

    const chunksOf = async (store: string, id: number): Promise<string[]> =>
      (await checkpointFiles(join(store, 'reads'), id)).map((f) => `${f.path}:${f.chunks.map((c) => `${c.key}/${c.rawLength}`).join(',')}`).sort();
    for (const id of [1, 2]) expect(await chunksOf(stores.get('libuv') as string, id), `chk-${id}`).toEqual(await chunksOf(stores.get('default') as string, id));

    const expected = await treeDigest(state.dir);
    const cp = new Chunkpoint({ threads: 2 });
    try {
      for (const [mode, store] of stores) {
        const target = join(await tempDir(`reads-restore-${mode}`), 'out');
        await cp.restore({ store, job: 'reads', checkpoint: 'latest' }, target);
        expect(await treeDigest(target), mode).toEqual(expected);
      }
    } finally {
      await cp.close();
    }
  });
});
