/**
 * Property-based fuzzing of everything chunkpoint reads back from a store or
 * from another process: `_metadata` and task manifests (bytes and
 * structure), blobs, pack trailers, and task snapshots. Each mutated input must be either
 * accepted with every invariant the restore relies on intact, or refused
 * with a typed ChunkpointError — never another exception, a hang or an
 * unbounded allocation. A smaller number of mutated checkpoints (metadata or
 * manifest) goes through a full restore, which must succeed or leave the
 * target untouched, and never write outside it.
 *
 * Seeded (fast-check); the seed is printed. Replay: CHUNKPOINT_SEED=<seed> npm test.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBlob } from '../src/format/blob.js';
import { loadHasher, type Hasher } from '../src/format/content-key.js';
import { ChunkpointError, CorruptDataError } from '../src/errors.js';
import { ENVELOPE_HEADER_SIZE } from '../src/format/envelope.js';
import { decodeManifest, encodeManifest, type TaskManifest } from '../src/format/manifest.js';
import { decodeMetadata, encodeMetadata, validateTaskSnapshot, type CheckpointMetadata, type ManifestRef } from '../src/format/metadata.js';
import { PACK_FOOTER_SIZE, PACK_HEADER_SIZE, PackTrailer } from '../src/format/pack.js';
import { handleKey, parseStoreKey, unsafeNameReason } from '../src/format/names.js';
import { Chunkpoint, type TaskSnapshot } from '../src/index.js';
import { checkpointManifests, copyTree, isEmptyOrMissing, objectPath, packOf, removeTempDirs, rocksState, tempDir, treeDigest, type RocksState } from './support.js';

const SEED = Number(process.env['CHUNKPOINT_SEED'] ?? 20261121);
// Metadata is O(tasks) now; the files and chunk handles it used to hold are in the manifest, which takes half the runs.
const RUNS = { metadataBytes: 1500, manifestBytes: 1500, metadataFields: 2000, manifestFields: 2000, blobs: 2500, trailers: 1500, taskSnapshots: 1500, restores: 20 };

let hasher: Hasher;
let state: RocksState;
let cp: Chunkpoint;
let store: string;
let metadataBytes: Buffer;
let manifestBytes: Buffer;
/** Where the manifest is and what binds it: the one task of chk-1. */
let manifestRef: ManifestRef;
let taskSnapshot: TaskSnapshot;
/** One LZ4 and one raw blob of the checkpoint, with the chunk each belongs to. */
let blobs: { data: Buffer; key: string; rawLength: number }[];
/** The trailer of one pack of the checkpoint (entries and footer), the pack's size, and the manifest's handles into it. */
let trailer: { bytes: Buffer; packSize: number; handles: { offset: number; length: number; key: string; rawLength: number }[] };

beforeAll(async () => {
  console.log(`fuzz seed=${SEED} (replay: CHUNKPOINT_SEED=${SEED} npm test)`);
  hasher = await loadHasher();
  state = await rocksState(3 * 1024 * 1024, 81);
  cp = new Chunkpoint({ threads: 2 });
  store = await tempDir('store');
  await cp.snapshot(state.dir, { store, job: 'fuzz' });
  metadataBytes = await readFile(join(store, 'fuzz', 'chk-1', '_metadata'));
  const [task] = await checkpointManifests(join(store, 'fuzz'), 1);
  if (task === undefined) throw new Error('test setup: chk-1 has no task');
  manifestRef = task.entry.manifest;
  manifestBytes = await readFile(objectPath(join(store, 'fuzz'), manifestRef.key));
  taskSnapshot = await cp.snapshotTask(state.dir, { store, job: 'fuzz', task: 't' });
  const byCodec = new Map<number, { data: Buffer; key: string; rawLength: number }>();
  for (const file of task.manifest.files) {
    for (const chunk of file.chunks) {
      const pack = await readFile(objectPath(join(store, 'fuzz'), packOf(chunk)));
      const data = pack.subarray(chunk.handle.offset, chunk.handle.offset + chunk.handle.length);
      const codec = data.readUInt8(5);
      if (!byCodec.has(codec)) byCodec.set(codec, { data, key: chunk.key, rawLength: chunk.rawLength });
    }
  }
  blobs = [...byCodec.values()];
  const first = task.manifest.files.flatMap((f) => f.chunks)[0];
  if (first === undefined) throw new Error('test setup: no chunk');
  const packBytes = await readFile(objectPath(join(store, 'fuzz'), packOf(first)));
  const count = packBytes.readUInt32LE(packBytes.byteLength - PACK_FOOTER_SIZE);
  trailer = {
    bytes: packBytes.subarray(packBytes.byteLength - PACK_FOOTER_SIZE - count * 32),
    packSize: packBytes.byteLength,
    handles: task.manifest.files.flatMap((f) => f.chunks).filter((c) => packOf(c) === packOf(first)).map((c) => ({ offset: c.handle.offset, length: c.handle.length, key: c.key, rawLength: c.rawLength })),
  };
  expect(blobs.length, 'the state should produce both LZ4 and raw blobs').toBe(2);
});

