/**
 * `chk-<n>/_metadata`: the single commit point of a checkpoint.
 *
 * A 24-byte binary envelope (magic, version, body length, XXH64 of the body)
 * around a UTF-8 JSON body. JSON keeps checkpoints inspectable with ordinary
 * tools; the envelope makes truncation, bit rot and foreign files detectable
 * before a single field is trusted. Decoding validates every field (types,
 * ranges, names) and refuses the whole file on the first problem, so restore
 * never acts on half-valid metadata. Layout: docs/FORMAT.md.
 */
import { MAX_CHUNK_SIZE, BLOB_HEADER_SIZE } from './blob.js';
import { isContentKey, type Hasher } from './content-key.js';
import { CorruptDataError, InvalidInputError } from './errors.js';
import { AREAS, TASK_ID_RE, checkStoredName, printable, type Area, type Handle } from './handle.js';

export const METADATA_MAGIC = Buffer.from('CPMETA\r\n', 'latin1');
export const METADATA_VERSION = 1;
export const METADATA_HEADER_SIZE = 24;
/** Far above any real checkpoint (about 200 bytes a chunk), far below an allocation that hurts. */
export const MAX_METADATA_SIZE = 1024 * 1024 * 1024;
export const KEY_ALGORITHM = 'xxh64x2-128';

export interface ChunkRef {
  /** 128-bit content key of the raw bytes, 32 hex characters. */
  key: string;
  rawLength: number;
  /** Where the blob is; its own header says how it is encoded. */
  handle: Handle;
  /** Checkpoint that first stored this blob (kept when a later checkpoint reuses it). */
  createdBy: number;
}

export interface FileEntry {
  /** Relative, '/'-separated path inside the state directory. */
  path: string;
  size: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  mtimeMs: number;
  /** Never rewritten in place once it exists (SST files): reusable by name and size. */
  immutable: boolean;
  chunks: ChunkRef[];
}

export interface SnapshotFigures {
  bytesRead: number;
  bytesWritten: number;
  filesReused: number;
  chunksNew: number;
  chunksDeduped: number;
  durationMs: number;
}

/** One task's part of a checkpoint: its own state directory, restored on its own. */
export interface TaskState {
  /** Task id, one path segment (`main` for a single-task job). */
  task: string;
  chunkSize: number;
  /** Directories of the state directory, so empty ones are restored too. */
  directories: string[];
  files: FileEntry[];
}

export interface CheckpointMetadata {
  formatVersion: typeof METADATA_VERSION;
  checkpointId: number;
  /** Informational only: resolution never depends on it, so a copied job root under another id restores. */
  jobId: string;
  createdAt: string;
  keyAlgorithm: typeof KEY_ALGORITHM;
  /** At least one; task ids are unique. */
  tasks: TaskState[];
  /** Sums over the tasks (durationMs: the longest task). */
  snapshot: SnapshotFigures;
}

export const TASK_SNAPSHOT_FORMAT = 'chunkpoint-task-snapshot-1';

/** What a task snapshot did, for the committed checkpoint's figures and the caller. */
export interface TaskFigures extends SnapshotFigures {
  files: number;
  bytes: number;
  bytesReused: number;
  bytesCached: number;
  /** Raw bytes of the chunks whose blobs this task wrote (for the compression ratio). */
  rawBytesNew: number;
}

/**
 * A task's snapshot, not yet part of any checkpoint: plain JSON-safe data a
 * task process hands to the coordinator, which commits checkpoint N from all
 * tasks. Chunks with `createdBy: 0` were first stored by this task snapshot;
 * the commit gives them the checkpoint's id.
 */
export interface TaskSnapshot extends TaskState {
  format: typeof TASK_SNAPSHOT_FORMAT;
  jobId: string;
  /** The committed checkpoint this task reused files from, or null. */
  base: number | null;
  createdAt: string;
  keyAlgorithm: typeof KEY_ALGORITHM;
  figures: TaskFigures;
}

/** Every file of every task, for code that only cares about blobs. */
export function* allFiles(metadata: { tasks: readonly TaskState[] }): Generator<FileEntry> {
  for (const task of metadata.tasks) yield* task.files;
}

