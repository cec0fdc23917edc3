/**
 * "No such object", the one store failure callers branch on: each caller
 * knows whether absence means a missing checkpoint, a damaged one, or
 * nothing at all, so stores report it uniformly and callers translate it.
 *
 * Its kind is corrupt_data, not invalid_input: the caller never names an
 * object, only jobs and checkpoints (whose absence is translated into
 * JOB_NOT_FOUND and CHECKPOINT_NOT_FOUND where the caller asked for them).
 * One that reaches the caller untranslated is an object the job root should
 * hold and does not (e.g. a pack gc removed under a copy), like
 * CHUNK_MISSING and MANIFEST_MISSING.
 */
import { ChunkpointError, CorruptDataError } from '../errors.js';

export function notFound(key: string, location: string): CorruptDataError {
  return new CorruptDataError('OBJECT_NOT_FOUND', `no object '${key}' in ${location}`, { details: { key, location } });
}

export function isNotFound(error: unknown): boolean {
  return error instanceof ChunkpointError && error.code === 'OBJECT_NOT_FOUND';
}
