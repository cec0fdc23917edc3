/**
 * `sessions/<id>`: the lease of a writer session (one snapshot task in
 * flight). Written before the session's first pack, renewed while it runs,
 * deleted after its commit. gc never deletes an object a live session wrote;
 * a commit refuses a task snapshot whose session is not live.
 */
import { CorruptDataError } from '../errors.js';
import type { Hasher } from './content-key.js';
import { FORMAT_VERSION, decodeEnvelope, encodeEnvelope } from './envelope.js';
import { isId } from './ids.js';
import { MAX_CHECKPOINT_ID, TASK_ID_RE } from './names.js';
import { Validator } from './validate.js';

export const SESSION_MAGIC = Buffer.from('CPSESS\r\n', 'latin1');

export interface SessionRecord {
  formatVersion: typeof FORMAT_VERSION;
  session: string;
  jobId: string;
  task: string;
  /** The checkpoint the session reuses data from, and the one it will commit as. */
  base: number | null;
  checkpointId: number;
  startedAt: string;
  /** Renewed while the session runs; gc treats the session as dead after this (plus the lease's clock margin). */
  expiresAt: string;
  /** The lease length the holder renews by (its clock margin follows from it). */
  leaseMs: number;
  /** Who holds it, for people reading a stuck lease. */
  holder: string;
}

export function encodeSession(record: SessionRecord, hasher: Hasher): Buffer {
  return encodeEnvelope(SESSION_MAGIC, record, hasher);
}

export function decodeSession(data: Uint8Array, hasher: Hasher, where: string, expectedId: string): SessionRecord {
  const what = `session ${where}`;
  const { json } = decodeEnvelope(data, SESSION_MAGIC, hasher, what, 'SESSION');
  const v: Validator = new Validator(what, (message) => new CorruptDataError('SESSION_INVALID', message));
  const root = v.object(json, '$');
  if (root['formatVersion'] !== FORMAT_VERSION) v.fail('$.formatVersion', `is not ${FORMAT_VERSION}`);
  const session = v.string(root['session'], '$.session', 26);
  if (!isId(session) || session !== expectedId) v.fail('$.session', `is not ${expectedId}`);
  const checkpointId = v.int(root['checkpointId'], '$.checkpointId', 1, MAX_CHECKPOINT_ID);
  const startedAt = v.string(root['startedAt'], '$.startedAt', 64);
  v.date(startedAt, '$.startedAt');
  const expiresAt = v.string(root['expiresAt'], '$.expiresAt', 64);
  v.date(expiresAt, '$.expiresAt');
  return {
    formatVersion: FORMAT_VERSION,
    session,
    jobId: v.string(root['jobId'], '$.jobId', 200),
    task: v.matches(root['task'], '$.task', TASK_ID_RE, 'a task id'),
    base: root['base'] === null ? null : v.int(root['base'], '$.base', 1, MAX_CHECKPOINT_ID),
    checkpointId,
    startedAt,
    expiresAt,
    leaseMs: v.int(root['leaseMs'], '$.leaseMs', 1, 2 ** 40),
    holder: v.string(root['holder'], '$.holder', 512),
  };
}
