/**
 * How a stress run fails: an invariant broken, named, with the round it
 * broke in. Any part of the harness that sees one throws a ViolationError;
 * the scenario loop stops the run there and reports it.
 */
import { toChunkpointError } from '../src/errors.js';

export interface Violation {
  invariant: string;
  message: string;
  round: number;
}

export class ViolationError extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(message);
  }
}

/** An error as violation messages and the log quote it: its code first, what a reader greps for. */
export function describe(error: unknown): string {
  const e = toChunkpointError(error);
  return `${e.code}: ${e.message}`;
}
