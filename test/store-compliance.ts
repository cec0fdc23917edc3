/**
 * The store contract, as tests: every `Store` implementation (and every
 * wrapper around one) must pass this suite unchanged. A test file calls
 * `storeCompliance` with a factory for fresh, empty job roots.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { commitCheckpoint, readJobState, removeCheckpoints } from '../src/checkpoint.js';
import { ChunkpointError, CorruptDataError } from '../src/errors.js';
import { BLOB_HEADER_SIZE, Codec, decodeBlob, encodeBlobHeader } from '../src/format/blob.js';
import { loadHasher } from '../src/format/content-key.js';
import { FORMAT_VERSION } from '../src/format/envelope.js';
import { newId } from '../src/format/ids.js';
import { KEY_ALGORITHM } from '../src/format/manifest.js';
import type { CheckpointMetadata } from '../src/format/metadata.js';
import { metadataKey, packKey, sessionKey } from '../src/format/names.js';
import { PACK_FOOTER_SIZE, PackIndex, decodePackFooter, decodePackTrailer, encodePackHeader } from '../src/format/pack.js';
import { Lease, readSession, sessionCommittable, sessionLive } from '../src/lease.js';
import { isNotFound } from '../src/store/not-found.js';
import type { ObjectInfo, ObjectReader, Store } from '../src/store/store.js';

export interface ComplianceTarget {
  /** A store rooted at a fresh, empty (not yet existing) job root. */
  fresh(): Promise<Store>;
  /** Leaves an interrupted write of `key` behind, as a crash would (fs: temp file; S3: incomplete multipart upload). */
  leaveIncompleteWrite(store: Store, key: string): Promise<void>;
  /** Size of an object that the store writes the way it writes its largest objects (S3: multipart). */
  largeObjectSize: number;
}

