/**
 * Task manifests: one task's files and the handle of every chunk, written by
 * the task (`taskowned/<task>/<session>.manifest`) before the commit. The
 * checkpoint's `_metadata` references one manifest per task, so a commit
 * writes O(tasks) bytes and restoring one task reads one manifest.
 *
 * An envelope (envelope.ts) whose JSON part holds the task, its directories,
 * its pack table and its files, and whose binary tail holds the chunk
 * records, 36 bytes each, in file order (file i owns the next
 * `files[i].chunks` records):
 *
 *   0  16  content key
 *   16 4   raw length (u32 LE)
 *   20 4   index into the pack table (u32 LE)
 *   24 8   offset of the blob in the pack (u64 LE)
 *   32 4   stored length of the blob (u32 LE)
 *
 * Binary records keep a manifest of a million chunks at 36 MB rather than
 * ~150 MB of JSON, and decode without parsing hex strings one by one.
 */
import { BLOB_HEADER_SIZE, MAX_CHUNK_SIZE } from './blob.js';
import { type Hasher } from './content-key.js';
import { FORMAT_VERSION, decodeEnvelope, encodeEnvelope } from './envelope.js';
import { CorruptDataError } from '../errors.js';
import { MAX_CHECKPOINT_ID, parseStoreKey, printable, type Area, type Handle } from './names.js';
import { PACK_HEADER_SIZE } from './pack.js';
import { MAX_MTIME_MS, MIN_MTIME_MS, Validator } from './validate.js';
import { isId } from './ids.js';

export const MANIFEST_MAGIC = Buffer.from('CPMANI\r\n', 'latin1');
export const KEY_ALGORITHM = 'xxh64x2-128';
const RECORD_SIZE = 36;
const MAX_BLOB_LENGTH = BLOB_HEADER_SIZE + MAX_CHUNK_SIZE + 65536;
/** Far above any real task (a manifest of 1 PiB at 1 MiB chunks is 36 GB… of records: refuse anything absurd first). */
export const MAX_MANIFEST_SIZE = 1024 * 1024 * 1024;

export interface ChunkRef {
  /** 128-bit content key of the raw bytes, 32 hex characters. */
  key: string;
  rawLength: number;
  /** The blob: a byte range of a pack. */
  handle: Handle;
}

export interface FileEntry {
  /** Relative, '/'-separated path inside the state directory. */
  path: string;
  size: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  mtimeMs: number;
  /** Never rewritten in place once it exists (SST files): reusable by name, size and mtime. */
  immutable: boolean;
  chunks: ChunkRef[];
}

/** A pack a task references, by store key, with its size (checked against the store before reuse). */
export interface PackRef {
  key: string;
  size: number;
}

export interface TaskManifest {
  formatVersion: typeof FORMAT_VERSION;
  jobId: string;
  task: string;
  /** The writer session that wrote this manifest. */
  session: string;
  /** The checkpoint this task reused from, or null. */
  base: number | null;
  createdAt: string;
  keyAlgorithm: typeof KEY_ALGORITHM;
  chunkSize: number;
  /** Directories of the state directory, so empty ones are restored too. */
  directories: string[];
  /** Every pack a chunk of this task lives in. */
  packs: PackRef[];
  files: FileEntry[];
}

export function encodeManifest(m: TaskManifest, hasher: Hasher): Buffer {
  const packIndex = new Map(m.packs.map((p, i) => [p.key, i]));
  const count = m.files.reduce((sum, f) => sum + f.chunks.length, 0);
  const tail = Buffer.alloc(count * RECORD_SIZE);
  let at = 0;
  for (const file of m.files) {
    for (const c of file.chunks) {
      const index = packIndex.get(`${c.handle.area}/${c.handle.name}`);
      if (index === undefined) throw new Error(`internal: chunk of ${file.path} in a pack missing from the manifest's pack table`);
      tail.write(c.key, at, 16, 'hex');
      tail.writeUInt32LE(c.rawLength, at + 16);
      tail.writeUInt32LE(index, at + 20);
      tail.writeUInt32LE(c.handle.offset % 2 ** 32, at + 24);
      tail.writeUInt32LE(Math.floor(c.handle.offset / 2 ** 32), at + 28);
      tail.writeUInt32LE(c.handle.length, at + 32);
      at += RECORD_SIZE;
    }
  }
  const json = {
    formatVersion: m.formatVersion,
    jobId: m.jobId,
    task: m.task,
    session: m.session,
    base: m.base,
    createdAt: m.createdAt,
    keyAlgorithm: m.keyAlgorithm,
    chunkSize: m.chunkSize,
    directories: m.directories,
    packs: m.packs.map((p) => [p.key, p.size]),
    files: m.files.map((f) => ({ path: f.path, size: f.size, mode: f.mode, mtimeMs: f.mtimeMs, immutable: f.immutable, chunks: f.chunks.length })),
  };
  return encodeEnvelope(MANIFEST_MAGIC, json, hasher, tail);
}