export function encodeMetadata(metadata: CheckpointMetadata, hasher: Hasher): Buffer {
  const body = Buffer.from(JSON.stringify(metadata), 'utf8');
  const header = Buffer.alloc(METADATA_HEADER_SIZE);
  METADATA_MAGIC.copy(header, 0);
  header.writeUInt32LE(METADATA_VERSION, 8);
  header.writeUInt32LE(body.byteLength, 12);
  Buffer.from(hasher.checksum64(body), 'hex').copy(header, 16);
  return Buffer.concat([header, body]);
}

/**
 * Decodes and validates `_metadata`. `expectedId` is the id from the `chk-<n>`
 * directory name; a body claiming another id is refused (a copied or swapped file).
 */
export function decodeMetadata(data: Uint8Array, hasher: Hasher, where: string, expectedId?: number): CheckpointMetadata {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const corrupt = (code: string, why: string): CorruptDataError =>
    new CorruptDataError(code, `checkpoint metadata ${where} ${why}; the checkpoint cannot be used (restore an older one, or re-copy it from its source)`);
  if (buf.byteLength < METADATA_HEADER_SIZE) throw corrupt('METADATA_TRUNCATED', `is ${buf.byteLength} bytes, shorter than its header`);
  if (!buf.subarray(0, 8).equals(METADATA_MAGIC)) throw corrupt('METADATA_BAD_MAGIC', 'does not start with the chunkpoint metadata magic');
  const version = buf.readUInt32LE(8);
  if (version !== METADATA_VERSION) {
    throw corrupt('METADATA_VERSION', `has format version ${version}, but this chunkpoint reads version ${METADATA_VERSION}`);
  }
  const length = buf.readUInt32LE(12);
  if (length !== buf.byteLength - METADATA_HEADER_SIZE) {
    throw corrupt('METADATA_TRUNCATED', `declares a ${length}-byte body but holds ${buf.byteLength - METADATA_HEADER_SIZE} bytes`);
  }
  const body = buf.subarray(METADATA_HEADER_SIZE);
  const checksum = buf.subarray(16, 24).toString('hex');
  const actual = hasher.checksum64(body);
  if (checksum !== actual) throw corrupt('METADATA_CHECKSUM', `fails its checksum (${checksum} stored, ${actual} computed)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw corrupt('METADATA_SYNTAX', `has a body that is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const metadata = validateMetadata(parsed, where);
  if (expectedId !== undefined && metadata.checkpointId !== expectedId) {
    throw corrupt('METADATA_MISMATCH', `says it is checkpoint ${metadata.checkpointId} but sits in chk-${expectedId}`);
  }
  return metadata;
}

class Validator {
  constructor(
    private readonly where: string,
    private readonly error: (message: string) => Error = (message) => new CorruptDataError('METADATA_INVALID', `${message}; the checkpoint cannot be used`),
  ) {}

  fail(path: string, why: string): never {
    throw this.error(`${this.where}: field ${path} ${why}`);
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path, 'is not an object');
    return value as Record<string, unknown>;
  }

  array(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) this.fail(path, 'is not an array');
    return value;
  }

  string(value: unknown, path: string, maxLength = 4096): string {
    if (typeof value !== 'string') this.fail(path, 'is not a string');
    if (value.length > maxLength) this.fail(path, `is longer than ${maxLength} characters`);
    return value;
  }

  int(value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) this.fail(path, 'is not an integer');
    if (value < min || value > max) this.fail(path, `is ${value}, outside ${min}..${max}`);
    return value;
  }

  number(value: unknown, path: string): number {
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(path, 'is not a finite number');
    return value;
  }

  bool(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') this.fail(path, 'is not a boolean');
    return value;
  }

  name(value: unknown, path: string): string {
    return checkStoredName(this.string(value, path), `${this.where}: field ${path}`);
  }
}

