/**
 * Bad input and damaged stores: every refusal carries its stable `code`, and
 * nothing is written into the restore target (or the store) when it happens.
 * One real RocksDB state, one committed checkpoint; every corruption works on
 * its own copy of the job root, so the cases cannot interfere.
 */
import { writeFileSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Chunkpoint, ChunkpointError, type ErrorKind } from '../src/index.js';
import { loadHasher } from '../src/format/content-key.js';
import { ENVELOPE_HEADER_SIZE, encodeEnvelope } from '../src/format/envelope.js';
import { MANIFEST_MAGIC, type ChunkRef, type FileEntry, type TaskManifest } from '../src/format/manifest.js';
import { METADATA_MAGIC } from '../src/format/metadata.js';
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

describe('snapshot refuses bad state directories and job ids', () => {
  it('refuses a missing state directory (STATE_DIR_MISSING)', async () => {
    const snapStore = await tempDir('store');
    const missing = join(await tempDir('missing'), 'no-such-dir');
    await expectRefusal(chunkpoint.snapshot(missing, { store: snapStore, job: JOB }), 'STATE_DIR_MISSING', 'invalid_input');
    expect(await readdir(snapStore)).toEqual([]);
  });

  it('refuses an empty state directory (STATE_DIR_EMPTY)', async () => {
    const snapStore = await tempDir('store');
    const empty = await tempDir('empty');
    await expectRefusal(chunkpoint.snapshot(empty, { store: snapStore, job: JOB }), 'STATE_DIR_EMPTY', 'invalid_input');
    // Directories alone are still nothing to snapshot.
    await mkdir(join(empty, 'only-a-subdir'));
    await expectRefusal(chunkpoint.snapshot(empty, { store: snapStore, job: JOB }), 'STATE_DIR_EMPTY', 'invalid_input');
    expect(await readdir(snapStore)).toEqual([]);
  });

  it('refuses a regular file as state directory (STATE_DIR_NOT_DIRECTORY)', async () => {
    const snapStore = await tempDir('store');
    const file = join(await tempDir('file'), 'state.bin');
    await writeFile(file, 'not a directory');
    await expectRefusal(chunkpoint.snapshot(file, { store: snapStore, job: JOB }), 'STATE_DIR_NOT_DIRECTORY', 'invalid_input');
    expect(await readdir(snapStore)).toEqual([]);
  });

  it('refuses a state directory holding a symbolic link (STATE_SYMLINK)', async () => {
    const snapStore = await tempDir('store');
    const dir = await tempDir('symlinked');
    await writeFile(join(dir, 'CURRENT'), 'MANIFEST-000001\n');
    await mkdir(join(dir, 'sub'));
    await symlink('/etc/hostname', join(dir, 'sub', 'link.sst'));
    const error = await expectRefusal(chunkpoint.snapshot(dir, { store: snapStore, job: JOB }), 'STATE_SYMLINK', 'invalid_input');
    expect(error.message).toContain('sub/link.sst');
    expect(await readdir(snapStore)).toEqual([]);
  });

  it('refuses a file name that is not UTF-8 (STATE_UNSAFE_NAME, naming its bytes), also beside its look-alike, and commits nothing (issue #16 item 6)', async () => {
    const snapStore = await tempDir('store');
    const dir = await tempDir('latin1');
    await writeFile(join(dir, 'CURRENT'), 'MANIFEST-000001\n');
    // A latin-1 name alone, then beside the UTF-8 name it would decode to ('a' + U+FFFD).
    const latin1 = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x61, 0xff])]);
    writeFileSync(latin1, 'x');
    const alone = await expectRefusal(chunkpoint.snapshot(dir, { store: snapStore, job: JOB }), 'STATE_UNSAFE_NAME', 'invalid_input');
    expect(alone.message).toContain('bytes 61ff');
    await writeFile(join(dir, 'a\ufffd'), 'y');
    const both = await expectRefusal(chunkpoint.snapshot(dir, { store: snapStore, job: JOB }), 'STATE_UNSAFE_NAME', 'invalid_input');
    expect(both.message).toContain('bytes 61ff');
    expect(await readdir(snapStore)).toEqual([]);
  });

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

