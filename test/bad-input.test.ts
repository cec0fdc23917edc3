/**
 * Bad input and damaged stores: every refusal carries its stable `code`, and
 * nothing is written into the restore target (or the store) when it happens.
 * The refusals of one bad input each are rows of one table (REFUSALS), run by
 * one loop that checks code, kind, message and what must stay unchanged.
 * One real RocksDB state, one committed checkpoint; every corruption works on
 * its own copy of the job root, so the cases cannot interfere.
 */
import { writeFileSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Chunkpoint, ChunkpointError, type ErrorCode, type ErrorKind } from '../src/index.js';
import { BLOB_HEADER_SIZE } from '../src/format/blob.js';
import { loadHasher } from '../src/format/content-key.js';
import { ENVELOPE_HEADER_SIZE, encodeEnvelope } from '../src/format/envelope.js';
import { MANIFEST_MAGIC, type ChunkRef, type FileEntry, type TaskManifest } from '../src/format/manifest.js';
import { METADATA_MAGIC } from '../src/format/metadata.js';
import { lz4 } from '../src/native.js';
import {
  checkpointManifests,
  envelopeJson,
  isEmptyOrMissing,
  objectPath,
  packOf,
  refusal,
  removeTempDirs,
  rocksState,
  tempDir,
  treeDigest,
  type RocksState,
  type StoredTaskEntry,
} from './support.js';

const JOB = 'job';

let state: RocksState;
let chunkpoint: Chunkpoint;
let store: string;
let jobRoot: string;
/** The committed chk-1 metadata, read from its envelope without chunkpoint's decoder. */
let original: StoredMetadata;
/** The manifest of its one task: every file and the handle of every chunk. */
let manifest: TaskManifest;

/** `_metadata` and manifest JSON as stored, to mutate. */
interface StoredMetadata {
  tasks: StoredTaskEntry[];
  [field: string]: unknown;
}
interface StoredManifest {
  packs: [string, number][];
  files: { path: string; size: number; mtimeMs: number; chunks: number }[];
  directories: string[];
  [field: string]: unknown;
}

beforeAll(async () => {
  state = await rocksState();
  chunkpoint = new Chunkpoint({ threads: 2 });
  store = await tempDir('store');
  jobRoot = join(store, JOB);
  const result = await chunkpoint.snapshot(state.dir, { store, job: JOB });
  expect(result.checkpoint).toBe('chk-1');
  original = envelopeJson(await readFile(join(jobRoot, 'chk-1', '_metadata')));
  manifest = (await checkpointManifests(jobRoot, 1))[0]?.manifest as TaskManifest;
  expect(manifest.files.length).toBeGreaterThan(2);
});

afterAll(async () => {
  await chunkpoint?.close();
  await removeTempDirs();
});

async function expectRefusal(promise: Promise<unknown>, code: string, kind?: ErrorKind): Promise<ChunkpointError> {
  const error = await refusal(promise);
  expect(error.code, error.message).toBe(code);
  if (kind !== undefined) expect(error.kind, error.message).toBe(kind);
  return error;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** A restore target that does not exist yet, in a fresh directory nothing else uses. */
async function newTarget(): Promise<{ parent: string; target: string }> {
  const parent = await tempDir('target');
  return { parent, target: join(parent, 'restored') };
}

/** Nothing was created: the target is missing and its parent holds nothing (no staging, no escaped file). */
async function expectUntouched(where: { parent: string; target: string }): Promise<void> {
  expect(await exists(where.target)).toBe(false);
  expect(await readdir(where.parent)).toEqual([]);
}

/** After a failed restore: the target is empty or missing, and nothing else appeared beside it. */
async function expectNothingRestored(where: { parent: string; target: string }): Promise<void> {
  expect(await isEmptyOrMissing(where.target)).toBe(true);
  expect((await readdir(where.parent)).filter((name) => name !== 'restored')).toEqual([]);
}

/** A private copy of the committed job root, relocated to a new directory. */
async function copyJobRoot(): Promise<string> {
  const copy = join(await tempDir('copy'), 'relocated-job');
  await cp(jobRoot, copy, { recursive: true });
  return copy;
}

function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`test setup: no item ${index} (of ${items.length})`);
  return item;
}

/** Rewrites `<jobCopy>/chk-1/_metadata` with a mutated body inside a valid envelope (correct checksum). */
async function rewriteMetadata(jobCopy: string, mutate: (metadata: StoredMetadata) => void): Promise<void> {
  const file = join(jobCopy, 'chk-1', '_metadata');
  const metadata = envelopeJson<StoredMetadata>(await readFile(file));
  mutate(metadata);
  await writeFile(file, encodeEnvelope(METADATA_MAGIC, metadata, await loadHasher()));
}