function validateMetadata(value: unknown, where: string): CheckpointMetadata {
  const v: Validator = new Validator(`checkpoint metadata ${where}`);
  const root = v.object(value, '$');
  if (root['formatVersion'] !== METADATA_VERSION) v.fail('$.formatVersion', `is not ${METADATA_VERSION}`);
  if (root['keyAlgorithm'] !== KEY_ALGORITHM) v.fail('$.keyAlgorithm', `is not '${KEY_ALGORITHM}'`);
  const checkpointId = v.int(root['checkpointId'], '$.checkpointId', 1, Number.MAX_SAFE_INTEGER);
  const jobId = v.string(root['jobId'], '$.jobId', 200);
  const createdAt = v.string(root['createdAt'], '$.createdAt', 64);
  const rawTasks = v.array(root['tasks'], '$.tasks');
  if (rawTasks.length === 0) v.fail('$.tasks', 'is empty');
  const ids = new Set<string>();
  const tasks = rawTasks.map((t, i) => {
    const task = validateTask(v, v.object(t, `$.tasks[${i}]`), `$.tasks[${i}]`, 1, checkpointId);
    if (ids.has(task.task)) v.fail(`$.tasks[${i}].task`, `repeats '${printable(task.task)}'`);
    ids.add(task.task);
    return task;
  });
  return { formatVersion: METADATA_VERSION, checkpointId, jobId, createdAt, keyAlgorithm: KEY_ALGORITHM, tasks, snapshot: validateFigures(v, root['snapshot'], '$.snapshot') };
}

/**
 * Validates a task snapshot handed over by a task process (or read from a
 * file): it is input, so problems are INVALID_TASK_SNAPSHOT, and the same
 * checks as committed metadata apply, so a bad one can never be committed.
 */
export function validateTaskSnapshot(value: unknown, where: string): TaskSnapshot {
  const v = new Validator(where, (message) => new InvalidInputError('INVALID_TASK_SNAPSHOT', `${message}; pass the object snapshotTask returned, unchanged`));
  const root = v.object(value, '$');
  if (root['format'] !== TASK_SNAPSHOT_FORMAT) v.fail('$.format', `is not '${TASK_SNAPSHOT_FORMAT}' (not a chunkpoint task snapshot, or from another version)`);
  if (root['keyAlgorithm'] !== KEY_ALGORITHM) v.fail('$.keyAlgorithm', `is not '${KEY_ALGORITHM}'`);
  const jobId = v.string(root['jobId'], '$.jobId', 200);
  const base = root['base'] === null ? null : v.int(root['base'], '$.base', 1, Number.MAX_SAFE_INTEGER);
  const createdAt = v.string(root['createdAt'], '$.createdAt', 64);
  if (Number.isNaN(Date.parse(createdAt))) v.fail('$.createdAt', 'is not a date');
  const task = validateTask(v, root, '$', 0, base ?? 0);
  const f = v.object(root['figures'], '$.figures');
  const figures: TaskFigures = {
    ...validateFigures(v, f, '$.figures'),
    files: v.int(f['files'], '$.figures.files', 0, Number.MAX_SAFE_INTEGER),
    bytes: v.int(f['bytes'], '$.figures.bytes', 0, Number.MAX_SAFE_INTEGER),
    bytesReused: v.int(f['bytesReused'], '$.figures.bytesReused', 0, Number.MAX_SAFE_INTEGER),
    bytesCached: v.int(f['bytesCached'], '$.figures.bytesCached', 0, Number.MAX_SAFE_INTEGER),
    rawBytesNew: v.int(f['rawBytesNew'], '$.figures.rawBytesNew', 0, Number.MAX_SAFE_INTEGER),
  };
  return { format: TASK_SNAPSHOT_FORMAT, jobId, base, createdAt, keyAlgorithm: KEY_ALGORITHM, ...task, figures };
}

function validateFigures(v: Validator, value: unknown, at: string): SnapshotFigures {
  const s = v.object(value, at);
  return {
    bytesRead: v.int(s['bytesRead'], `${at}.bytesRead`, 0, Number.MAX_SAFE_INTEGER),
    bytesWritten: v.int(s['bytesWritten'], `${at}.bytesWritten`, 0, Number.MAX_SAFE_INTEGER),
    filesReused: v.int(s['filesReused'], `${at}.filesReused`, 0, Number.MAX_SAFE_INTEGER),
    chunksNew: v.int(s['chunksNew'], `${at}.chunksNew`, 0, Number.MAX_SAFE_INTEGER),
    chunksDeduped: v.int(s['chunksDeduped'], `${at}.chunksDeduped`, 0, Number.MAX_SAFE_INTEGER),
    durationMs: v.number(s['durationMs'], `${at}.durationMs`),
  };
}

