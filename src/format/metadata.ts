/**
 * `chk-<n>/_metadata`: the single commit point of a checkpoint, and the task
 * snapshots a commit is made of.
 *
 * Metadata scales with tasks, not chunks: per task it names the task's
 * manifest (bound by its checksum) and lists the packs the task references
 * with their sizes. Restore reads one manifest; gc and retention decide from
 * `_metadata` alone (one read per kept checkpoint, memory in proportion to
 * packs, never to chunks). Envelope: envelope.ts; layout: docs/FORMAT.md.
 */
import type { Hasher } from './content-key.js';
import { FORMAT_VERSION, decodeEnvelope, encodeEnvelope } from './envelope.js';
import { CorruptDataError, InvalidInputError } from '../errors.js';
import { isId } from './ids.js';
import { KEY_ALGORITHM, type PackRef } from './manifest.js';
import { MAX_CHECKPOINT_ID, TASK_ID_RE, parseStoreKey, printable } from './names.js';
import { PACK_HEADER_SIZE } from './pack.js';
import { Validator } from './validate.js';

export const METADATA_MAGIC = Buffer.from('CPMETA\r\n', 'latin1');
/** Far above any real checkpoint, far below an allocation that hurts. */
export const MAX_METADATA_SIZE = 256 * 1024 * 1024;

export interface SnapshotFigures {
  bytesRead: number;
  bytesWritten: number;
  filesReused: number;
  chunksNew: number;
  chunksDeduped: number;
  durationMs: number;
}

/** Where a task's manifest is, and the checksum that binds it to this checkpoint. */
export interface ManifestRef {
  key: string;
  size: number;
  checksum: string;
}

/** One task's part of a checkpoint. */
export interface TaskEntry {
  task: string;
  /** The writer session that stored it. */
  session: string;
  manifest: ManifestRef;
  /** Every pack the task's chunks live in, with its size: what gc keeps alive. */
  packs: PackRef[];
  files: number;
  /** Logical bytes of the task's state. */
  bytes: number;
  chunks: number;
}

export interface CheckpointMetadata {
  formatVersion: typeof FORMAT_VERSION;
  checkpointId: number;
  /** The owner: retention and gc remove only checkpoints of their own job unless claimed. Never used to resolve anything. */
  jobId: string;
  createdAt: string;
  keyAlgorithm: typeof KEY_ALGORITHM;
  /** The checkpoint the tasks reused data from, or null (a full snapshot). */
  base: number | null;
  /** At least one; task ids are unique. */
  tasks: TaskEntry[];
  /** Sums over the tasks (durationMs: the longest task). */
  snapshot: SnapshotFigures;
}

export function encodeMetadata(metadata: CheckpointMetadata, hasher: Hasher): Buffer {
  return encodeEnvelope(
    METADATA_MAGIC,
    { ...metadata, tasks: metadata.tasks.map((t) => ({ ...t, packs: t.packs.map((p) => [p.key, p.size]) })) },
    hasher,
  );
}

/**
 * Decodes and validates `_metadata`. `expectedId` is the id from the
 * `chk-<n>` directory name; a body claiming another id is refused (a copied
 * or swapped file). Every writer validates what it is about to commit with
 * this same function.
 */
export function decodeMetadata(data: Uint8Array, hasher: Hasher, where: string, expectedId?: number): CheckpointMetadata {
  const what = `checkpoint metadata ${where}`;
  const { json, tail } = decodeEnvelope(data, METADATA_MAGIC, hasher, what, 'METADATA');
  const v: Validator = new Validator(what);
  if (tail.byteLength > 0) v.fail('$', 'is followed by unexpected bytes');
  const root = v.object(json, '$');
  if (root['formatVersion'] !== FORMAT_VERSION) v.fail('$.formatVersion', `is not ${FORMAT_VERSION}`);
  if (root['keyAlgorithm'] !== KEY_ALGORITHM) v.fail('$.keyAlgorithm', `is not '${KEY_ALGORITHM}'`);
  const checkpointId = v.int(root['checkpointId'], '$.checkpointId', 1, MAX_CHECKPOINT_ID);
  if (expectedId !== undefined && checkpointId !== expectedId) {
    throw new CorruptDataError('METADATA_MISMATCH', `${what} says it is checkpoint ${checkpointId} but sits in chk-${expectedId}; the checkpoint cannot be used`);
  }
  const jobId = v.string(root['jobId'], '$.jobId', 200);
  const createdAt = v.string(root['createdAt'], '$.createdAt', 64);
  v.date(createdAt, '$.createdAt');
  const base = root['base'] === null ? null : v.int(root['base'], '$.base', 1, checkpointId - 1);
  const rawTasks = v.array(root['tasks'], '$.tasks');
  if (rawTasks.length === 0) v.fail('$.tasks', 'is empty');
  const ids = new Set<string>();
  const tasks = rawTasks.map((t, i) => {
    const task = validateTaskEntry(v, t, `$.tasks[${i}]`);
    if (ids.has(task.task)) v.fail(`$.tasks[${i}].task`, `repeats '${printable(task.task)}'`);
    ids.add(task.task);
    return task;
  });
  return { formatVersion: FORMAT_VERSION, checkpointId, jobId, createdAt, keyAlgorithm: KEY_ALGORITHM, base, tasks, snapshot: validateFigures(v, root['snapshot'], '$.snapshot') };
}