/**
 * Rewrites the task's manifest with a mutated JSON part inside a valid envelope (its chunk records
 * kept), and binds it into `_metadata` (size and checksum), so only the manifest's own validation
 * stands between the mutation and the restore.
 */
async function rewriteManifest(jobCopy: string, mutate: (m: StoredManifest) => void): Promise<void> {
  const key = at(original.tasks, 0).manifest.key;
  const data = await readFile(objectPath(jobCopy, key));
  const json = envelopeJson<StoredManifest>(data);
  const tail = data.subarray(ENVELOPE_HEADER_SIZE + data.readUInt32LE(12));
  mutate(json);
  const encoded = encodeEnvelope(MANIFEST_MAGIC, json, await loadHasher(), tail);
  await writeFile(objectPath(jobCopy, key), encoded);
  await rewriteMetadata(jobCopy, (m) => {
    const task = at(m.tasks, 0);
    task.manifest.size = encoded.byteLength;
    task.manifest.checksum = encoded.subarray(16, 24).toString('hex');
  });
}

async function withRawMetadata(jobCopy: string, edit: (data: Buffer) => Buffer): Promise<void> {
  const file = join(jobCopy, 'chk-1', '_metadata');
  await writeFile(file, edit(await readFile(file)));
}

interface ChunkAt {
  file: FileEntry;
  index: number;
  chunk: ChunkRef;
}

const blobId = (chunk: ChunkRef): string => `${packOf(chunk)}@${chunk.handle.offset}`;

/** Every chunk of the checkpoint whose blob no other chunk references, so a damaged blob fails exactly there. */
function uniqueChunks(): ChunkAt[] {
  const uses = new Map<string, number>();
  for (const file of manifest.files) for (const chunk of file.chunks) uses.set(blobId(chunk), (uses.get(blobId(chunk)) ?? 0) + 1);
  const out: ChunkAt[] = [];
  for (const file of manifest.files) {
    file.chunks.forEach((chunk, index) => {
      if (uses.get(blobId(chunk)) === 1) out.push({ file, index, chunk });
    });
  }
  return out;
}

/** The pack file a chunk's blob lives in. */
function packPath(jobCopy: string, chunk: ChunkRef): string {
  return objectPath(jobCopy, packOf(chunk));
}

/** Changes bytes of one blob in place: `edit` gets the blob (a view into its pack) and may modify it. */
async function editBlob(jobCopy: string, chunk: ChunkRef, edit: (blob: Buffer) => void): Promise<void> {
  const pack = await readFile(packPath(jobCopy, chunk));
  edit(pack.subarray(chunk.handle.offset, chunk.handle.offset + chunk.handle.length));
  await writeFile(packPath(jobCopy, chunk), pack);
}

/** Codec byte of a blob's header: 0 raw, 1 LZ4. */
async function codecOf(jobCopy: string, chunk: ChunkRef): Promise<number> {
  return (await readFile(packPath(jobCopy, chunk))).readUInt8(chunk.handle.offset + 5);
}

/** A chunk stored with the given codec, preferring a later chunk of a multi-chunk file (so 'chunk <n>' is not just 'chunk 0'). */
async function pickChunk(jobCopy: string, codec: number): Promise<ChunkAt> {
  const candidates: ChunkAt[] = [];
  for (const c of uniqueChunks()) if ((await codecOf(jobCopy, c.chunk)) === codec) candidates.push(c);
  const picked = candidates.find((c) => c.index > 0) ?? candidates[0];
  if (picked === undefined) throw new Error(`test setup: no blob with codec ${codec} in the checkpoint`);
  return picked;
}

async function restoreCopy(jobCopy: string, target: string): Promise<unknown> {
  return chunkpoint.restore({ path: join(jobCopy, 'chk-1') }, target);
}

/**
 * Every refusal of one bad input has the same shape: make the input in places no other case uses,
 * make the call, expect its code, kind and message pieces, and check that nothing was lost or changed.
 * The cases are rows of one table (REFUSALS), run by one loop; what does not fit that shape (several
 * entry points and inputs at once, successes, controls) stays a test of its own below.
 */
interface RefusalCase {
  name: string;
  /** Makes the bad input (and notes what must not change); returns the call to refuse and how to check it. */
  setup: () => Promise<Scene>;
  code: ErrorCode;
  kind: ErrorKind;
  /** Pieces the message must contain. */
  message?: string[];
}