afterAll(async () => {
  await cp?.close();
  await removeTempDirs();
});

/**
 * The envelope (magic and version of `original`) rebuilt around a JSON part and a binary tail, so a
 * mutation reaches the parser and validator instead of failing the checksum.
 */
function envelope(original: Buffer, json: Buffer, tail: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.concat([original.subarray(0, ENVELOPE_HEADER_SIZE), json, tail]);
  out.writeUInt32LE(json.byteLength, 12);
  Buffer.from(hasher.checksum64(out.subarray(ENVELOPE_HEADER_SIZE)), 'hex').copy(out, 16);
  return out;
}

/** An envelope's JSON part (as text) and its binary tail. */
function split(data: Buffer): { json: Buffer; tail: Buffer } {
  const length = data.readUInt32LE(12);
  return { json: data.subarray(ENVELOPE_HEADER_SIZE, ENVELOPE_HEADER_SIZE + length), tail: data.subarray(ENVELOPE_HEADER_SIZE + length) };
}

/** A byte-level edit: flip a bit, set a byte, cut, or splice in bytes (positions are fractions of the length). */
const byteEdit = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
);
type ByteEdit = typeof byteEdit extends fc.Arbitrary<infer T> ? T : never;

function applyEdits(data: Buffer, edits: readonly ByteEdit[], from = 0): Buffer {
  let out = Buffer.from(data);
  for (const edit of edits) {
    const span = out.byteLength - from;
    if (span <= 0) break;
    const at = from + Math.floor(edit.at * span);
    if (edit.kind === 'flip' && at < out.byteLength) out[at] = (out[at] ?? 0) ^ (1 << edit.bit);
    else if (edit.kind === 'set' && at < out.byteLength) out[at] = edit.value;
    else if (edit.kind === 'cut') out = out.subarray(0, at);
    else if (edit.kind === 'splice') out = Buffer.concat([out.subarray(0, at), Buffer.from(edit.bytes), out.subarray(at)]);
  }
  return out;
}

/** A task's references, as metadata and task snapshots carry them: what gc, retention and restore resolve. */
function expectSoundReferences(task: string, session: string, manifest: { key: string }, packs: readonly { key: string; size: number }[]): void {
  expect(unsafeNameReason(task)).toBeUndefined();
  expect(unsafeNameReason(manifest.key)).toBeUndefined();
  expect(parseStoreKey(manifest.key)).toMatchObject({ kind: 'manifest', task, session });
  const keys = new Set<string>();
  for (const p of packs) {
    expect(unsafeNameReason(p.key)).toBeUndefined();
    const parsed = parseStoreKey(p.key);
    expect(parsed?.kind).toBe('pack');
    // A task never references another task's private packs.
    if (parsed?.kind === 'pack' && parsed.area === 'taskowned') expect(parsed.task).toBe(task);
    expect(keys.has(p.key)).toBe(false);
    keys.add(p.key);
    expect(p.size).toBeGreaterThanOrEqual(PACK_HEADER_SIZE);
  }
}