function validateTaskEntry(v: Validator, value: unknown, at: string): TaskEntry {
  const t = v.object(value, at);
  const task = v.matches(t['task'], `${at}.task`, TASK_ID_RE, 'a task id');
  const session = v.string(t['session'], `${at}.session`, 26);
  if (!isId(session)) v.fail(`${at}.session`, 'is not a session id');
  const manifest = validateManifestRef(v, t['manifest'], `${at}.manifest`, task, session);
  const packs = validatePackRefs(v, t['packs'], `${at}.packs`, task);
  return {
    task,
    session,
    manifest,
    packs,
    files: v.int(t['files'], `${at}.files`, 0, Number.MAX_SAFE_INTEGER),
    bytes: v.int(t['bytes'], `${at}.bytes`, 0, Number.MAX_SAFE_INTEGER),
    chunks: v.int(t['chunks'], `${at}.chunks`, 0, Number.MAX_SAFE_INTEGER),
  };
}

function validateManifestRef(v: Validator, value: unknown, at: string, task: string, session: string): ManifestRef {
  const m = v.object(value, at);
  const key = v.string(m['key'], `${at}.key`, 512);
  const parsed = parseStoreKey(key);
  if (parsed?.kind !== 'manifest' || parsed.task !== task || parsed.session !== session) v.fail(`${at}.key`, `'${printable(key)}' is not the manifest of task '${task}' session ${session}`);
  return {
    key,
    size: v.int(m['size'], `${at}.size`, 24, Number.MAX_SAFE_INTEGER),
    checksum: v.matches(m['checksum'], `${at}.checksum`, /^[0-9a-f]{16}$/, 'a 16-digit hex checksum'),
  };
}

/** Pack references: `[key, size]` pairs in stored metadata (compact), `{key, size}` objects in task snapshots (an API value). */
function validatePackRefs(v: Validator, value: unknown, at: string, task: string, form: 'pair' | 'object' = 'pair'): PackRef[] {
  const seen = new Set<string>();
  return v.array(value, at).map((p, i) => {
    const [rawKey, rawSize, keyAt, sizeAt] =
      form === 'pair' ? [...v.array(p, `${at}[${i}]`).slice(0, 2), `${at}[${i}][0]`, `${at}[${i}][1]`] : [v.object(p, `${at}[${i}]`)['key'], v.object(p, `${at}[${i}]`)['size'], `${at}[${i}].key`, `${at}[${i}].size`];
    const key = v.string(rawKey, keyAt as string, 512);
    const parsed = parseStoreKey(key);
    if (parsed?.kind !== 'pack') v.fail(keyAt as string, `'${printable(key)}' is not a pack key`);
    if (parsed.area === 'taskowned' && parsed.task !== task) v.fail(keyAt as string, `is a task-owned pack of another task than '${printable(task)}'`);
    if (seen.has(key)) v.fail(keyAt as string, `repeats '${key}'`);
    seen.add(key);
    return { key, size: v.int(rawSize, sizeAt as string, PACK_HEADER_SIZE, Number.MAX_SAFE_INTEGER) };
  });
}

function validateFigures(v: Validator, value: unknown, at: string): SnapshotFigures {
  const s = v.object(value, at);
  return {
    bytesRead: v.int(s['bytesRead'], `${at}.bytesRead`, 0, Number.MAX_SAFE_INTEGER),
    bytesWritten: v.int(s['bytesWritten'], `${at}.bytesWritten`, 0, Number.MAX_SAFE_INTEGER),
    filesReused: v.int(s['filesReused'], `${at}.filesReused`, 0, Number.MAX_SAFE_INTEGER),
    chunksNew: v.int(s['chunksNew'], `${at}.chunksNew`, 0, Number.MAX_SAFE_INTEGER),
    chunksDeduped: v.int(s['chunksDeduped'], `${at}.chunksDeduped`, 0, Number.MAX_SAFE_INTEGER),
    durationMs: v.number(s['durationMs'], `${at}.durationMs`, 0),
  };
}