interface Scene {
  /** The call that must be refused. */
  call: () => Promise<unknown>;
  /** Other entry points that must refuse the same input with the same code and kind (inspect of the same checkpoint). */
  alsoRefused?: (() => Promise<unknown>)[];
  /** Message pieces known only once the input is made (the file and chunk it damaged). */
  message?: string[];
  /** Further checks of the error. */
  check?: (error: ChunkpointError) => void;
  /** Asserts that nothing was lost or changed. */
  unchanged: () => Promise<void>;
}

/** What a damage may add to its case's checks. */
interface Damage {
  message?: string[];
  check?: (error: ChunkpointError) => void;
  /** More that must be unchanged, besides the restore target. */
  unchanged?: (where: { parent: string; target: string }) => Promise<void>;
}

/**
 * A private copy of the job root, damaged by `damage`, restored into a fresh target (and inspected,
 * with `inspect`). The target must stay untouched, or, for damage found while restoring chunks, hold
 * nothing restored.
 */
function damagedCopy(damage: (copy: string) => Promise<Damage | undefined | void>, options: { inspect?: boolean; target?: 'untouched' | 'nothing-restored' } = {}): () => Promise<Scene> {
  return async () => {
    const copy = await copyJobRoot();
    const extra = (await damage(copy)) ?? {};
    const where = await newTarget();
    const path = join(copy, 'chk-1');
    return {
      call: () => restoreCopy(copy, where.target),
      alsoRefused: options.inspect === true ? [() => chunkpoint.inspect({ path })] : [],
      message: extra.message ?? [],
      ...(extra.check === undefined ? {} : { check: extra.check }),
      unchanged: async () => {
        await (options.target === 'nothing-restored' ? expectNothingRestored(where) : expectUntouched(where));
        await extra.unchanged?.(where);
      },
    };
  };
}

/** A snapshot of the state directory `makeState` makes, into a fresh store that must stay empty. */
function badState(makeState: () => Promise<string>): () => Promise<Scene> {
  return async () => {
    const snapStore = await tempDir('store');
    const dir = await makeState();
    return {
      call: () => chunkpoint.snapshot(dir, { store: snapStore, job: JOB }),
      unchanged: async () => expect(await readdir(snapStore)).toEqual([]),
    };
  };
}

/** A state directory holding CURRENT and a file whose name is not UTF-8 (latin-1 'a' 0xff). */
async function latin1State(): Promise<string> {
  const dir = await tempDir('latin1');
  await writeFile(join(dir, 'CURRENT'), 'MANIFEST-000001\n');
  writeFileSync(Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x61, 0xff])]), 'x');
  return dir;
}

/** Flips one payload byte of the picked blob. */
function flipByte(offsetIn: (blob: Buffer) => number, mask: number): (blob: Buffer) => void {
  return (blob) => {
    const offset = offsetIn(blob);
    blob.writeUInt8(blob.readUInt8(offset) ^ mask, offset);
  };
}

/**
 * The first payload byte of an LZ4 blob, from the middle on, whose flip (XOR 0xff) changes what the
 * blob decodes to. Not simply the middle one: about 1 in 1,000 single-byte flips in real SST data
 * decode to the very same bytes (a match offset moved within a run of equal bytes; counted over a
 * 1 MiB SST block), and a restore then rightly writes the chunk's true, verified bytes. CI met one.
 */
function decodingChange(rawLength: number): (blob: Buffer) => number {
  return (blob) => {
    const payload = blob.subarray(BLOB_HEADER_SIZE);
    const out = Buffer.alloc(rawLength);
    const decodes = (data: Buffer): boolean => {
      try {
        return lz4.decodeBlock(data, out) === rawLength;
      } catch {
        return false;
      }
    };
    if (!decodes(payload)) throw new Error('test setup: the picked LZ4 blob does not decode');
    const original = Buffer.from(out);
    const flipped = Buffer.from(payload);
    for (let at = Math.floor(payload.byteLength / 2); at < payload.byteLength; at++) {
      flipped.writeUInt8(flipped.readUInt8(at) ^ 0xff, at);
      if (!decodes(flipped) || !out.equals(original)) return BLOB_HEADER_SIZE + at;
      flipped.writeUInt8(flipped.readUInt8(at) ^ 0xff, at);
    }
    throw new Error('test setup: no byte of the second half of the LZ4 payload changes what it decodes to');
  };
}