/** What restore, gc and retention rely on when `_metadata` decodes. */
function expectRestorable(m: CheckpointMetadata): void {
  expect(m.tasks.length).toBeGreaterThan(0);
  expect(new Set(m.tasks.map((t) => t.task)).size).toBe(m.tasks.length);
  for (const t of m.tasks) expectSoundReferences(t.task, t.session, t.manifest, t.packs);
}

/** What restore relies on when a manifest decodes: safe unique paths, chunks adding up, every blob inside a listed pack. */
function expectRestorableManifest(m: TaskManifest): void {
  expectSoundReferences(m.task, m.session, { key: `taskowned/${m.task}/${m.session}.manifest` }, m.packs);
  const packs = new Map(m.packs.map((p) => [p.key, p.size]));
  const paths = new Set<string>();
  for (const file of m.files) {
    expect(unsafeNameReason(file.path)).toBeUndefined();
    expect(paths.has(file.path)).toBe(false);
    paths.add(file.path);
    expect(file.chunks.reduce((n, c) => n + c.rawLength, 0)).toBe(file.size);
    for (const c of file.chunks) {
      const key = handleKey(c.handle);
      expect(unsafeNameReason(key)).toBeUndefined();
      const size = packs.get(key);
      expect(size, `chunk of ${file.path} in unlisted pack ${key}`).toBeDefined();
      expect(c.handle.offset).toBeGreaterThanOrEqual(PACK_HEADER_SIZE);
      expect(c.handle.offset + c.handle.length).toBeLessThanOrEqual(size ?? 0);
    }
  }
  for (const d of m.directories) expect(unsafeNameReason(d)).toBeUndefined();
}

/**
 * Runs `decode` on hostile input: it returns, or throws a ChunkpointError of an expected kind.
 * Input claiming another format version is refused as such (invalid_input FORMAT_UNSUPPORTED), never as damage.
 */
function decodeOrRefuse<T>(decode: () => T, kinds: readonly string[]): T | undefined {
  try {
    return decode();
  } catch (error) {
    if (!(error instanceof ChunkpointError)) throw new Error(`untyped failure: ${String(error)}`, { cause: error });
    if (error.code !== 'FORMAT_UNSUPPORTED') expect(kinds).toContain(error.kind);
    else expect(error.kind).toBe('invalid_input');
    expect(error.code).toMatch(/^[A-Z][A-Z0-9_]+$/);
    return undefined;
  }
}

const decodeManifestAs = (input: Buffer): TaskManifest => decodeManifest(input, hasher, 'fuzzed', { task: 'main', session: parseSession(manifestRef.key) });

function parseSession(key: string): string {
  const parsed = parseStoreKey(key);
  if (parsed?.kind !== 'manifest') throw new Error(`test setup: ${key} is not a manifest key`);
  return parsed.session;
}

/** Structural mutations of JSON: replace, delete or retype a value at a random place, or plant a hostile name. */
const HOSTILE_STRINGS = ['..', '../x', '/etc/passwd', 'a/../../b', 'a\\b', 'a\u0000b', 'C:/x', '', 'a//b', './a', 'x'.repeat(5000), 'ok.sst'];
const HOSTILE_NUMBERS = [-1, 0, 1, 2 ** 31, 2 ** 32, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, 1e308, 0.5, -0];
const jsonEdit = fc.record({
  pick: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  action: fc.constantFrom('replace', 'delete', 'hostileString', 'hostileNumber', 'duplicate', 'hugeArray'),
  value: fc.jsonValue({ maxDepth: 2 }),
  str: fc.constantFrom(...HOSTILE_STRINGS),
  num: fc.constantFrom(...HOSTILE_NUMBERS),
});
type JsonEdit = typeof jsonEdit extends fc.Arbitrary<infer T> ? T : never;