export const TASK_SNAPSHOT_FORMAT = 'chunkpoint-task-snapshot-2';

/** What a task snapshot did, for the committed checkpoint's figures and the caller. */
export interface TaskFigures extends SnapshotFigures {
  files: number;
  bytes: number;
  bytesReused: number;
  bytesCached: number;
  chunks: number;
  /** Raw bytes of the chunks whose blobs this task wrote, and the bytes of the packs holding them (for the compression ratio). */
  rawBytesNew: number;
  packBytes: number;
  /** Packs this task wrote. */
  packsWritten: number;
  /** Packs of the base that were missing, of the wrong size or mostly dead, whose chunks were read again from the state directory, and those chunks' bytes. */
  packsRewritten: number;
  bytesRewritten: number;
  /** Of `chunksNew`, the chunks of those packs stored again. */
  chunksRewritten: number;
}

/**
 * A task's snapshot, not yet part of any checkpoint: plain JSON-safe data a
 * task process hands to the coordinator, which commits checkpoint
 * `checkpointId` from all tasks. Its chunks are in the store already, in packs
 * of the task's writer session; the session's lease (until `expiresAt`)
 * keeps gc away from them until the commit.
 */
export interface TaskSnapshot {
  format: typeof TASK_SNAPSHOT_FORMAT;
  jobId: string;
  task: string;
  /** The committed checkpoint this task reused data from, or null. */
  base: number | null;
  /** The checkpoint this task snapshot becomes part of, fixed when the task started. */
  checkpointId: number;
  session: string;
  startedAt: string;
  /** The session's lease as the task left it: commit before this. */
  expiresAt: string;
  keyAlgorithm: typeof KEY_ALGORITHM;
  manifest: ManifestRef;
  packs: PackRef[];
  figures: TaskFigures;
}

/**
 * Validates a task snapshot handed over by a task process (or read from a
 * file): it is input, so problems are INVALID_TASK_SNAPSHOT, and the same
 * rules as committed metadata apply, so a bad one can never be committed.
 */
export function validateTaskSnapshot(value: unknown, where: string): TaskSnapshot {
  const v: Validator = new Validator(where, (message) => new InvalidInputError('INVALID_TASK_SNAPSHOT', `${message}; pass the object snapshotTask returned, unchanged`));
  const root = v.object(value, '$');
  if (root['format'] !== TASK_SNAPSHOT_FORMAT) {
    v.fail('$.format', `is not '${TASK_SNAPSHOT_FORMAT}' (not a chunkpoint task snapshot, or one of another format version: take it again with this chunkpoint)`);
  }
  if (root['keyAlgorithm'] !== KEY_ALGORITHM) v.fail('$.keyAlgorithm', `is not '${KEY_ALGORITHM}'`);
  const jobId = v.string(root['jobId'], '$.jobId', 200);
  const task = v.matches(root['task'], '$.task', TASK_ID_RE, 'a task id');
  const checkpointId = v.int(root['checkpointId'], '$.checkpointId', 1, MAX_CHECKPOINT_ID);
  const base = root['base'] === null ? null : v.int(root['base'], '$.base', 1, checkpointId - 1);
  const session = v.string(root['session'], '$.session', 26);
  if (!isId(session)) v.fail('$.session', 'is not a session id');
  const startedAt = v.string(root['startedAt'], '$.startedAt', 64);
  v.date(startedAt, '$.startedAt');
  const expiresAt = v.string(root['expiresAt'], '$.expiresAt', 64);
  v.date(expiresAt, '$.expiresAt');
  const manifest = validateManifestRef(v, root['manifest'], '$.manifest', task, session);
  const packs = validatePackRefs(v, root['packs'], '$.packs', task, 'object');
  const f = v.object(root['figures'], '$.figures');
  const count = (name: string): number => v.int(f[name], `$.figures.${name}`, 0, Number.MAX_SAFE_INTEGER);
  const figures: TaskFigures = {
    ...validateFigures(v, f, '$.figures'),
    files: count('files'),
    bytes: count('bytes'),
    bytesReused: count('bytesReused'),
    bytesCached: count('bytesCached'),
    chunks: count('chunks'),
    rawBytesNew: count('rawBytesNew'),
    packBytes: count('packBytes'),
    packsWritten: count('packsWritten'),
    packsRewritten: count('packsRewritten'),
    bytesRewritten: count('bytesRewritten'),
    chunksRewritten: count('chunksRewritten'),
  };
  return { format: TASK_SNAPSHOT_FORMAT, jobId, task, base, checkpointId, session, startedAt, expiresAt, keyAlgorithm: KEY_ALGORITHM, manifest, packs, figures };
}