/** A damaged blob of the given codec: the error must name its file and chunk. */
function damagedBlob(codec: number, damage: (copy: string, picked: ChunkAt) => Promise<void>): (copy: string) => Promise<Damage> {
  return async (copy) => {
    const picked = await pickChunk(copy, codec);
    await damage(copy, picked);
    return { message: [picked.file.path, `chunk ${picked.index}`] };
  };
}

/** `_metadata` with its format version field set to `version`. */
function metadataOfFormat(version: number): (copy: string) => Promise<void> {
  return (copy) =>
    withRawMetadata(copy, (data) => {
      const out = Buffer.from(data);
      out.writeUInt32LE(version, 8);
      return out;
    });
}

/** The task manifest with its format version field set to `version`. */
function manifestOfFormat(version: number): (copy: string) => Promise<void> {
  return async (copy) => {
    const manifestFile = objectPath(copy, at(original.tasks, 0).manifest.key);
    const data = await readFile(manifestFile);
    data.writeUInt32LE(version, 8);
    await writeFile(manifestFile, data);
  };
}

const REFUSALS: RefusalCase[] = [
  // snapshot: bad state directories; the store stays empty
  {
    name: 'refuses a missing state directory (STATE_DIR_MISSING)',
    code: 'STATE_DIR_MISSING', kind: 'invalid_input',
    setup: badState(async () => join(await tempDir('missing'), 'no-such-dir')),
  },
  {
    name: 'refuses an empty state directory (STATE_DIR_EMPTY)',
    code: 'STATE_DIR_EMPTY', kind: 'invalid_input',
    setup: badState(() => tempDir('empty')),
  },
  {
    name: 'refuses a state directory holding only a directory (STATE_DIR_EMPTY): directories alone are still nothing to snapshot',
    code: 'STATE_DIR_EMPTY', kind: 'invalid_input',
    setup: badState(async () => {
      const empty = await tempDir('empty');
      await mkdir(join(empty, 'only-a-subdir'));
      return empty;
    }),
  },
  {
    name: 'refuses a regular file as state directory (STATE_DIR_NOT_DIRECTORY)',
    code: 'STATE_DIR_NOT_DIRECTORY', kind: 'invalid_input',
    setup: badState(async () => {
      const file = join(await tempDir('file'), 'state.bin');
      await writeFile(file, 'not a directory');
      return file;
    }),
  },
  {
    name: 'refuses a state directory holding a symbolic link (STATE_SYMLINK)',
    code: 'STATE_SYMLINK', kind: 'invalid_input',
    message: ['sub/link.sst'],
    setup: badState(async () => {
      const dir = await tempDir('symlinked');
      await writeFile(join(dir, 'CURRENT'), 'MANIFEST-000001\n');
      await mkdir(join(dir, 'sub'));
      await symlink('/etc/hostname', join(dir, 'sub', 'link.sst'));
      return dir;
    }),
  },
  {
    name: 'refuses a file name that is not UTF-8 (STATE_UNSAFE_NAME, naming its bytes), and commits nothing (issue #16 item 6)',
    code: 'STATE_UNSAFE_NAME', kind: 'invalid_input',
    message: ['bytes 61ff'],
    setup: badState(latin1State),
  },
  {
    name: 'refuses a file name that is not UTF-8 beside its look-alike (STATE_UNSAFE_NAME, naming its bytes), and commits nothing (issue #16 item 6)',
    code: 'STATE_UNSAFE_NAME', kind: 'invalid_input',
    message: ['bytes 61ff'],
    setup: badState(async () => {
      const dir = await latin1State();
      // The UTF-8 name the latin-1 one would decode to ('a' + U+FFFD).
      await writeFile(join(dir, 'a\ufffd'), 'y');
      return dir;
    }),
  },

  // restore targets
  {
    name: 'refuses a non-empty target without overwrite and leaves its file untouched (TARGET_NOT_EMPTY)',
    code: 'TARGET_NOT_EMPTY', kind: 'invalid_input',
    message: ['pass an empty directory, `keepMatching` to restore in place, or `overwrite` to replace its contents'],
    setup: async () => {
      const target = await tempDir('nonempty');
      await writeFile(join(target, 'keep.txt'), 'precious');
      const before = await treeDigest(target);
      return {
        call: () => chunkpoint.restore({ store, job: JOB }, target),
        // The API's names, never a command-line flag.
        check: (error) => expect(error.message).not.toMatch(/--[a-z]/),
        unchanged: async () => {
          expect(await readdir(target)).toEqual(['keep.txt']);
          expect(await readFile(join(target, 'keep.txt'), 'utf8')).toBe('precious');
          expect(await treeDigest(target)).toEqual(before);
        },
      };
    },
  },
  {
    name: 'refuses a target that is a regular file (TARGET_NOT_DIRECTORY)',
    code: 'TARGET_NOT_DIRECTORY', kind: 'invalid_input',
    setup: async () => {
      const parent = await tempDir('filetarget');
      const target = join(parent, 'a-file');
      await writeFile(target, 'x');
      return {
        call: () => chunkpoint.restore({ store, job: JOB }, target),
        unchanged: async () => {
          expect(await readFile(target, 'utf8')).toBe('x');
          expect(await readdir(parent)).toEqual(['a-file']);
        },
      };
    },
  },

  // damaged packs and manifests
  {
    name: 'refuses a flipped payload byte in an LZ4 blob (CHUNK_CORRUPT), naming file and chunk',
    code: 'CHUNK_CORRUPT', kind: 'corrupt_data',
    setup: damagedCopy(
      damagedBlob(1, (copy, picked) => editBlob(copy, picked.chunk, flipByte(decodingChange(picked.chunk.rawLength), 0xff))),
      { target: 'nothing-restored' },
    ),
  },
  {
    name: 'refuses a flipped payload byte in a raw blob (CHUNK_CORRUPT), naming file and chunk',
    code: 'CHUNK_CORRUPT', kind: 'corrupt_data',
    setup: damagedCopy(
      damagedBlob(0, (copy, picked) => editBlob(copy, picked.chunk, flipByte((blob) => blob.byteLength - 1, 0x01))),
      { target: 'nothing-restored' },
    ),
  },
  {
    name: 'refuses a blob with a damaged header (CHUNK_CORRUPT)',
    code: 'CHUNK_CORRUPT', kind: 'corrupt_data',
    // rawLength field, covered by the header checksum
    setup: damagedCopy(
      damagedBlob(1, (copy, picked) => editBlob(copy, picked.chunk, (blob) => blob.writeUInt32LE(blob.readUInt32LE(8) ^ 0x10, 8))),
      { target: 'nothing-restored' },
    ),
  },
  {
    name: "refuses a pack truncated in the middle of a blob (CHUNK_CORRUPT), naming that blob's file and chunk",
    code: 'CHUNK_CORRUPT', kind: 'corrupt_data',
    setup: damagedCopy(
      damagedBlob(1, (copy, picked) => truncate(packPath(copy, picked.chunk), picked.chunk.handle.offset + Math.floor(picked.chunk.handle.length / 2))),
      { target: 'nothing-restored' },
    ),
  },
  {
    name: 'refuses a deleted pack (CHUNK_MISSING), naming the pack and a chunk it held',
    code: 'CHUNK_MISSING', kind: 'corrupt_data',
    setup: damagedCopy(
      async (copy) => {
        const picked = await pickChunk(copy, 1);
        const pack = packOf(picked.chunk);
        await rm(packPath(copy, picked.chunk));
        return {
          message: [pack],
          check: (error) => {
            const named = /chunk (\d+) of ([^\s)]+)/.exec(error.message);
            expect(named, error.message).not.toBeNull();
            const file = manifest.files.find((f) => f.path === named?.[2]);
            expect(file, error.message).toBeDefined();
            expect(packOf(at(file?.chunks ?? [], Number(named?.[1])))).toBe(pack);
          },
        };
      },
      { target: 'nothing-restored' },
    ),
  },
  {
    name: 'refuses a deleted manifest (MANIFEST_MISSING), for restore and inspect',
    code: 'MANIFEST_MISSING', kind: 'corrupt_data',
    setup: damagedCopy((copy) => rm(objectPath(copy, at(original.tasks, 0).manifest.key)), { inspect: true }),
  },
  {
    name: 'refuses a manifest that is not the one the checkpoint committed (MANIFEST_MISMATCH), even one that is valid on its own',
    code: 'MANIFEST_MISMATCH', kind: 'corrupt_data',
    setup: damagedCopy(async (copy) => {
      const key = at(original.tasks, 0).manifest.key;
      const data = await readFile(objectPath(copy, key));
      // Same size, valid envelope, one file path changed: a swapped manifest, not a damaged one.
      const json = envelopeJson<StoredManifest>(data);
      const file = at(json.files, 0);
      file.path = `${file.path.slice(0, -1)}${file.path.endsWith('x') ? 'y' : 'x'}`;
      const swapped = encodeEnvelope(MANIFEST_MAGIC, json, await loadHasher(), data.subarray(ENVELOPE_HEADER_SIZE + data.readUInt32LE(12)));
      expect(swapped.byteLength).toBe(data.byteLength);
      await writeFile(objectPath(copy, key), swapped);
    }),
  },

  // damaged or hostile _metadata and manifests
  {
    name: 'refuses metadata shorter than its header (METADATA_TRUNCATED)',
    code: 'METADATA_TRUNCATED', kind: 'corrupt_data',
    setup: damagedCopy((copy) => withRawMetadata(copy, (data) => data.subarray(0, 10)), { inspect: true }),
  },
  {
    name: 'refuses metadata with a truncated body (METADATA_TRUNCATED)',
    code: 'METADATA_TRUNCATED', kind: 'corrupt_data',
    setup: damagedCopy((copy) => withRawMetadata(copy, (data) => data.subarray(0, data.byteLength - 100))),
  },
  {
    name: 'refuses metadata with the wrong magic (METADATA_BAD_MAGIC)',
    code: 'METADATA_BAD_MAGIC', kind: 'corrupt_data',
    setup: damagedCopy((copy) =>
      withRawMetadata(copy, (data) => {
        const out = Buffer.from(data);
        out.write('XXMETA', 0, 'latin1');
        return out;
      }),
    ),
  },
  ...[1, 3].flatMap((version): RefusalCase[] => [
    {
      name: `refuses metadata of format ${version} as such, not as damage (FORMAT_UNSUPPORTED), for restore and inspect`,
      code: 'FORMAT_UNSUPPORTED', kind: 'invalid_input',
      message: [`format ${version}`],
      setup: damagedCopy(metadataOfFormat(version), { inspect: true }),
    },
    {
      name: `refuses a manifest of format ${version} as such, not as damage (FORMAT_UNSUPPORTED)`,
      code: 'FORMAT_UNSUPPORTED', kind: 'invalid_input',
      setup: damagedCopy(manifestOfFormat(version)),
    },
  ]),
  {
    name: 'refuses metadata with a flipped body byte (METADATA_CHECKSUM)',
    code: 'METADATA_CHECKSUM', kind: 'corrupt_data',
    setup: damagedCopy((copy) =>
      withRawMetadata(copy, (data) => {
        const out = Buffer.from(data);
        flipByte((b) => ENVELOPE_HEADER_SIZE + Math.floor((b.byteLength - ENVELOPE_HEADER_SIZE) / 2), 0x01)(out);
        return out;
      }),
    ),
  },
  {
    name: "refuses a file path containing '..' (UNSAFE_PATH), writing nothing outside the target",
    code: 'UNSAFE_PATH', kind: 'corrupt_data',
    setup: damagedCopy(async (copy) => {
      await rewriteManifest(copy, (m) => {
        at(m.files, 0).path = '../escaped.sst';
      });
      return { unchanged: async (where) => expect(await exists(join(where.parent, 'escaped.sst'))).toBe(false) };
    }),
  },
  {
    name: "refuses a nested file path with a '..' segment (UNSAFE_PATH)",
    code: 'UNSAFE_PATH', kind: 'corrupt_data',
    setup: damagedCopy((copy) => rewriteManifest(copy, (m) => { at(m.files, 0).path = 'db/../../escaped.sst'; })),
  },
  {
    name: 'refuses an absolute file path (UNSAFE_PATH)',
    code: 'UNSAFE_PATH', kind: 'corrupt_data',
    setup: damagedCopy(async (copy) => {
      await rewriteManifest(copy, (m) => {
        at(m.files, 0).path = '/etc/passwd';
      });
      const before = await readFile('/etc/passwd');
      return { unchanged: async () => expect(await readFile('/etc/passwd')).toEqual(before) };
    }),
  },
  {
    name: 'refuses a file mtime outside the representable range, e.g. 1e300, when the manifest is read (MANIFEST_INVALID), not late while restoring (issue #16 item 13)',
    code: 'MANIFEST_INVALID', kind: 'corrupt_data',
    message: ['mtimeMs'],
    setup: damagedCopy((copy) => rewriteManifest(copy, (m) => { at(m.files, 0).mtimeMs = 1e300; })),
  },
  {
    name: "refuses a pack key containing '..' in the manifest (MANIFEST_INVALID)",
    code: 'MANIFEST_INVALID', kind: 'corrupt_data',
    setup: damagedCopy((copy) => rewriteManifest(copy, (m) => { at(m.packs, 0)[0] = 'shared/../../../etc/passwd'; })),
  },
  {
    name: "refuses a pack key containing '..' in _metadata (METADATA_INVALID)",
    code: 'METADATA_INVALID', kind: 'corrupt_data',
    setup: damagedCopy((copy) => rewriteMetadata(copy, (m) => { at(at(m.tasks, 0).packs, 0)[0] = '../../../etc/passwd'; })),
  },
  {
    name: "refuses a manifest key outside the task's own area in _metadata (METADATA_INVALID)",
    code: 'METADATA_INVALID', kind: 'corrupt_data',
    setup: damagedCopy((copy) =>
      rewriteMetadata(copy, (m) => {
        const task = at(m.tasks, 0);
        task.manifest.key = `../${task.manifest.key}`;
      }),
    ),
  },
  {
    name: 'refuses a duplicate file path (MANIFEST_INVALID)',
    code: 'MANIFEST_INVALID', kind: 'corrupt_data',
    setup: damagedCopy((copy) => rewriteManifest(copy, (m) => { at(m.files, 1).path = at(m.files, 0).path; })),
  },
  {
    name: 'refuses chunk lengths that do not add up to the file size (MANIFEST_INVALID)',
    code: 'MANIFEST_INVALID', kind: 'corrupt_data',
    setup: damagedCopy((copy) =>
      rewriteManifest(copy, (m) => {
        const file = m.files.find((f) => f.chunks > 1);
        if (file === undefined) throw new Error('test setup: no multi-chunk file');
        file.size += 1;
      }),
    ),
  },
];