describe('restore targets', () => {
  it('refuses a non-empty target without overwrite and leaves its file untouched (TARGET_NOT_EMPTY)', async () => {
    const target = await tempDir('nonempty');
    await writeFile(join(target, 'keep.txt'), 'precious');
    const before = await treeDigest(target);
    const refused = await expectRefusal(chunkpoint.restore({ store, job: JOB }, target), 'TARGET_NOT_EMPTY', 'invalid_input');
    expect(refused.message).toContain('pass an empty directory, `keepMatching` to restore in place, or `overwrite` to replace its contents');
    expect(refused.message).not.toMatch(/--[a-z]/);
    expect(await readdir(target)).toEqual(['keep.txt']);
    expect(await readFile(join(target, 'keep.txt'), 'utf8')).toBe('precious');
    expect(await treeDigest(target)).toEqual(before);
  });

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

  it('refuses a target that is a regular file (TARGET_NOT_DIRECTORY)', async () => {
    const parent = await tempDir('filetarget');
    const target = join(parent, 'a-file');
    await writeFile(target, 'x');
    await expectRefusal(chunkpoint.restore({ store, job: JOB }, target), 'TARGET_NOT_DIRECTORY', 'invalid_input');
    expect(await readFile(target, 'utf8')).toBe('x');
    expect(await readdir(parent)).toEqual(['a-file']);
  });
});

describe('damaged packs and manifests', () => {
  it('control: a relocated copy of the job root restores to the state', async () => {
    const copy = await copyJobRoot();
    const where = await newTarget();
    await restoreCopy(copy, where.target);
    expect(await treeDigest(where.target)).toEqual(await treeDigest(state.dir));
  });

  it('refuses a flipped payload byte in an LZ4 blob (CHUNK_CORRUPT), naming file and chunk', async () => {
    const copy = await copyJobRoot();
    const picked = await pickChunk(copy, 1);
    await editBlob(copy, picked.chunk, (blob) => {
      const offset = 40 + Math.floor((blob.byteLength - 40) / 2);
      blob.writeUInt8(blob.readUInt8(offset) ^ 0xff, offset);
    });
    const where = await newTarget();
    const error = await expectRefusal(restoreCopy(copy, where.target), 'CHUNK_CORRUPT', 'corrupt_data');
    expect(error.message).toContain(picked.file.path);
    expect(error.message).toContain(`chunk ${picked.index}`);
    await expectNothingRestored(where);
  });

  it('refuses a flipped payload byte in a raw blob (CHUNK_CORRUPT), naming file and chunk', async () => {
    const copy = await copyJobRoot();
    const picked = await pickChunk(copy, 0);
    await editBlob(copy, picked.chunk, (blob) => {
      const offset = blob.byteLength - 1;
      blob.writeUInt8(blob.readUInt8(offset) ^ 0x01, offset);
    });
    const where = await newTarget();
    const error = await expectRefusal(restoreCopy(copy, where.target), 'CHUNK_CORRUPT', 'corrupt_data');
    expect(error.message).toContain(picked.file.path);
    expect(error.message).toContain(`chunk ${picked.index}`);
    await expectNothingRestored(where);
  });

  it('refuses a blob with a damaged header (CHUNK_CORRUPT)', async () => {
    const copy = await copyJobRoot();
    const picked = await pickChunk(copy, 1);
    // rawLength field, covered by the header checksum
    await editBlob(copy, picked.chunk, (blob) => blob.writeUInt32LE(blob.readUInt32LE(8) ^ 0x10, 8));
    const where = await newTarget();
    const error = await expectRefusal(restoreCopy(copy, where.target), 'CHUNK_CORRUPT', 'corrupt_data');
    expect(error.message).toContain(picked.file.path);
    expect(error.message).toContain(`chunk ${picked.index}`);
    await expectNothingRestored(where);
  });

  it('refuses a pack truncated in the middle of a blob (CHUNK_CORRUPT), naming that blob\'s file and chunk', async () => {
    const copy = await copyJobRoot();
    const picked = await pickChunk(copy, 1);
    await truncate(packPath(copy, picked.chunk), picked.chunk.handle.offset + Math.floor(picked.chunk.handle.length / 2));
    const where = await newTarget();
    const error = await expectRefusal(restoreCopy(copy, where.target), 'CHUNK_CORRUPT', 'corrupt_data');
    expect(error.message).toContain(picked.file.path);
    expect(error.message).toContain(`chunk ${picked.index}`);
    await expectNothingRestored(where);
  });

  it('refuses a deleted pack (CHUNK_MISSING), naming the pack and a chunk it held', async () => {
    const copy = await copyJobRoot();
    const picked = await pickChunk(copy, 1);
    const pack = packOf(picked.chunk);
    await rm(packPath(copy, picked.chunk));
    const where = await newTarget();
    const error = await expectRefusal(restoreCopy(copy, where.target), 'CHUNK_MISSING', 'corrupt_data');
    expect(error.message).toContain(pack);
    const named = /chunk (\d+) of ([^\s)]+)/.exec(error.message);
    expect(named, error.message).not.toBeNull();
    const file = manifest.files.find((f) => f.path === named?.[2]);
    expect(file, error.message).toBeDefined();
    expect(packOf(at(file?.chunks ?? [], Number(named?.[1])))).toBe(pack);
    await expectNothingRestored(where);
  });

  it('refuses a deleted manifest (MANIFEST_MISSING), for restore and inspect', async () => {
    const copy = await copyJobRoot();
    await rm(objectPath(copy, at(original.tasks, 0).manifest.key));
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'MANIFEST_MISSING', 'corrupt_data');
    await expectRefusal(chunkpoint.inspect({ path: join(copy, 'chk-1') }), 'MANIFEST_MISSING', 'corrupt_data');
    await expectUntouched(where);
  });

  it('refuses a manifest that is not the one the checkpoint committed (MANIFEST_MISMATCH), even one that is valid on its own', async () => {
    const copy = await copyJobRoot();
    const key = at(original.tasks, 0).manifest.key;
    const data = await readFile(objectPath(copy, key));
    // Same size, valid envelope, one file path changed: a swapped manifest, not a damaged one.
    const json = envelopeJson<StoredManifest>(data);
    const file = at(json.files, 0);
    file.path = `${file.path.slice(0, -1)}${file.path.endsWith('x') ? 'y' : 'x'}`;
    const swapped = encodeEnvelope(MANIFEST_MAGIC, json, await loadHasher(), data.subarray(ENVELOPE_HEADER_SIZE + data.readUInt32LE(12)));
    expect(swapped.byteLength).toBe(data.byteLength);
    await writeFile(objectPath(copy, key), swapped);
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'MANIFEST_MISMATCH', 'corrupt_data');
    await expectUntouched(where);
  });
});

