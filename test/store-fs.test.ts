/**
 * The directory store against the store contract — on its own, and behind
 * seeded fault injection with retries (which must not change the contract).
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FaultyStore } from '../src/store/faulty.js';
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

function fsTarget(extra: Partial<FsStoreSpec> = {}): ComplianceTarget {
  return {
    async fresh() {
      return openStore({ type: 'fs', root: join(await tempDir('store-fs'), 'job'), ...extra });
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
    const store = openStore({ type: 'fs', root: '/nonexistent-root-for-types', faults: { seed: SEED, transient: { '*': 0.2 } } });
    expect(store).toBeInstanceOf(RetryingStore);
  });
});

// 20 % of every operation fails transiently, half of the write faults after the write
// took effect: with retries the contract must hold exactly as without faults.
storeCompliance(`directory, 20 % transient faults + retries (seed ${SEED})`, () =>
  fsTarget({ faults: { seed: SEED, transient: { '*': 0.2 }, lostResponse: 0.5 }, retry: { baseDelayMs: 2, maxDelayMs: 20, maxAttempts: 12 } }),
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
    expect(gaveUp).toMatchObject({ code: 'STORE_FAULT_INJECTED', details: { attempts: 3, transient: true } });
    expect(String((gaveUp as Error).message)).toContain('after 3 attempts');
  });
});
