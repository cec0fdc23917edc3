/**
 * "No such object", the one store failure callers branch on: each caller
 * knows whether absence means a missing checkpoint, a damaged one, or
 * nothing at all, so stores report it uniformly and callers translate it.
 */
import { InvalidInputError } from '../errors.js';

export function notFound(key: string, location: string): InvalidInputError {
  return new InvalidInputError('OBJECT_NOT_FOUND', `no object '${key}' in ${location}`, { details: { key, location } });
}

export function isNotFound(error: unknown): boolean {
  return error instanceof InvalidInputError && error.code === 'OBJECT_NOT_FOUND';
}