/** Every (container, key) pair in a JSON tree, so an edit can land anywhere. */
function slots(root: unknown): { parent: Record<string, unknown> | unknown[]; key: string | number }[] {
  const out: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        out.push({ parent: node, key: i });
        walk(child);
      });
    } else if (typeof node === 'object' && node !== null) {
      for (const [k, child] of Object.entries(node)) {
        out.push({ parent: node as Record<string, unknown>, key: k });
        walk(child);
      }
    }
  };
  walk(root);
  return out;
}

function applyJsonEdits(root: unknown, edits: readonly JsonEdit[]): void {
  for (const edit of edits) {
    const all = slots(root);
    const slot = all[Math.floor(edit.pick * all.length)];
    if (slot === undefined) continue;
    const { parent, key } = slot;
    const set = (v: unknown): void => {
      if (Array.isArray(parent)) parent[key as number] = v;
      else parent[key as string] = v;
    };
    const current = Array.isArray(parent) ? parent[key as number] : parent[key as string];
    switch (edit.action) {
      case 'replace':
        set(edit.value);
        break;
      case 'delete':
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key as string];
        break;
      case 'hostileString':
        set(edit.str);
        break;
      case 'hostileNumber':
        set(edit.num);
        break;
      case 'duplicate':
        if (Array.isArray(parent)) parent.push(structuredClone(current));
        break;
      case 'hugeArray':
        // A count field gone absurd: many copies of one element (bounded here, so the test itself stays small).
        if (Array.isArray(parent)) for (let i = 0; i < 200; i++) parent.push(structuredClone(current));
        break;
    }
  }
}

