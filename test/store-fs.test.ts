/**
 * The directory store against the store contract — on its own, and behind
 * seeded fault injection with retries (which must not change the contract).
 */
import { mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FaultyStore, withFaults, type FaultSpec } from '../sim/faulty-store.js';
import { tempName } from '../src/format/names.js';
import { openStore } from '../src/store/open.js';
import { RetryingStore } from '../src/store/retry.js';
import type { FsStoreSpec } from '../src/store/spec.js';
import type { Store } from '../src/store/store.js';
import { storeCompliance, type ComplianceTarget } from './store-compliance.js';
import { removeTempDirs, tempDir } from './support.js';

afterAll(async () => {
  await removeTempDirs();
});

const SEED = Number(process.env['CHUNKPOINT_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

function fsTarget(extra: Partial<FsStoreSpec> = {}, faults?: FaultSpec): ComplianceTarget {
  return {
    async fresh() {
      const spec: FsStoreSpec = { type: 'fs', root: join(await tempDir('store-fs'), 'job'), ...extra };
      return openStore(faults === undefined ? spec : withFaults(spec, faults));
    },
    async leaveIncompleteWrite(store: Store, key: string) {
      const root = (store.spec as FsStoreSpec).root;
      const path = join(root, ...key.split('/'));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(join(dirname(path), tempName(key)), 'half a pack');
    },
    largeObjectSize: 20 * 1024 * 1024,
  };
}

storeCompliance('directory', () => fsTarget());

describe(`directory store behind fault injection (seed ${SEED}; replay with CHUNKPOINT_SEED=${SEED})`, () => {
  it('opens as retries around faults', () => {
    const store = openStore(withFaults({ type: 'fs', root: '/nonexistent-root-for-types' }, { seed: SEED, transient: { '*': 0.2 } }));
    expect(store).toBeInstanceOf(RetryingStore);
  });
});

// 20 % of every operation fails transiently, half of the write faults after the write
// took effect: with retries the contract must hold exactly as without faults.
storeCompliance(`directory, 20 % transient faults + retries (seed ${SEED})`, () =>
  fsTarget({ retry: { baseDelayMs: 2, maxDelayMs: 20, maxAttempts: 12 } }, { seed: SEED, transient: { '*': 0.2 }, lostResponse: 0.5 }),
);

describe('fault injection itself', () => {
  it('injects at the configured rate, replays from its seed, and fails permanently at once', async () => {
    const root = join(await tempDir('faulty'), 'job');
    const inner = openStore({ type: 'fs', root });
    await inner.put('chk-1/_metadata', [Buffer.from('m')]);
    const outcomes = async (seed: number): Promise<string> => {
      const faulty = new FaultyStore(inner, { seed, transient: { get: 0.3 } });
      let out = '';
      for (let i = 0; i < 400; i++) out += await faulty.get('chk-1/_metadata').then(() => '.', () => 'x');
      return out;
    };
    const a = await outcomes(42);
    expect(await outcomes(42)).toBe(a);
    expect(await outcomes(43)).not.toBe(a);
    const failures = [...a].filter((c) => c === 'x').length;
    // 400 draws at p = 0.3: mean 120, sd ~9; far outside these bounds only if the rate is wrong.
    expect(failures).toBeGreaterThan(70);
    expect(failures).toBeLessThan(170);

    const permanent = new RetryingStore(new FaultyStore(inner, { seed: 1, permanent: { stat: 1 } }), { baseDelayMs: 1 });
    const error = await permanent.stat('chk-1/_metadata').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'STORE_FAULT_INJECTED_PERMANENT', kind: 'store_unavailable' });
    const hopeless = new RetryingStore(new FaultyStore(inner, { seed: 1, transient: { stat: 1 } }), { baseDelayMs: 1, maxAttempts: 3 });
    const gaveUp = await hopeless.stat('chk-1/_metadata').catch((e: unknown) => e);
    expect(gaveUp).toMatchObject({ code: 'STORE_FAULT_INJECTED', transient: true, details: { attempts: 3 } });
    expect(String((gaveUp as Error).message)).toContain('after 3 attempts');
  });

  it('a listing that keeps failing gives up at the time budget, as every other call does, not only after its attempts', async () => {
    const root = join(await tempDir('faulty-list'), 'job');
    const inner = openStore({ type: 'fs', root });
    await inner.put('chk-1/_metadata', [Buffer.from('m')]);
    // Attempts alone would allow 10,000 tries here; the 200 ms budget must end it long before.
    const stalled = new RetryingStore(new FaultyStore(inner, { seed: 1, transient: { list: 1 } }), { baseDelayMs: 5, maxDelayMs: 5, maxAttempts: 10_000, maxElapsedMs: 200 });
    const listed: string[] = [];
    const error = await (async () => {
      for await (const object of stalled.list('chk-')) listed.push(object.key);
    })().catch((e: unknown) => e);
    expect(listed).toEqual([]);
    expect(error).toMatchObject({ code: 'STORE_FAULT_INJECTED', transient: true });
    const attempts = (error as { details: { attempts: number } }).details.attempts;
    expect(attempts).toBeGreaterThan(1);
    expect(attempts).toBeLessThan(10_000);
  });
});

describe('a directory below the job root replaced by a link (issue #16 item 4)', () => {
  it('is never followed: reads, writes, stats and deletes of keys below it are refused (NOT_A_REGULAR_FILE), and the files it leads to are untouched', async () => {
    const base = await tempDir('linked-dir');
    const root = join(base, 'job');
    const outside = join(base, 'outside');
    await mkdir(join(root, 'shared'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(outside, 'victim.pack'), 'not the store\'s');
    await rm(join(root, 'shared'), { recursive: true });
    await symlink(outside, join(root, 'shared'));
    const store = openStore({ type: 'fs', root });
    const key = 'shared/victim.pack';
    const refusals: Array<[string, () => Promise<unknown>]> = [
      ['get', () => store.get(key)],
      ['openReader', () => store.openReader(key)],
      ['stat', () => store.stat(key)],
      ['delete', () => store.delete([key])],
      ['put', () => store.put('shared/new.pack', [Buffer.from('x')])],
      ['createWriter', () => store.createWriter('shared/new2.pack')],
    ];
    for (const [op, run] of refusals) {
      const error = await run().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, op).toMatchObject({ code: 'NOT_A_REGULAR_FILE', kind: 'corrupt_data' });
      expect(String((error as Error).message), op).toContain('symbolic link (shared leads to');
    }
    // Listing never descends into it either.
    const listed: string[] = [];
    for await (const o of store.list('shared/')) listed.push(o.key);
    expect(listed).toEqual([]);
    expect(await readdir(outside)).toEqual(['victim.pack']);
    expect(await readFile(join(outside, 'victim.pack'), 'utf8')).toBe("not the store's");
    // A job root reached through a link of its own is the user's choice, and works.
    await symlink(root, join(base, 'alias'));
    await rm(join(root, 'shared'));
    const viaAlias = openStore({ type: 'fs', root: join(base, 'alias') });
    expect(await viaAlias.put('shared/ok.pack', [Buffer.from('fine')])).toBe('created');
    expect((await viaAlias.get('shared/ok.pack')).toString()).toBe('fine');
  });
});
