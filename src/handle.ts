/**
 * Handles and names: the one place where anything read from `_metadata` or
 * typed by a user becomes a store key or a filesystem path.
 *
 * Every stored reference is `{area, name, offset, length}` relative to the job
 * root, so the job root can move (another disk, another bucket) and every
 * handle still resolves. Names are checked here, strictly, before use: a name
 * that could escape its root (`..`, absolute, backslash, NUL, empty segment)
 * is corrupt data, never a path to try.
 */
import { CorruptDataError, InvalidInputError } from './errors.js';

export const AREAS = ['shared', 'taskowned'] as const;
export type Area = (typeof AREAS)[number];

export interface Handle {
  area: Area;
  /** '/'-separated path below the area directory. */
  name: string;
  /** Byte range of this blob inside the named object (a whole object today; segment files later). */
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
export function handleKey(handle: Handle): string {
  if (!(AREAS as readonly string[]).includes(handle.area)) {
    throw new CorruptDataError('UNSAFE_PATH', `a handle names the unknown area '${printable(String(handle.area))}'`);
  }
  return `${handle.area}/${checkStoredName(handle.name, 'a handle')}`;
}

/** Job ids become one directory or prefix segment. */
export function checkJobId(jobId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(jobId)) {
    throw new InvalidInputError(
      'INVALID_JOB_ID',
      `job id '${printable(jobId)}' is not valid; use 1-200 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return jobId;
}

/** Task ids become one segment below `taskowned/`; the same rule as job ids. */
export const TASK_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** The task of a single-task job. */
export const DEFAULT_TASK = 'main';

export function checkTaskId(task: string): string {
  if (!TASK_ID_RE.test(task)) {
    throw new InvalidInputError('INVALID_TASK_ID', `task id '${printable(task)}' is not valid; use 1-200 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return task;
}

/** No leading zeros: `chk-01` is not an alias of `chk-1`. */
export const CHECKPOINT_DIR_RE = /^chk-([1-9]\d{0,14})$/;

export function checkpointDirName(id: number): string {
  return `chk-${id}`;
}

export function metadataKey(id: number): string {
  return `${checkpointDirName(id)}/_metadata`;
}

/** Makes a hostile name safe to print in a one-line error. */
export function printable(name: string): string {
  // eslint-disable-next-line no-control-regex
  const cleaned = name.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return cleaned.length > 200 ? `${cleaned.slice(0, 200)}…` : cleaned;
}