describe('damaged or hostile _metadata and manifests', () => {
  it('control: metadata and manifest re-encoded without changes still restore', async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, () => undefined);
    const where = await newTarget();
    await restoreCopy(copy, where.target);
    expect(await treeDigest(where.target)).toEqual(await treeDigest(state.dir));
  });

  it('refuses metadata shorter than its header (METADATA_TRUNCATED)', async () => {
    const copy = await copyJobRoot();
    await withRawMetadata(copy, (data) => data.subarray(0, 10));
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'METADATA_TRUNCATED', 'corrupt_data');
    await expectRefusal(chunkpoint.inspect({ path: join(copy, 'chk-1') }), 'METADATA_TRUNCATED', 'corrupt_data');
    await expectUntouched(where);
  });

  it('refuses metadata with a truncated body (METADATA_TRUNCATED)', async () => {
    const copy = await copyJobRoot();
    await withRawMetadata(copy, (data) => data.subarray(0, data.byteLength - 100));
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'METADATA_TRUNCATED', 'corrupt_data');
    await expectUntouched(where);
  });

  it('refuses metadata with the wrong magic (METADATA_BAD_MAGIC)', async () => {
    const copy = await copyJobRoot();
    await withRawMetadata(copy, (data) => {
      const out = Buffer.from(data);
      out.write('XXMETA', 0, 'latin1');
      return out;
    });
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'METADATA_BAD_MAGIC', 'corrupt_data');
    await expectUntouched(where);
  });

  for (const version of [1, 3]) {
    it(`refuses metadata and a manifest of format ${version} as such, not as damage (FORMAT_UNSUPPORTED)`, async () => {
      const copy = await copyJobRoot();
      await withRawMetadata(copy, (data) => {
        const out = Buffer.from(data);
        out.writeUInt32LE(version, 8);
        return out;
      });
      const where = await newTarget();
      const error = await expectRefusal(restoreCopy(copy, where.target), 'FORMAT_UNSUPPORTED', 'invalid_input');
      expect(error.message).toContain(`format ${version}`);
      await expectRefusal(chunkpoint.inspect({ path: join(copy, 'chk-1') }), 'FORMAT_UNSUPPORTED', 'invalid_input');
      await expectUntouched(where);

      const other = await copyJobRoot();
      const manifestFile = objectPath(other, at(original.tasks, 0).manifest.key);
      const data = await readFile(manifestFile);
      data.writeUInt32LE(version, 8);
      await writeFile(manifestFile, data);
      await expectRefusal(restoreCopy(other, where.target), 'FORMAT_UNSUPPORTED', 'invalid_input');
      await expectUntouched(where);
    });
  }

  it('refuses metadata with a flipped body byte (METADATA_CHECKSUM)', async () => {
    const copy = await copyJobRoot();
    await withRawMetadata(copy, (data) => {
      const out = Buffer.from(data);
      const offset = ENVELOPE_HEADER_SIZE + Math.floor((out.byteLength - ENVELOPE_HEADER_SIZE) / 2);
      out.writeUInt8(out.readUInt8(offset) ^ 0x01, offset);
      return out;
    });
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'METADATA_CHECKSUM', 'corrupt_data');
    await expectUntouched(where);
  });

  it("refuses a file path containing '..' (UNSAFE_PATH), writing nothing outside the target", async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, (m) => {
      at(m.files, 0).path = '../escaped.sst';
    });
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'UNSAFE_PATH', 'corrupt_data');
    await expectUntouched(where);
    expect(await exists(join(where.parent, 'escaped.sst'))).toBe(false);
  });

  it("refuses a nested file path with a '..' segment (UNSAFE_PATH)", async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, (m) => {
      at(m.files, 0).path = 'db/../../escaped.sst';
    });
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'UNSAFE_PATH', 'corrupt_data');
    await expectUntouched(where);
  });

  it('refuses an absolute file path (UNSAFE_PATH)', async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, (m) => {
      at(m.files, 0).path = '/etc/passwd';
    });
    const where = await newTarget();
    const before = await readFile('/etc/passwd');
    await expectRefusal(restoreCopy(copy, where.target), 'UNSAFE_PATH', 'corrupt_data');
    await expectUntouched(where);
    expect(await readFile('/etc/passwd')).toEqual(before);
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

  it('refuses a file mtime outside the representable range, e.g. 1e300, when the manifest is read (MANIFEST_INVALID), not late while restoring (issue #16 item 13)', async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, (m) => {
      at(m.files, 0).mtimeMs = 1e300;
    });
    const where = await newTarget();
    const error = await expectRefusal(restoreCopy(copy, where.target), 'MANIFEST_INVALID', 'corrupt_data');
    expect(error.message).toContain('mtimeMs');
    await expectUntouched(where);
  });

  it("refuses a pack key containing '..' in the manifest (MANIFEST_INVALID) or in _metadata (METADATA_INVALID)", async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, (m) => {
      at(m.packs, 0)[0] = 'shared/../../../etc/passwd';
    });
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'MANIFEST_INVALID', 'corrupt_data');
    await expectUntouched(where);

    const other = await copyJobRoot();
    await rewriteMetadata(other, (m) => {
      at(at(m.tasks, 0).packs, 0)[0] = '../../../etc/passwd';
    });
    await expectRefusal(restoreCopy(other, where.target), 'METADATA_INVALID', 'corrupt_data');
    await expectUntouched(where);
  });

  it("refuses a manifest key outside the task's own area in _metadata (METADATA_INVALID)", async () => {
    const copy = await copyJobRoot();
    await rewriteMetadata(copy, (m) => {
      const task = at(m.tasks, 0);
      task.manifest.key = `../${task.manifest.key}`;
    });
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'METADATA_INVALID', 'corrupt_data');
    await expectUntouched(where);
  });

  it('refuses a duplicate file path (MANIFEST_INVALID)', async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, (m) => {
      at(m.files, 1).path = at(m.files, 0).path;
    });
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'MANIFEST_INVALID', 'corrupt_data');
    await expectUntouched(where);
  });

  it('refuses chunk lengths that do not add up to the file size (MANIFEST_INVALID)', async () => {
    const copy = await copyJobRoot();
    await rewriteManifest(copy, (m) => {
      const file = m.files.find((f) => f.chunks > 1);
      if (file === undefined) throw new Error('test setup: no multi-chunk file');
      file.size += 1;
    });
    const where = await newTarget();
    await expectRefusal(restoreCopy(copy, where.target), 'MANIFEST_INVALID', 'corrupt_data');
    await expectUntouched(where);
  });
});