/** The envelope checksum of an encoded manifest (what `_metadata` records to bind the manifest). */
export function manifestChecksum(encoded: Uint8Array): string {
  return Buffer.from(encoded.buffer, encoded.byteOffset + 16, 8).toString('hex');
}

/** A file of a manifest without its chunks: they are `chunkCount` records of `BinaryManifest.chunks`, from `firstChunk` on. */
export interface FileHead extends Omit<FileEntry, 'chunks'> {
  firstChunk: number;
  chunkCount: number;
}

/**
 * The chunk records of a manifest, left in their binary form: a commit checks
 * millions of them, and an object and a hex string per chunk cost it more
 * than the check itself.
 */
export class ChunkRecords {
  readonly count: number;

  constructor(readonly data: Buffer) {
    this.count = data.byteLength / RECORD_SIZE;
  }

  /** Where chunk `i`'s 16-byte content key starts in `data`. */
  keyAt(i: number): number {
    return i * RECORD_SIZE;
  }

  rawLength(i: number): number {
    return this.data.readUInt32LE(i * RECORD_SIZE + 16);
  }

  /** Index into the manifest's pack table. */
  pack(i: number): number {
    return this.data.readUInt32LE(i * RECORD_SIZE + 20);
  }

  offset(i: number): number {
    const at = i * RECORD_SIZE;
    return this.data.readUInt32LE(at + 28) * 2 ** 32 + this.data.readUInt32LE(at + 24);
  }

  length(i: number): number {
    return this.data.readUInt32LE(i * RECORD_SIZE + 32);
  }
}

/** A manifest validated as `decodeManifest` does, with its chunks as binary records. */
export interface BinaryManifest extends Omit<TaskManifest, 'files' | 'packs'> {
  packs: (PackRef & { area: Area; name: string })[];
  files: FileHead[];
  chunks: ChunkRecords;
}

/**
 * Decodes and validates a manifest. `expect` is what the referencing
 * `_metadata` (or task snapshot) says about it; a manifest that claims
 * another task or session is refused (a swapped or copied object).
 */
export function decodeManifest(data: Uint8Array, hasher: Hasher, where: string, expect?: { task: string; session: string }): TaskManifest {
  const { packs, files, chunks, ...head } = readManifest(data, hasher, where, expect);
  return {
    ...head,
    packs: packs.map((p) => ({ key: p.key, size: p.size })),
    files: files.map(({ firstChunk, chunkCount, ...file }): FileEntry => {
      const refs = new Array<ChunkRef>(chunkCount);
      for (let j = 0; j < chunkCount; j++) {
        const i = firstChunk + j;
        const at = chunks.keyAt(i);
        const pack = packs[chunks.pack(i)] as (typeof packs)[number];
        refs[j] = { key: chunks.data.toString('hex', at, at + 16), rawLength: chunks.rawLength(i), handle: { area: pack.area, name: pack.name, offset: chunks.offset(i), length: chunks.length(i) } };
      }
      return { ...file, chunks: refs };
    }),
  };
}