describe('refusals of one bad input: code, kind, message, and nothing lost or changed', () => {
  for (const c of REFUSALS) {
    it(c.name, async () => {
      const scene = await c.setup();
      const error = await expectRefusal(scene.call(), c.code, c.kind);
      for (const piece of [...(c.message ?? []), ...(scene.message ?? [])]) expect(error.message).toContain(piece);
      scene.check?.(error);
      for (const other of scene.alsoRefused ?? []) await expectRefusal(other(), c.code, c.kind);
      await scene.unchanged();
    });
  }
});

describe('snapshot refuses bad job ids', () => {
  it('refuses invalid job ids everywhere (INVALID_JOB_ID)', async () => {
    const parent = await tempDir('store-parent');
    const snapStore = join(parent, 'store');
    await mkdir(snapStore);
    const { target, parent: targetParent } = await newTarget();
    // The last four are names every job root uses itself: a job of that name would live inside another job's area.
    for (const job of ['../escape', 'a/b', '', '.hidden', '-dash', 'x'.repeat(201), 'nul\u0000byte', '/abs', 'shared', 'taskowned', 'sessions', 'chk-3']) {
      await expectRefusal(chunkpoint.snapshot(state.dir, { store: snapStore, job }), 'INVALID_JOB_ID', 'invalid_input');
      await expectRefusal(chunkpoint.list({ store: snapStore, job }), 'INVALID_JOB_ID', 'invalid_input');
      await expectRefusal(chunkpoint.inspect({ store: snapStore, job }), 'INVALID_JOB_ID', 'invalid_input');
      await expectRefusal(chunkpoint.restore({ store: snapStore, job }, target), 'INVALID_JOB_ID', 'invalid_input');
    }
    expect(await readdir(snapStore)).toEqual([]);
    expect(await readdir(parent)).toEqual(['store']);
    await expectUntouched({ parent: targetParent, target });
  });
});