/** One task's files and directories; `createdBy` must lie in minCreatedBy..maxCreatedBy. */
function validateTask(v: Validator, t: Record<string, unknown>, at: string, minCreatedBy: number, maxCreatedBy: number): TaskState {
  const task = v.string(t['task'], `${at}.task`, 200);
  if (!TASK_ID_RE.test(task)) v.fail(`${at}.task`, `'${printable(task)}' is not a task id`);
  const ownedPrefix = `${task}/`;
  const chunkSize = v.int(t['chunkSize'], `${at}.chunkSize`, 1, MAX_CHUNK_SIZE);
  const seen = new Set<string>();
  const directories = v.array(t['directories'], `${at}.directories`).map((d, i) => {
    const name = v.name(d, `${at}.directories[${i}]`);
    if (seen.has(name)) v.fail(`${at}.directories[${i}]`, `repeats '${printable(name)}'`);
    seen.add(name);
    return name;
  });

  const files = v.array(t['files'], `${at}.files`).map((f, i): FileEntry => {
    const fat = `${at}.files[${i}]`;
    const file = v.object(f, fat);
    const path = v.name(file['path'], `${fat}.path`);
    if (seen.has(path)) v.fail(`${fat}.path`, `repeats '${printable(path)}' (each path may appear once)`);
    seen.add(path);
    const size = v.int(file['size'], `${fat}.size`, 0, Number.MAX_SAFE_INTEGER);
    const mode = v.int(file['mode'], `${fat}.mode`, 0, 0o7777);
    const mtimeMs = v.number(file['mtimeMs'], `${fat}.mtimeMs`);
    const immutable = v.bool(file['immutable'], `${fat}.immutable`);
    let total = 0;
    const chunks = v.array(file['chunks'], `${fat}.chunks`).map((c, j): ChunkRef => {
      const cat = `${fat}.chunks[${j}]`;
      const chunk = v.object(c, cat);
      const key = chunk['key'];
      if (!isContentKey(key)) v.fail(`${cat}.key`, 'is not a 32-character lowercase hex content key');
      const rawLength = v.int(chunk['rawLength'], `${cat}.rawLength`, 1, MAX_CHUNK_SIZE);
      const h = v.object(chunk['handle'], `${cat}.handle`);
      const area = h['area'];
      if (typeof area !== 'string' || !(AREAS as readonly string[]).includes(area)) v.fail(`${cat}.handle.area`, `is not one of ${AREAS.join(', ')}`);
      const handle: Handle = {
        area: area as Area,
        name: v.name(h['name'], `${cat}.handle.name`),
        offset: v.int(h['offset'], `${cat}.handle.offset`, 0, Number.MAX_SAFE_INTEGER),
        length: v.int(h['length'], `${cat}.handle.length`, BLOB_HEADER_SIZE, BLOB_HEADER_SIZE + MAX_CHUNK_SIZE + 65536),
      };
      // Task-owned blobs are private: a task may reference only its own.
      if (handle.area === 'taskowned' && !handle.name.startsWith(ownedPrefix)) v.fail(`${cat}.handle.name`, `is task-owned by another task than '${printable(task)}'`);
      const createdBy = v.int(chunk['createdBy'], `${cat}.createdBy`, minCreatedBy, maxCreatedBy);
      total += rawLength;
      return { key, rawLength, handle, createdBy };
    });
    if (total !== size) v.fail(`${fat}.chunks`, `add up to ${total} bytes but the file is ${size} bytes`);
    return { path, size, mode, mtimeMs, immutable, chunks };
  });

  // A path that is both a file and the parent of another entry cannot be restored.
  const fileSet = new Set(files.map((f) => f.path));
  for (const name of [...directories, ...fileSet]) {
    const parts = name.split('/');
    for (let k = 1; k < parts.length; k++) {
      const parent = parts.slice(0, k).join('/');
      if (fileSet.has(parent)) v.fail(`${at}.files`, `has '${printable(parent)}' both as a file and as the parent of '${printable(name)}'`);
    }
  }
  return { task, chunkSize, directories, files };
}

/**
 * Blobs live under a two-hex-digit fan-out directory, named by key and raw
 * length: in `shared/` (immutable files, shareable across checkpoints and
 * tasks), or, for a task's private mutable files, in `taskowned/<task>/`.
 */
export function blobHandle(key: string, rawLength: number, storedLength: number, owner?: string): Handle {
  const name = `${key.slice(0, 2)}/${key}-${rawLength}`;
  return owner === undefined ? { area: 'shared', name, offset: 0, length: storedLength } : { area: 'taskowned', name: `${owner}/${name}`, offset: 0, length: storedLength };
}
