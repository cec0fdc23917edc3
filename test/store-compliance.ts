/**
 * The store contract, as tests: every `Store` implementation (and every
 * wrapper around one) must pass this suite unchanged. A test file calls
 * `storeCompliance` with a factory for fresh, empty job roots.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ChunkpointError } from '../src/errors.js';
import { isNotFound, type ObjectInfo, type Store } from '../src/store/store.js';

export interface ComplianceTarget {
  /** A store rooted at a fresh, empty (not yet existing) job root. */
  fresh(): Promise<Store>;
  /** Leaves an interrupted write of `key` behind, as a crash would (fs: temp file; S3: incomplete multipart upload). */
  leaveIncompleteWrite(store: Store, key: string): Promise<void>;
  /** Size of an object that the store writes the way it writes its largest objects (S3: multipart). */
  largeObjectSize: number;
}

async function collect(objects: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of objects) out.push(o);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

async function expectNotFound(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected OBJECT_NOT_FOUND, got success').toBeDefined();
  expect(isNotFound(error), `expected OBJECT_NOT_FOUND, got ${String(error)}`).toBe(true);
}

/** Runs `task` over 0..count-1 with `limit` in flight. */
async function parallel(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

export function storeCompliance(name: string, target: () => ComplianceTarget): void {
  describe(`store compliance: ${name}`, () => {
    it('round-trips bodies written from several parts, under nested keys', async () => {
      const store = await target().fresh();
      const parts = [Buffer.from('header:'), randomBytes(300_000), Buffer.alloc(0), Buffer.from(':trailer')];
      expect(await store.put('shared/ab/ab01-300015', parts, { ifAbsent: true, durable: true, syncName: false })).toBe('created');
      await store.syncNames(['shared/ab/ab01-300015']);
      expect((await store.get('shared/ab/ab01-300015')).equals(Buffer.concat(parts))).toBe(true);
      expect(await store.put('chk-1/_metadata', [Buffer.from('m')], { durable: true })).toBe('created');
      expect((await store.get('chk-1/_metadata')).toString()).toBe('m');
      // An empty object is an object.
      await store.put('taskowned/empty', []);
      expect((await store.get('taskowned/empty')).byteLength).toBe(0);
      expect((await store.stat('taskowned/empty'))?.size).toBe(0);
    });

    it('put-if-absent creates once, then reports exists and leaves the content alone; a plain put replaces', async () => {
      const store = await target().fresh();
      expect(await store.put('chk-7/_metadata', [Buffer.from('first')], { ifAbsent: true })).toBe('created');
      expect(await store.put('chk-7/_metadata', [Buffer.from('second, longer')], { ifAbsent: true })).toBe('exists');
      expect((await store.get('chk-7/_metadata')).toString()).toBe('first');
      expect(['created', 'replaced']).toContain(await store.put('chk-7/_metadata', [Buffer.from('third')]));
      expect((await store.get('chk-7/_metadata')).toString()).toBe('third');
    });

    it('reads byte ranges, including one that runs past the end and an empty one', async () => {
      const store = await target().fresh();
      const data = randomBytes(10_000);
      await store.put('shared/00/range', [data]);
      expect((await store.get('shared/00/range', { offset: 1234, length: 4321 })).equals(data.subarray(1234, 1234 + 4321))).toBe(true);
      expect((await store.get('shared/00/range', { offset: 0, length: 1 })).equals(data.subarray(0, 1))).toBe(true);
      expect((await store.get('shared/00/range', { offset: 9000, length: 5000 })).equals(data.subarray(9000))).toBe(true);
      expect((await store.get('shared/00/range', { offset: 500, length: 0 })).byteLength).toBe(0);
    });

    it('reports a missing object as OBJECT_NOT_FOUND, and stat as undefined', async () => {
      const store = await target().fresh();
      await expectNotFound(store.get('chk-1/_metadata'));
      await expectNotFound(store.get('shared/00/nothing', { offset: 0, length: 10 }));
      expect(await store.stat('chk-1/_metadata')).toBeUndefined();
      await store.put('shared/00/present', [Buffer.from('x')]);
      await expectNotFound(store.get('shared/00/absent'));
      expect(await store.stat('shared/00/absent')).toBeUndefined();
    });

    it('stats size and a plausible modification time', async () => {
      const store = await target().fresh();
      await store.put('shared/12/stat', [randomBytes(777)]);
      const info = await store.stat('shared/12/stat');
      expect(info?.key).toBe('shared/12/stat');
      expect(info?.size).toBe(777);
      // Same machine as the server: the time is today, not 1970 or the future.
      expect(Math.abs((info?.mtimeMs ?? 0) - Date.now())).toBeLessThan(3_600_000);
    });

    it('lists by prefix (string prefix, not only directories), with sizes, each object once', async () => {
      const store = await target().fresh();
      expect(await collect(store.list(''))).toEqual([]);
      const keys = { 'a/1': 1, 'a/2': 2, 'ab/3': 3, 'b/4': 4, 'chk-1/_metadata': 5, 'chk-12/_metadata': 6 };
      for (const [key, size] of Object.entries(keys)) await store.put(key, [Buffer.alloc(size)]);
      const summary = (objects: ObjectInfo[]): [string, number][] => objects.map((o) => [o.key, o.size]);
      expect(summary(await collect(store.list('a/')))).toEqual([
        ['a/1', 1],
        ['a/2', 2],
      ]);
      expect(summary(await collect(store.list('a')))).toEqual([
        ['a/1', 1],
        ['a/2', 2],
        ['ab/3', 3],
      ]);
      expect(summary(await collect(store.list('chk-')))).toEqual([
        ['chk-1/_metadata', 5],
        ['chk-12/_metadata', 6],
      ]);
      expect((await collect(store.list(''))).length).toBe(6);
      expect(await collect(store.list('c/'))).toEqual([]);
    });

    it('lists more than 1,000 objects (pagination), then deletes them in one call that also names absent keys', async () => {
      const store = await target().fresh();
      // Just past one S3 page (1,000 keys): pagination without a slow test.
      const count = 1050;
      const keys = Array.from({ length: count }, (_, i) => `shared/${(i % 256).toString(16).padStart(2, '0')}/obj-${i}`);
      await parallel(count, 32, async (i) => {
        await store.put(keys[i] as string, [Buffer.from(String(i))], { ifAbsent: true });
      });
      await store.put('chk-1/_metadata', [Buffer.from('keep me')]);
      const listed = await collect(store.list('shared/'));
      expect(listed.length).toBe(count);
      expect(new Set(listed.map((o) => o.key))).toEqual(new Set(keys));
      await store.delete([...keys, 'shared/ff/never-written', 'chk-99/_metadata']);
      expect(await collect(store.list('shared/'))).toEqual([]);
      expect((await store.get('chk-1/_metadata')).toString()).toBe('keep me');
      await store.delete([]);
    });

    it('touch makes an object young again without changing it, and ignores absent keys', async () => {
      const store = await target().fresh();
      const data = randomBytes(5000);
      await store.put('shared/aa/touched', [data]);
      const before = await store.stat('shared/aa/touched');
      // S3 keeps whole seconds: let the clock pass a second boundary so a refresh is visible.
      await sleep(1100);
      const touchedAt = Date.now();
      await store.touch(['shared/aa/touched', 'shared/aa/absent']);
      const after = await store.stat('shared/aa/touched');
      expect(after?.mtimeMs).toBeGreaterThan(before?.mtimeMs ?? Infinity);
      expect(after?.mtimeMs).toBeGreaterThanOrEqual(Math.floor(touchedAt / 1000) * 1000);
      expect(after?.size).toBe(5000);
      expect((await store.get('shared/aa/touched')).equals(data)).toBe(true);
      expect(await store.stat('shared/aa/absent')).toBeUndefined();
      await store.touch([]);
    });

    it('lists interrupted writes apart from objects, and deletes them', async () => {
      const t = target();
      const store = await t.fresh();
      await store.put('shared/3f/complete', [Buffer.from('done')]);
      await t.leaveIncompleteWrite(store, 'shared/3f/interrupted');
      const incomplete = await collect(store.listIncomplete('shared/'));
      expect(incomplete.length).toBe(1);
      const entry = incomplete[0] as ObjectInfo;
      expect(entry.key.startsWith('shared/3f/')).toBe(true);
      expect(Math.abs(entry.mtimeMs - Date.now())).toBeLessThan(3_600_000);
      expect(await collect(store.listIncomplete('chk-'))).toEqual([]);
      // Never an object: not listed, not readable as the key it was writing.
      expect((await collect(store.list('shared/'))).map((o) => o.key)).toEqual(['shared/3f/complete']);
      await expectNotFound(store.get('shared/3f/interrupted'));
      await store.delete([entry.key]);
      expect(await collect(store.listIncomplete('shared/'))).toEqual([]);
      expect((await store.get('shared/3f/complete')).toString()).toBe('done');
    });

    it('stages objects invisibly (or publishes at once) and publishes a batch with put-if-absent semantics', async () => {
      const store = await target().fresh();
      await store.put('shared/5a/taken', [Buffer.from('first')]);
      const body = [Buffer.from('head:'), randomBytes(70_000)];
      const staged = [
        await store.stage('shared/5a/new', body),
        await store.stage('shared/5a/taken', [Buffer.from('second, longer')]),
        await store.stage('shared/5b/twice', [Buffer.from('same content')]),
        await store.stage('shared/5b/twice', [Buffer.from('same content')]),
      ];
      expect(staged.map((s) => s.size)).toEqual([70_005, 14, 12, 12]);
      const first = staged[0];
      if (first?.published === undefined) {
        // A store that stages invisibly: nothing is readable or listed until publish.
        await expectNotFound(store.get('shared/5a/new'));
        expect(await store.stat('shared/5a/new')).toBeUndefined();
        expect((await collect(store.list('shared/'))).map((o) => o.key)).toEqual(['shared/5a/taken']);
      }
      const results = await store.publish(staged, { durable: true });
      expect(results.slice(0, 2)).toEqual(['created', 'exists']);
      expect([...results.slice(2)].sort()).toEqual(['created', 'exists']);
      expect((await store.get('shared/5a/new')).equals(Buffer.concat(body))).toBe(true);
      expect((await store.get('shared/5a/taken')).toString()).toBe('first');
      expect((await store.get('shared/5b/twice')).toString()).toBe('same content');
      // Publishing again finds everything in place (a store that published while staging reports what it did then), and nothing is left half-done.
      expect(await store.publish(staged)).toEqual(first?.published === undefined ? ['exists', 'exists', 'exists', 'exists'] : results);
      // Nothing published is left half-done. (Under injected faults, a stage whose response was lost and
      // retried leaves its first temp file behind as an interrupted write, which gc removes.)
      const left = (await collect(store.listIncomplete(''))).map((o) => o.key);
      expect(left.filter((key) => staged.some((s) => s.token === key))).toEqual([]);
      expect(await store.publish([])).toEqual([]);
    });

    it('leaves an unpublished staged object as an interrupted write that delete removes', async () => {
      const store = await target().fresh();
      const staged = await store.stage('shared/6c/abandoned', [randomBytes(1000)]);
      if (staged.published !== undefined) return; // published at once: nothing can be left over
      // Under injected faults a retried stage may leave more than one.
      const incomplete = (await collect(store.listIncomplete('shared/'))).map((o) => o.key);
      expect(incomplete).toContain(staged.token);
      await store.delete(incomplete);
      expect(await collect(store.listIncomplete(''))).toEqual([]);
      const error = await store.publish([staged]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error instanceof ChunkpointError && error.code === 'STAGED_WRITE_LOST', String(error)).toBe(true);
    });

    it('exists only once something is stored under the job root', async () => {
      const store = await target().fresh();
      expect(await store.exists()).toBe(false);
      await store.put('chk-1/_metadata', [Buffer.from('m')]);
      expect(await store.exists()).toBe(true);
    });

    it('round-trips a large object (S3: multipart upload) and keeps put-if-absent for it', async () => {
      const t = target();
      const store = await t.fresh();
      const head = randomBytes(40);
      const payload = randomBytes(t.largeObjectSize);
      expect(await store.put('shared/fe/large', [head, payload], { ifAbsent: true, durable: true })).toBe('created');
      const back = await store.get('shared/fe/large');
      expect(back.byteLength).toBe(40 + t.largeObjectSize);
      expect(back.equals(Buffer.concat([head, payload]))).toBe(true);
      expect((await store.stat('shared/fe/large'))?.size).toBe(40 + t.largeObjectSize);
      expect((await store.get('shared/fe/large', { offset: t.largeObjectSize - 5, length: 100 })).equals(back.subarray(t.largeObjectSize - 5, t.largeObjectSize + 40))).toBe(true);
      expect(await store.put('shared/fe/large', [randomBytes(t.largeObjectSize)], { ifAbsent: true })).toBe('exists');
      expect((await store.get('shared/fe/large', { offset: 0, length: 40 })).equals(head)).toBe(true);
      // Nothing left half-done.
      expect(await collect(store.listIncomplete(''))).toEqual([]);
    });

    it('lets exactly one of many concurrent put-if-absent writers of a key win', async () => {
      const store = await target().fresh();
      const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`writer ${i} ${randomBytes(8).toString('hex')}`));
      const results = await Promise.all(bodies.map((body) => store.put('chk-3/_metadata', [body], { ifAbsent: true, durable: true })));
      expect(results.filter((r) => r === 'created').length).toBe(1);
      expect(results.filter((r) => r === 'exists').length).toBe(7);
      const winner = bodies[results.indexOf('created')] as Buffer;
      expect((await store.get('chk-3/_metadata')).equals(winner)).toBe(true);
    });

    it('refuses keys that could leave the job root', async () => {
      const store = await target().fresh();
      for (const key of ['../escape', 'shared/../../x', '/abs', 'a//b', 'back\\slash']) {
        const error = await store.put(key, [Buffer.from('x')]).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error instanceof ChunkpointError && error.code === 'UNSAFE_PATH', `${key}: ${String(error)}`).toBe(true);
      }
      expect(await store.exists()).toBe(false);
    });
  });
}