describe('locating checkpoints', () => {
  it('refuses an unknown job for restore, list and inspect (JOB_NOT_FOUND)', async () => {
    const where = await newTarget();
    const job = { store, job: 'no-such-job' };
    await expectRefusal(chunkpoint.restore(job, where.target), 'JOB_NOT_FOUND', 'invalid_input');
    const listed = await expectRefusal(chunkpoint.list(job), 'JOB_NOT_FOUND', 'invalid_input');
    // The API's names, never a command-line flag (the CLI puts its flags in their place: cli.test.ts).
    expect(listed.message).toContain('check `store` and `job`');
    expect(listed.message).not.toMatch(/--[a-z]/);
    await expectRefusal(chunkpoint.inspect(job), 'JOB_NOT_FOUND', 'invalid_input');
    await expectRefusal(chunkpoint.inspect({ ...job, checkpoint: 1 }), 'JOB_NOT_FOUND', 'invalid_input');
    await expectUntouched(where);
    expect(await exists(join(store, 'no-such-job'))).toBe(false);
  });

  it('refuses an unknown checkpoint number (CHECKPOINT_NOT_FOUND)', async () => {
    const where = await newTarget();
    const error = await expectRefusal(chunkpoint.restore({ store, job: JOB, checkpoint: 7 }, where.target), 'CHECKPOINT_NOT_FOUND', 'invalid_input');
    expect(error.message).toContain('chk-7');
    await expectRefusal(chunkpoint.inspect({ store, job: JOB, checkpoint: 7 }), 'CHECKPOINT_NOT_FOUND', 'invalid_input');
    await expectRefusal(chunkpoint.restore({ path: join(jobRoot, 'chk-7') }, where.target), 'CHECKPOINT_NOT_FOUND', 'invalid_input');
    await expectRefusal(chunkpoint.inspect({ path: join(jobRoot, 'chk-7') }), 'CHECKPOINT_NOT_FOUND', 'invalid_input');
    await expectUntouched(where);
  });

  it('refuses latest when the job has no committed checkpoint (NO_CHECKPOINTS)', async () => {
    const emptyStore = await tempDir('store');
    // A job root with an uncommitted chk-1 (no _metadata), as a crash mid-snapshot leaves it.
    await mkdir(join(emptyStore, 'fresh', 'chk-1'), { recursive: true });
    await mkdir(join(emptyStore, 'fresh', 'shared'));
    const where = await newTarget();
    const job = { store: emptyStore, job: 'fresh' };
    await expectRefusal(chunkpoint.restore(job, where.target), 'NO_CHECKPOINTS', 'invalid_input');
    await expectRefusal(chunkpoint.restore({ ...job, checkpoint: 'latest' }, where.target), 'NO_CHECKPOINTS', 'invalid_input');
    await expectRefusal(chunkpoint.inspect(job), 'NO_CHECKPOINTS', 'invalid_input');
    expect(await chunkpoint.list(job)).toEqual([]);
    // The uncommitted directory itself is not a checkpoint either.
    const uncommitted = await expectRefusal(chunkpoint.restore({ path: join(emptyStore, 'fresh', 'chk-1') }, where.target), 'CHECKPOINT_NOT_FOUND', 'invalid_input');
    expect(uncommitted.message).toContain('list the committed checkpoints with `list()`');
    await expectUntouched(where);
  });

  it('refuses a path that is not a chk-<n> directory (INVALID_CHECKPOINT_PATH)', async () => {
    const where = await newTarget();
    for (const path of [jobRoot, join(jobRoot, 'shared'), join(jobRoot, 'chk-x'), join(jobRoot, 'chk-1', 'nested'), state.dir]) {
      await expectRefusal(chunkpoint.restore({ path }, where.target), 'INVALID_CHECKPOINT_PATH', 'invalid_input');
      await expectRefusal(chunkpoint.inspect({ path }), 'INVALID_CHECKPOINT_PATH', 'invalid_input');
    }
    await expectUntouched(where);
  });
});

