/**
 * Names: the one place where anything read from stored data or typed by a
 * user becomes a store key, and where a store key is recognised as one of
 * chunkpoint's own objects. Layout (docs/FORMAT.md):
 *
 *   shared/<packId>-<sessionId>.pack              packs of immutable state files
 *   taskowned/<task>/<packId>-<sessionId>.pack    packs of a task's mutable files
 *   taskowned/<task>/<sessionId>.manifest         a task's files and chunk handles
 *   sessions/<sessionId>                          a writer's lease
 *   chk-<n>/_metadata                             checkpoint n: the commit point
 *   chk-<n>/_removed                              tombstone: checkpoint n was removed (the fence)
 *   <dir>/.tmp-<id>                               a write in progress (directory stores)
 *
 * Every stored reference is relative to the job root, so the job root can
 * move (another disk, another bucket) and every handle still resolves. Names
 * are checked here, strictly, before use: a name that could escape its root
 * (`..`, absolute, backslash, NUL, empty segment) is corrupt data, never a
 * path to try. gc deletes only what `parseStoreKey` recognises.
 */
import { CorruptDataError, InvalidInputError } from '../errors.js';
import { ID_PATTERN, idTime, newId } from './ids.js';

export const AREAS = ['shared', 'taskowned'] as const;
export type Area = (typeof AREAS)[number];

/** Top-level names of a job root: a job id (or a nested store) may not shadow them. */
export const RESERVED_NAMES = ['shared', 'taskowned', 'sessions'] as const;

/** Stored bytes inside a job root: the object `<area>/<name>` and a byte range of it. */
export interface Handle {
  area: Area;
  /** '/'-separated path below the area directory. */
  name: string;
  offset: number;
  length: number;
}

const MAX_NAME_LENGTH = 4096;
const MAX_SEGMENT_LENGTH = 255;

/**
 * Why a relative name is unsafe, or undefined when it is safe. Safe means:
 * '/'-separated, no empty, '.' or '..' segment, no backslash, NUL or other
 * control character, not absolute, not a Windows drive path.
 */
export function unsafeNameReason(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_NAME_LENGTH) return `it is longer than ${MAX_NAME_LENGTH} characters`;
  if (name.startsWith('/')) return 'it is an absolute path';
  if (/^[A-Za-z]:/.test(name)) return 'it is a drive-qualified path';
  if (name.includes('\\')) return 'it contains a backslash';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'it contains a NUL or control character';
  for (const segment of name.split('/')) {
    if (segment === '') return 'it has an empty path segment';
    if (segment === '.' || segment === '..') return `it has a '${segment}' segment`;
    if (segment.length > MAX_SEGMENT_LENGTH) return `a segment is longer than ${MAX_SEGMENT_LENGTH} characters`;
  }
  return undefined;
}

/** For names that come from stored data: unsafe means corrupt or hostile. */
export function checkStoredName(name: string, where: string): string {
  const reason = unsafeNameReason(name);
  if (reason !== undefined) {
    throw new CorruptDataError('UNSAFE_PATH', `${where} names '${printable(name)}', which is refused because ${reason}; the checkpoint metadata is damaged or was tampered with`);
  }
  return name;
}

/** The store key a handle points at, relative to the job root. */
export function handleKey(handle: Pick<Handle, 'area' | 'name'>): string {
  if (!(AREAS as readonly string[]).includes(handle.area)) {
    throw new CorruptDataError('UNSAFE_PATH', `a handle names the unknown area '${printable(String(handle.area))}'`);
  }
  return `${handle.area}/${checkStoredName(handle.name, 'a handle')}`;
}

const SEGMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** Job ids become one directory or prefix segment, and may not be a job root's own names. */
export function checkJobId(jobId: string): string {
  if (!SEGMENT_ID.test(jobId)) {
    throw new InvalidInputError(
      'INVALID_JOB_ID',
      `job id '${printable(jobId)}' is not valid; use 1-200 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  if ((RESERVED_NAMES as readonly string[]).includes(jobId) || CHECKPOINT_DIR_RE.test(jobId)) {
    throw new InvalidInputError('INVALID_JOB_ID', `job id '${jobId}' is refused: it is a name chunkpoint uses inside every job root, so a job of that name would live inside another job's area; pick another id`);
  }
  return jobId;
}

/** Task ids become one segment below `taskowned/`; the same rule as job ids. */
export const TASK_ID_RE = SEGMENT_ID;

/** The task of a single-task job. */
export const DEFAULT_TASK = 'main';

export function checkTaskId(task: string): string {
  if (!TASK_ID_RE.test(task)) {
    throw new InvalidInputError('INVALID_TASK_ID', `task id '${printable(task)}' is not valid; use 1-200 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return task;
}

/** No leading zeros (`chk-01` is not an alias of `chk-1`), and at most 15 digits: every id is a safe integer. */
export const CHECKPOINT_DIR_RE = /^chk-([1-9]\d{0,14})$/;
/** The largest checkpoint id chunkpoint reads or writes. */
export const MAX_CHECKPOINT_ID = 999_999_999_999_999;

export function checkpointDirName(id: number): string {
  return `chk-${id}`;
}

export function metadataKey(id: number): string {
  return `${checkpointDirName(id)}/_metadata`;
}

/** The fence: a tombstone per removed checkpoint, written before its `_metadata` is deleted. */
export function tombstoneKey(id: number): string {
  return `${checkpointDirName(id)}/_removed`;
}

export const SESSIONS_PREFIX = 'sessions/';

export function sessionKey(sessionId: string): string {
  return `${SESSIONS_PREFIX}${sessionId}`;
}

/** The area a task's pack of immutable (shared) or mutable (task-owned) files goes to. */
export function packHandleName(area: Area, task: string, packId: string, sessionId: string): string {
  return area === 'shared' ? `${packId}-${sessionId}.pack` : `${task}/${packId}-${sessionId}.pack`;
}

export function packKey(area: Area, task: string, packId: string, sessionId: string): string {
  return `${area}/${packHandleName(area, task, packId, sessionId)}`;
}

export function manifestKey(task: string, sessionId: string): string {
  return `taskowned/${task}/${sessionId}.manifest`;
}

/** Prefix of writes in progress on directory stores: `.tmp-<id>-<object name>`, the id carrying the time gc judges them by. */
export const TEMP_PREFIX = '.tmp-';

export function tempName(target: string): string {
  return `${TEMP_PREFIX}${newId()}-${target.slice(target.lastIndexOf('/') + 1)}`;
}

/** What a store key is, when it is one of chunkpoint's own objects. */
export type StoreObjectName =
  | { kind: 'pack'; area: Area; task?: string; session: string; timeMs: number }
  | { kind: 'manifest'; task: string; session: string; timeMs: number }
  | { kind: 'session'; session: string; timeMs: number }
  | { kind: 'metadata'; checkpointId: number }
  | { kind: 'tombstone'; checkpointId: number }
  | { kind: 'temp'; timeMs: number; target: string };

const SHARED_PACK_RE = new RegExp(`^shared/(${ID_PATTERN})-(${ID_PATTERN})\\.pack$`);
const OWNED_PACK_RE = new RegExp(`^taskowned/([A-Za-z0-9][A-Za-z0-9._-]{0,199})/(${ID_PATTERN})-(${ID_PATTERN})\\.pack$`);
const MANIFEST_RE = new RegExp(`^taskowned/([A-Za-z0-9][A-Za-z0-9._-]{0,199})/(${ID_PATTERN})\\.manifest$`);
const SESSION_RE = new RegExp(`^sessions/(${ID_PATTERN})$`);
const CHECKPOINT_FILE_RE = /^chk-([1-9]\d{0,14})\/(_metadata|_removed)$/;
const TEMP_RE = new RegExp(`^((?:.*/)?)\\.tmp-(${ID_PATTERN})(?:-([^/]+))?$`);

/**
 * Recognises one of chunkpoint's own store keys (relative to the job root);
 * anything else — a file someone put there, an object of another format
 * version, a nested job — is undefined, and gc never deletes it.
 */
export function parseStoreKey(key: string): StoreObjectName | undefined {
  let m = SHARED_PACK_RE.exec(key);
  if (m?.[1] !== undefined && m[2] !== undefined) return { kind: 'pack', area: 'shared', session: m[2], timeMs: idTime(m[1]) ?? 0 };
  m = OWNED_PACK_RE.exec(key);
  if (m?.[1] !== undefined && m[2] !== undefined && m[3] !== undefined) return { kind: 'pack', area: 'taskowned', task: m[1], session: m[3], timeMs: idTime(m[2]) ?? 0 };
  m = MANIFEST_RE.exec(key);
  if (m?.[1] !== undefined && m[2] !== undefined) return { kind: 'manifest', task: m[1], session: m[2], timeMs: idTime(m[2]) ?? 0 };
  m = SESSION_RE.exec(key);
  if (m?.[1] !== undefined) return { kind: 'session', session: m[1], timeMs: idTime(m[1]) ?? 0 };
  m = CHECKPOINT_FILE_RE.exec(key);
  if (m?.[1] !== undefined) return m[2] === '_metadata' ? { kind: 'metadata', checkpointId: Number(m[1]) } : { kind: 'tombstone', checkpointId: Number(m[1]) };
  m = TEMP_RE.exec(key);
  if (m?.[1] !== undefined && m[2] !== undefined) return { kind: 'temp', timeMs: idTime(m[2]) ?? 0, target: m[3] === undefined ? '' : `${m[1]}${m[3]}` };
  return undefined;
}

/** Format-1 blob keys (`shared/ab/<key>-<rawLength>`): recognised only to refuse a format-1 job root clearly. */
const V1_BLOB_RE = /^(?:shared|taskowned\/[A-Za-z0-9][A-Za-z0-9._-]{0,199})\/[0-9a-f]{2}\/[0-9a-f]{32}-\d{1,9}$/;

export function isFormat1BlobKey(key: string): boolean {
  return V1_BLOB_RE.test(key);
}

/** Makes a hostile name safe to print in a one-line error. */
export function printable(name: string): string {
  // eslint-disable-next-line no-control-regex
  const cleaned = name.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return cleaned.length > 200 ? `${cleaned.slice(0, 200)}…` : cleaned;
}