describe(`fuzzing hostile input (seed ${SEED})`, () => {
  it(`${RUNS.metadataBytes} byte-level mutations of _metadata: decoded soundly or refused as corrupt`, () => {
    fc.assert(
      fc.property(fc.array(byteEdit, { minLength: 1, maxLength: 6 }), fc.boolean(), (edits, reseal) => {
        // Half the cases re-seal the envelope around a mutated body, so the JSON parser and validator see them.
        const input = reseal ? envelope(metadataBytes, applyEdits(split(metadataBytes).json, edits)) : applyEdits(metadataBytes, edits);
        const decoded = decodeOrRefuse(() => decodeMetadata(input, hasher, 'fuzzed', 1), ['corrupt_data']);
        if (decoded !== undefined) expectRestorable(decoded);
      }),
      { seed: SEED, numRuns: RUNS.metadataBytes },
    );
  });

  it(`${RUNS.manifestBytes} byte-level mutations of a task manifest (JSON part and chunk records): decoded soundly or refused as corrupt`, () => {
    fc.assert(
      fc.property(fc.array(byteEdit, { minLength: 1, maxLength: 6 }), fc.constantFrom('raw', 'json', 'tail'), (edits, where) => {
        // Re-sealed cases reach the parser and validator: mutated JSON, or mutated binary chunk records.
        const { json, tail } = split(manifestBytes);
        const input = where === 'raw' ? applyEdits(manifestBytes, edits) : where === 'json' ? envelope(manifestBytes, applyEdits(json, edits), tail) : envelope(manifestBytes, json, applyEdits(tail, edits));
        const decoded = decodeOrRefuse(() => decodeManifestAs(input), ['corrupt_data']);
        if (decoded !== undefined) expectRestorableManifest(decoded);
      }),
      { seed: SEED + 5, numRuns: RUNS.manifestBytes },
    );
  });

  it(`${RUNS.metadataFields} structural mutations of _metadata fields (hostile names, absurd numbers, missing, duplicated, retyped)`, () => {
    const body = JSON.parse(split(metadataBytes).json.toString('utf8')) as unknown;
    fc.assert(
      fc.property(fc.array(jsonEdit, { minLength: 1, maxLength: 4 }), (edits) => {
        const mutated = structuredClone(body);
        applyJsonEdits(mutated, edits);
        const input = envelope(metadataBytes, Buffer.from(JSON.stringify(mutated), 'utf8'));
        const decoded = decodeOrRefuse(() => decodeMetadata(input, hasher, 'fuzzed', 1), ['corrupt_data']);
        if (decoded !== undefined) {
          expectRestorable(decoded);
          // What decodes re-encodes to something that decodes to the same thing.
          expect(decodeMetadata(encodeMetadata(decoded, hasher), hasher, 're-encoded', 1)).toEqual(decoded);
        }
      }),
      { seed: SEED + 1, numRuns: RUNS.metadataFields },
    );
  });

  it(`${RUNS.manifestFields} structural mutations of task manifest fields (files, paths, sizes, chunk counts, pack table)`, () => {
    const { json, tail } = split(manifestBytes);
    const body = JSON.parse(json.toString('utf8')) as unknown;
    fc.assert(
      fc.property(fc.array(jsonEdit, { minLength: 1, maxLength: 4 }), (edits) => {
        const mutated = structuredClone(body);
        applyJsonEdits(mutated, edits);
        const input = envelope(manifestBytes, Buffer.from(JSON.stringify(mutated), 'utf8'), tail);
        const decoded = decodeOrRefuse(() => decodeManifestAs(input), ['corrupt_data']);
        if (decoded !== undefined) {
          expectRestorableManifest(decoded);
          expect(decodeManifestAs(encodeManifest(decoded, hasher))).toEqual(decoded);
        }
      }),
      { seed: SEED + 6, numRuns: RUNS.manifestFields },
    );
  });

  it(`${RUNS.blobs} mutations of LZ4 and raw blobs: verified bytes or CHUNK_CORRUPT`, () => {
    const scratch = (n: number): Buffer => Buffer.alloc(n);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: blobs.length - 1 }), fc.array(byteEdit, { minLength: 1, maxLength: 4 }), fc.boolean(), (which, edits, resealHeader) => {
        const blob = blobs[which];
        if (blob === undefined) throw new Error('no blob');
        let input = applyEdits(blob.data, edits);
        if (resealHeader && input.byteLength >= 40) {
          // A consistent header (valid checksum) around a damaged payload or lengths: the decoder's later checks must catch it.
          input.writeUInt32LE(hasher.checksum32(input.subarray(0, 36)), 36);
        }
        try {
          const raw = decodeBlob(input, blob, hasher, scratch, 'fuzzed blob');
          // Accepted only when the bytes are exactly the chunk's.
          expect(hasher.contentKey(raw)).toBe(blob.key);
          expect(raw.byteLength).toBe(blob.rawLength);
        } catch (error) {
          if (!(error instanceof CorruptDataError)) throw new Error(`untyped failure: ${String(error)}`, { cause: error });
          expect(error.code).toBe('CHUNK_CORRUPT');
        }
        input = Buffer.alloc(0);
      }),
      { seed: SEED + 2, numRuns: RUNS.blobs },
    );
  });

  it(`${RUNS.trailers} mutations of a pack trailer, the index a commit checks handles against: refused as PACK_TRAILER, or every entry contiguous inside the pack and found by its offset`, () => {
    fc.assert(
      fc.property(fc.array(byteEdit, { minLength: 1, maxLength: 4 }), fc.boolean(), (edits, reseal) => {
        const input = applyEdits(trailer.bytes, edits);
        if (reseal && input.byteLength >= PACK_FOOTER_SIZE) {
          // A consistent checksum around damaged entries: the structural checks must catch it.
          const footer = input.byteLength - PACK_FOOTER_SIZE;
          Buffer.from(hasher.checksum64(input.subarray(0, footer + 16)), 'hex').copy(input, footer + 16);
        }
        let index: PackTrailer;
        try {
          index = PackTrailer.check(input, trailer.packSize, hasher, 'fuzzed trailer');
        } catch (error) {
          if (!(error instanceof ChunkpointError)) throw new Error(`untyped failure: ${String(error)}`, { cause: error });
          expect(['PACK_TRAILER', 'FORMAT_UNSUPPORTED']).toContain(error.code);
          return;
        }
        let end = PACK_HEADER_SIZE;
        for (let i = 0; i < index.count; i++) {
          const e = index.entry(i);
          expect(e.offset).toBe(end);
          expect(index.find(e.offset)).toBe(i);
          end += e.length;
        }
        expect(end).toBeLessThanOrEqual(trailer.packSize);
        // The unmutated handles still match only entries that are exactly theirs.
        for (const h of trailer.handles) {
          const at = index.find(h.offset);
          if (at >= 0 && index.matches(at, Buffer.from(h.key, 'hex'), h.rawLength, h.length)) {
            expect(index.entry(at)).toEqual({ key: h.key, rawLength: h.rawLength, length: h.length, offset: h.offset });
          }
        }
      }),
      { seed: SEED + 5, numRuns: RUNS.trailers },
    );
  });

  it(`${RUNS.taskSnapshots} mutations of a task snapshot handed to the coordinator: valid or refused`, () => {
    fc.assert(
      fc.property(fc.array(jsonEdit, { minLength: 1, maxLength: 4 }), (edits) => {
        const mutated = structuredClone(taskSnapshot) as unknown;
        applyJsonEdits(mutated, edits);
        const decoded = decodeOrRefuse(() => validateTaskSnapshot(JSON.parse(JSON.stringify(mutated)), 'fuzzed task snapshot'), ['invalid_input', 'corrupt_data']);
        if (decoded !== undefined) expectSoundReferences(decoded.task, decoded.session, decoded.manifest, decoded.packs);
      }),
      { seed: SEED + 3, numRuns: RUNS.taskSnapshots },
    );
  });

  it(`${RUNS.restores} mutated checkpoints (metadata or manifest) through a full restore: restored or refused, target untouched, nothing written outside`, async () => {
    const metadataBody = JSON.parse(split(metadataBytes).json.toString('utf8')) as { tasks: { manifest: { size: number; checksum: string } }[] };
    const { json: manifestJson, tail: manifestTail } = split(manifestBytes);
    const manifestBody = JSON.parse(manifestJson.toString('utf8')) as unknown;
    const original = await treeDigest(state.dir);
    let restored = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(jsonEdit, { minLength: 1, maxLength: 3 }), fc.boolean(), async (edits, ofManifest) => {
        const root = await tempDir('fuzzjob');
        await copyTree(join(store, 'fuzz'), join(root, 'job'));
        const metadataOut = structuredClone(metadataBody);
        if (ofManifest) {
          // A mutated manifest, bound into _metadata (size and checksum), so the manifest's own validation is what stands in the way.
          const mutated = structuredClone(manifestBody);
          applyJsonEdits(mutated, edits);
          const encoded = envelope(manifestBytes, Buffer.from(JSON.stringify(mutated), 'utf8'), manifestTail);
          await writeFile(objectPath(join(root, 'job'), manifestRef.key), encoded);
          const task = metadataOut.tasks[0];
          if (task === undefined) throw new Error('test setup: no task');
          task.manifest.size = encoded.byteLength;
          task.manifest.checksum = encoded.subarray(16, 24).toString('hex');
        } else {
          applyJsonEdits(metadataOut, edits);
        }
        await writeFile(join(root, 'job', 'chk-1', '_metadata'), envelope(metadataBytes, Buffer.from(JSON.stringify(metadataOut), 'utf8')));
        const parent = await tempDir('fuzztarget');
        const target = join(parent, 'out');
        try {
          await cp.restore({ path: join(root, 'job', 'chk-1') }, target);
          restored++;
          // Whatever was accepted came from verified blobs: every restored file is one of the state's files.
          for (const [path, info] of await treeDigest(target)) {
            const known = [...original.values()].some((o) => o.sha256 === info.sha256) || info.size === 0;
            expect(known, `restored ${path} has content no state file has`).toBe(true);
          }
        } catch (error) {
          if (!(error instanceof ChunkpointError)) throw new Error(`untyped failure: ${String(error)}`, { cause: error });
          refused++;
          expect(await isEmptyOrMissing(target)).toBe(true);
        }
        expect((await readdir(parent)).filter((n) => n !== 'out')).toEqual([]);
      }),
      { seed: SEED + 4, numRuns: RUNS.restores },
    );
    console.log(`fuzz restores: ${restored} restored, ${refused} refused`);
  });
});