describe('controls and restores that succeed', () => {
  it('replaces a non-empty target with overwrite: true', async () => {
    const target = await tempDir('overwrite');
    await writeFile(join(target, 'keep.txt'), 'precious');
    await mkdir(join(target, 'old-dir'));
    await writeFile(join(target, 'old-dir', 'stale.sst'), 'stale');
    const result = await chunkpoint.restore({ store, job: JOB }, target, { overwrite: true });
    expect(result.checkpoint).toBe('chk-1');
    expect(await treeDigest(target)).toEqual(await treeDigest(state.dir));
    expect((await readdir(target)).sort()).toEqual((await readdir(state.dir)).sort());
  });

  it('control: a relocated copy of the job root restores to the state', async () => {
    const copy = await copyJobRoot();
    const where = await newTarget();
    await restoreCopy(copy, where.target);
    expect(await treeDigest(where.target)).toEqual(await treeDigest(state.dir));
  });

  it('control: metadata and manifest re-encoded without changes still restore', async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, () => undefined);
    const where = await newTarget();
    await restoreCopy(copy, where.target);
    expect(await treeDigest(where.target)).toEqual(await treeDigest(state.dir));
  });

  it('restores a directories entry whose parents the manifest does not list, over a non-empty target, creating them (issue #16 item 7)', async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, (m) => {
      m.directories = ['deep/er/est'];
    });
    const where = await newTarget();
    await mkdir(where.target);
    await writeFile(join(where.target, 'old.txt'), 'replaced');
    await chunkpoint.restore({ path: join(copy, 'chk-1') }, where.target, { overwrite: true });
    expect((await lstat(join(where.target, 'deep', 'er', 'est'))).isDirectory()).toBe(true);
    expect(await exists(join(where.target, 'old.txt'))).toBe(false);
    const restored = await treeDigest(where.target);
    for (const [path, info] of await treeDigest(state.dir)) expect(restored.get(path), path).toEqual(info);
  });
});