/** `decodeManifest`'s checks, every one, without an object per chunk. */
export function readManifest(data: Uint8Array, hasher: Hasher, where: string, expect?: { task: string; session: string }): BinaryManifest {
  const what = `task manifest ${where}`;
  const { json, tail } = decodeEnvelope(data, MANIFEST_MAGIC, hasher, what, 'MANIFEST');
  const v: Validator = new Validator(what, (message) => new CorruptDataError('MANIFEST_INVALID', `${message}; the checkpoint cannot be used`));
  const root = v.object(json, '$');
  if (root['formatVersion'] !== FORMAT_VERSION) v.fail('$.formatVersion', `is not ${FORMAT_VERSION}`);
  if (root['keyAlgorithm'] !== KEY_ALGORITHM) v.fail('$.keyAlgorithm', `is not '${KEY_ALGORITHM}'`);
  const jobId = v.string(root['jobId'], '$.jobId', 200);
  const task = v.matches(root['task'], '$.task', /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, 'a task id');
  const session = v.string(root['session'], '$.session', 26);
  if (!isId(session)) v.fail('$.session', 'is not a session id');
  if (expect !== undefined && (expect.task !== task || expect.session !== session)) {
    v.fail('$', `belongs to task '${printable(task)}' session ${session}, not task '${printable(expect.task)}' session ${expect.session}`);
  }
  const base = root['base'] === null ? null : v.int(root['base'], '$.base', 1, MAX_CHECKPOINT_ID);
  const createdAt = v.string(root['createdAt'], '$.createdAt', 64);
  v.date(createdAt, '$.createdAt');
  const chunkSize = v.int(root['chunkSize'], '$.chunkSize', 1, MAX_CHUNK_SIZE);

  const seen = new Set<string>();
  const directories = v.array(root['directories'], '$.directories').map((d, i) => {
    const name = v.name(d, `$.directories[${i}]`);
    if (seen.has(name)) v.fail(`$.directories[${i}]`, `repeats '${printable(name)}'`);
    seen.add(name);
    return name;
  });

  const packKeys = new Set<string>();
  const packs = v.array(root['packs'], '$.packs').map((p, i): PackRef & { area: Area; name: string } => {
    const pair = v.array(p, `$.packs[${i}]`);
    const key = v.string(pair[0], `$.packs[${i}][0]`, 512);
    const parsed = parseStoreKey(key);
    if (parsed?.kind !== 'pack') v.fail(`$.packs[${i}][0]`, `'${printable(key)}' is not a pack key`);
    // Task-owned packs are private: a task may reference only its own.
    if (parsed.area === 'taskowned' && parsed.task !== task) v.fail(`$.packs[${i}][0]`, `is a task-owned pack of another task than '${printable(task)}'`);
    if (packKeys.has(key)) v.fail(`$.packs[${i}][0]`, `repeats '${key}'`);
    packKeys.add(key);
    const size = v.int(pair[1], `$.packs[${i}][1]`, PACK_HEADER_SIZE, Number.MAX_SAFE_INTEGER);
    return { key, size, area: parsed.area, name: key.slice(parsed.area.length + 1) };
  });

  const rawFiles = v.array(root['files'], '$.files');
  const total = rawFiles.reduce<number>((sum, f, i) => sum + v.int(v.object(f, `$.files[${i}]`)['chunks'], `$.files[${i}].chunks`, 0, MAX_MANIFEST_SIZE), 0);
  if (tail.byteLength !== total * RECORD_SIZE) v.fail('$.files', `declare ${total} chunks but the manifest holds ${tail.byteLength / RECORD_SIZE} chunk records`);
  const chunks = new ChunkRecords(tail);

  let next = 0;
  const files = rawFiles.map((f, i): FileHead => {
    const fat = `$.files[${i}]`;
    const file = v.object(f, fat);
    const path = v.name(file['path'], `${fat}.path`);
    if (seen.has(path)) v.fail(`${fat}.path`, `repeats '${printable(path)}' (each path may appear once)`);
    seen.add(path);
    const size = v.int(file['size'], `${fat}.size`, 0, Number.MAX_SAFE_INTEGER);
    const mode = v.int(file['mode'], `${fat}.mode`, 0, 0o7777);
    const mtimeMs = v.number(file['mtimeMs'], `${fat}.mtimeMs`, MIN_MTIME_MS, MAX_MTIME_MS);
    const immutable = v.bool(file['immutable'], `${fat}.immutable`);
    const chunkCount = file['chunks'] as number;
    const firstChunk = next;
    let sum = 0;
    for (let j = 0; j < chunkCount; j++, next++) {
      const rawLength = chunks.rawLength(next);
      const index = chunks.pack(next);
      const offset = chunks.offset(next);
      const length = chunks.length(next);
      const pack = packs[index];
      if (pack === undefined) v.fail(`${fat} chunk ${j}`, `names pack ${index} of ${packs.length}`);
      if (rawLength < 1 || rawLength > MAX_CHUNK_SIZE) v.fail(`${fat} chunk ${j}`, `has raw length ${rawLength}, outside 1..${MAX_CHUNK_SIZE}`);
      if (length < BLOB_HEADER_SIZE || length > MAX_BLOB_LENGTH || offset >= 2 ** 53 || offset < PACK_HEADER_SIZE || offset + length > pack.size) {
        v.fail(`${fat} chunk ${j}`, `has a blob at ${offset}+${length}, outside its ${pack.size}-byte pack`);
      }
      sum += rawLength;
    }
    if (sum !== size) v.fail(`${fat}.chunks`, `add up to ${sum} bytes but the file is ${size} bytes`);
    return { path, size, mode, mtimeMs, immutable, firstChunk, chunkCount };
  });

  // A path that is both a file and the parent of another entry cannot be restored.
  const fileSet = new Set(files.map((f) => f.path));
  for (const name of [...directories, ...fileSet]) {
    const parts = name.split('/');
    for (let k = 1; k < parts.length; k++) {
      const parent = parts.slice(0, k).join('/');
      if (fileSet.has(parent)) v.fail('$.files', `has '${printable(parent)}' both as a file and as the parent of '${printable(name)}'`);
    }
  }
  return { formatVersion: FORMAT_VERSION, jobId, task, session, base, createdAt, keyAlgorithm: KEY_ALGORITHM, chunkSize, directories, packs, files, chunks };
}