async function collect<T extends { key: string }>(objects: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const o of objects) out.push(o);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Everything a reader yields, read in pieces of `piece` bytes. */
async function drain(reader: ObjectReader, piece: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (;;) {
    const buf = Buffer.alloc(piece);
    const n = await reader.read(buf);
    if (n === 0) break;
    parts.push(buf.subarray(0, n));
  }
  await reader.close();
  return Buffer.concat(parts);
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function expectNotFound(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected OBJECT_NOT_FOUND, got success').toBeDefined();
  expect(isNotFound(error), `expected OBJECT_NOT_FOUND, got ${String(error)}`).toBe(true);
  // Not the caller's invalid input: the caller names jobs and checkpoints, never objects.
  expect(error).toBeInstanceOf(CorruptDataError);
  expect(error).toMatchObject({ kind: 'corrupt_data', code: 'OBJECT_NOT_FOUND', transient: false });
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

    it('stats size', async () => {
      const store = await target().fresh();
      await store.put('shared/12/stat', [randomBytes(777)]);
      expect(await store.stat('shared/12/stat')).toEqual({ key: 'shared/12/stat', size: 777 });
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

    it('lists interrupted writes apart from objects, with their target and the time their name carries, and deletes them', async () => {
      const t = target();
      const store = await t.fresh();
      await store.put('shared/3f/complete', [Buffer.from('done')]);
      const before = Date.now();
      await t.leaveIncompleteWrite(store, 'shared/3f/interrupted');
      const incomplete = await collect(store.listIncomplete('shared/'));
      expect(incomplete.length).toBe(1);
      const entry = incomplete[0] as { key: string; target: string; timeMs: number };
      expect(entry.key.startsWith('shared/3f/')).toBe(true);
      expect(entry.target).toBe('shared/3f/interrupted');
      // The time comes from the name the writer made (or, for foreign uploads, the server): now, not 1970.
      expect(Math.abs(entry.timeMs - before)).toBeLessThan(600_000);
      expect(await collect(store.listIncomplete('chk-'))).toEqual([]);
      // Never an object: not listed, not readable as the key it was writing.
      expect((await collect(store.list('shared/'))).map((o) => o.key)).toEqual(['shared/3f/complete']);
      await expectNotFound(store.get('shared/3f/interrupted'));
      await store.delete([entry.key]);
      expect(await collect(store.listIncomplete('shared/'))).toEqual([]);
      expect((await store.get('shared/3f/complete')).toString()).toBe('done');
    });

    it('streams an object through a writer: invisible until published (or published when finished), put-if-absent on publish', async () => {
      const store = await target().fresh();
      await store.put('shared/taken.pack', [Buffer.from('first')]);
      const pieces = [Buffer.from('head:'), randomBytes(1_500_000), Buffer.alloc(0), randomBytes(70_000), Buffer.from(':tail')];
      // Durable: a directory store syncs it as it finishes, and publish then syncs only its name.
      const writer = await store.createWriter('shared/new.pack', { durable: true });
      for (const piece of pieces) await writer.write([piece]);
      expect(writer.size).toBe(1_570_010);
      const loser = await store.createWriter('shared/taken.pack');
      await loser.write([Buffer.from('second, longer')]);
      const staged = [await writer.finish(), await loser.finish()];
      expect(staged.map((s) => s.size)).toEqual([1_570_010, 14]);
      // finish may be called again after a failure: it answers the same.
      expect(await writer.finish()).toEqual(staged[0]);
      if (staged[0]?.published === undefined) {
        // A store that stages invisibly: nothing is readable or listed until publish.
        await expectNotFound(store.get('shared/new.pack'));
        expect(await store.stat('shared/new.pack')).toBeUndefined();
        expect((await collect(store.list('shared/'))).map((o) => o.key)).toEqual(['shared/taken.pack']);
      }
      const results = await store.publish(staged, { durable: true });
      expect(results).toEqual(['created', 'exists']);
      expect((await store.get('shared/new.pack')).equals(Buffer.concat(pieces))).toBe(true);
      expect((await store.get('shared/taken.pack')).toString()).toBe('first');
      // Publishing again finds everything in place, and nothing is left half-done. (Behind retries, a
      // re-publish whose first attempt was lost cannot tell its own earlier success from this one's: a
      // writer's own object may come back 'created'; another writer's never does.)
      const again = await store.publish(staged);
      if (staged[0]?.published === undefined) {
        expect(['exists', 'created']).toContain(again[0]);
        expect(again[1]).toBe('exists');
      } else {
        expect(again).toEqual(results);
      }
      const left = (await collect(store.listIncomplete(''))).map((o) => o.key);
      expect(left.filter((key) => staged.some((s) => s.token === key))).toEqual([]);
      expect(await store.publish([])).toEqual([]);
    });

    it('leaves a finished but unpublished object as an interrupted write; an aborted writer leaves nothing', async () => {
      const store = await target().fresh();
      const aborted = await store.createWriter('shared/aborted.pack');
      await aborted.write([randomBytes(2000)]);
      await aborted.abort();
      expect(await collect(store.listIncomplete(''))).toEqual([]);
      expect(await collect(store.list(''))).toEqual([]);
      const writer = await store.createWriter('shared/abandoned.pack');
      await writer.write([randomBytes(1000)]);
      const staged = await writer.finish();
      if (staged.published !== undefined) return; // published at once: nothing can be left over
      // Under injected faults a retried finish may leave more than one.
      const incomplete = await collect(store.listIncomplete('shared/'));
      expect(incomplete.map((o) => o.key)).toContain(staged.token);
      expect(incomplete.every((o) => o.target === 'shared/abandoned.pack')).toBe(true);
      await store.delete(incomplete.map((o) => o.key));
      expect(await collect(store.listIncomplete(''))).toEqual([]);
      const error = await failure(store.publish([staged]));
      expect(error instanceof ChunkpointError && error.code === 'STAGED_WRITE_LOST', String(error)).toBe(true);
    });

    it('streams a range into caller memory in pieces of any size, ends at the end, and reports a missing object', async () => {
      const store = await target().fresh();
      const data = randomBytes(3_000_000);
      await store.put('shared/read.pack', [data]);
      expect((await drain(await store.openReader('shared/read.pack'), 65_536)).equals(data)).toBe(true);
      expect((await drain(await store.openReader('shared/read.pack', { offset: 1_000_001, length: 1_234_567 }), 4099)).equals(data.subarray(1_000_001, 2_234_568))).toBe(true);
      expect((await drain(await store.openReader('shared/read.pack', { offset: 2_999_990, length: 100 }), 7)).equals(data.subarray(2_999_990))).toBe(true);
      expect((await drain(await store.openReader('shared/read.pack', { offset: 10, length: 0 }), 7)).byteLength).toBe(0);
      await expectNotFound(store.openReader('shared/absent.pack', { offset: 0, length: 10 }));
      // A reader closed early releases what it holds (no leak, no hang).
      const early = await store.openReader('shared/read.pack');
      expect(await early.read(Buffer.alloc(10))).toBe(10);
      await early.close();
    });

    it('exists only once something is stored under the job root', async () => {
      const store = await target().fresh();
      expect(await store.exists()).toBe(false);
      await store.put('chk-1/_metadata', [Buffer.from('m')]);
      expect(await store.exists()).toBe(true);
    });

    it('round-trips a large object (S3: multipart upload) through put and through a writer, and keeps put-if-absent for it', async () => {
      const t = target();
      const store = await t.fresh();
      const head = randomBytes(40);
      const payload = randomBytes(t.largeObjectSize);
      const writer = await store.createWriter('shared/fe/written');
      await writer.write([head]);
      await writer.write([payload]);
      expect(await store.publish([await writer.finish()], { durable: true })).toEqual(['created']);
      expect((await store.get('shared/fe/written')).equals(Buffer.concat([head, payload]))).toBe(true);
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

    it('packs: a pack written through a writer reads back blob by blob at its handles, and its trailer alone indexes it', async () => {
      const store = await target().fresh();
      const hasher = await loadHasher();
      const session = newId();
      const key = packKey('shared', 'main', newId(), session);
      const writer = await store.createWriter(key);
      const index = new PackIndex();
      await writer.write([encodePackHeader(hasher)]);
      const chunks = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i * 997));
      for (const raw of chunks) {
        const header = encodeBlobHeader({ codec: Codec.Raw, rawLength: raw.byteLength, payloadLength: raw.byteLength, key: hasher.contentKey(raw) }, hasher);
        index.add(hasher.contentKey(raw), raw.byteLength, BLOB_HEADER_SIZE + raw.byteLength);
        await writer.write([header, raw]);
      }
      await writer.write([index.trailer(hasher)]);
      const staged = await writer.finish();
      await store.publish([staged], { durable: true });
      const size = (await store.stat(key))?.size ?? 0;
      expect(size).toBe(staged.size);
      // The trailer, read from the end alone, indexes every blob.
      const { count, entriesOffset } = decodePackFooter(await store.get(key, { offset: size - PACK_FOOTER_SIZE, length: PACK_FOOTER_SIZE }), size, key);
      expect(count).toBe(40);
      const entries = decodePackTrailer(await store.get(key, { offset: entriesOffset, length: size - entriesOffset }), size, hasher, key);
      expect(entries).toEqual(index.entries);
      // Every blob verifies at its handle, from ranged reads and from one streamed read of the whole span.
      for (const [i, e] of entries.entries()) {
        const blob = await store.get(key, { offset: e.offset, length: e.length });
        expect(decodeBlob(blob, e, hasher, (n) => Buffer.alloc(n), key).equals(chunks[i] as Buffer)).toBe(true);
      }
      const span = await drain(await store.openReader(key, { offset: 16, length: entriesOffset - 16 }), 30_000);
      expect(span.byteLength).toBe(entriesOffset - 16);
    });

    it('leases: a session object is live while renewed, committable only with margin left, and gone once ended', async () => {
      const store = await target().fresh();
      const hasher = await loadHasher();
      const lost: unknown[] = [];
      const lease = await Lease.acquire(store, hasher, { jobId: 'j', task: 'main', base: null, checkpointId: 1, leaseMs: 4000, durable: true }, (e) => lost.push(e));
      const first = await readSession(store, hasher, lease.session);
      expect(first).toMatchObject({ session: lease.session, task: 'main', checkpointId: 1, leaseMs: 4000 });
      expect(sessionLive(first, Date.now())).toBe(true);
      expect(sessionCommittable(first as NonNullable<typeof first>, Date.now())).toBe(true);
      // Renewals (every fifth of the lease) keep it alive past its first expiry.
      await sleep(5000);
      const later = await readSession(store, hasher, lease.session);
      expect(Date.parse(later?.expiresAt ?? '')).toBeGreaterThan(Date.parse(first?.expiresAt ?? ''));
      expect(sessionLive(later, Date.now())).toBe(true);
      expect(lost).toEqual([]);
      // gc's side: dead only after the expiry plus the margin; the commit's side: refused within the margin.
      const expiry = Date.parse(later?.expiresAt ?? '');
      expect(sessionLive(later, expiry + 999)).toBe(true);
      expect(sessionLive(later, expiry + 1001)).toBe(false);
      expect(sessionCommittable(later as NonNullable<typeof later>, expiry - 1001)).toBe(true);
      expect(sessionCommittable(later as NonNullable<typeof later>, expiry - 999)).toBe(false);
      await lease.end();
      expect(await readSession(store, hasher, lease.session)).toBeUndefined();
      expect(await store.stat(sessionKey(lease.session))).toBeUndefined();
    });

    it('leases: a holder that cannot renew in time loses its lease and says so (LEASE_LOST), once', async () => {
      const store = await target().fresh();
      const hasher = await loadHasher();
      const lost: unknown[] = [];
      const lease = await Lease.acquire(store, hasher, { jobId: 'j', task: 't', base: null, checkpointId: 1, leaseMs: 1000, durable: false }, (e) => lost.push(e));
      lease.stop(); // no renewals: as if the store stopped answering
      await sleep(800);
      const error = await failure(Promise.resolve().then(() => lease.check()));
      expect(error).toMatchObject({ code: 'LEASE_LOST', kind: 'conflict' });
      expect(lost.length).toBe(1);
      expect(await failure(lease.renew())).toMatchObject({ code: 'LEASE_LOST' });
      await lease.end();
    });

    it('the fence: removed ids are never committed again, and a commit above it whose base was removed withdraws itself', async () => {
      const store = await target().fresh();
      const hasher = await loadHasher();
      const metadata = (id: number, base: number | null): CheckpointMetadata => {
        const session = newId();
        return {
        formatVersion: FORMAT_VERSION,
        checkpointId: id,
        jobId: 'j',
        createdAt: new Date().toISOString(),
        keyAlgorithm: KEY_ALGORITHM,
        base,
        tasks: [{ task: 'main', session, manifest: { key: `taskowned/main/${session}.manifest`, size: 100, checksum: '0123456789abcdef' }, packs: [], files: 0, bytes: 0, chunks: 0 }],
        snapshot: { bytesRead: 0, bytesWritten: 0, filesReused: 0, chunksNew: 0, chunksDeduped: 0, durationMs: 0 },
        };
      };
      for (let id = 1; id <= 4; id++) await commitCheckpoint(store, metadata(id, id === 1 ? null : id - 1), hasher, true);
      expect(await readJobState(store)).toMatchObject({ ids: [1, 2, 3, 4], fence: 0 });
      // Two removers at once: the fence is their maximum, whatever the order.
      await Promise.all([removeCheckpoints(store, [1], await readJobState(store), true), removeCheckpoints(store, [2], await readJobState(store), true)]);
      let state = await readJobState(store);
      expect(state.ids).toEqual([3, 4]);
      expect(state.fence).toBe(2);
      // A stalled writer committing into a removed slot is withdrawn, and its id stays fenced.
      expect(await failure(commitCheckpoint(store, metadata(2, 1), hasher, true))).toMatchObject({ code: 'CHECKPOINT_FENCED', kind: 'conflict' });
      expect(await store.stat(metadataKey(2))).toBeUndefined();
      // A commit whose base was removed while it ran is withdrawn too.
      await removeCheckpoints(store, [3], await readJobState(store), true);
      expect(await failure(commitCheckpoint(store, metadata(5, 3), hasher, true))).toMatchObject({ code: 'BASE_REMOVED' });
      state = await readJobState(store);
      expect(state.ids).toEqual([4]);
      expect(state.fence).toBe(5);
      // Tombstones below the fence whose metadata is gone are cleaned up by the next removal; the fence stays.
      await removeCheckpoints(store, [4], state, true);
      state = await readJobState(store);
      expect(state).toMatchObject({ ids: [], fence: 5 });
      expect(state.tombstones.length).toBeLessThanOrEqual(3);
      // Two writers racing for one id: exactly one commits.
      const racers = await Promise.allSettled([commitCheckpoint(store, metadata(6, null), hasher, true), commitCheckpoint(store, metadata(6, null), hasher, true)]);
      expect(racers.filter((r) => r.status === 'fulfilled').length).toBe(1);
      expect(racers.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'CHECKPOINT_EXISTS' } });
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
