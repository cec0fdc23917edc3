/**
 * A running request's view of its operation's abort. The coordinator cannot
 * stop a request by terminating its thread: the thread runs other operations'
 * requests too, and a killed request leaves a half-written pack or target file
 * behind after the operation has already returned. So an abort sets a flag
 * the coordinator shares with the request, and the request checks it between
 * chunks, cleans up as on any failure, and answers ABORTED; the operation
 * settles only after its requests have.
 */
import { InternalError } from '../src/errors.js';

export class Cancellation {
  private readonly flag: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.flag = new Int32Array(buffer);
  }

  get requested(): boolean {
    return Atomics.load(this.flag, 0) !== 0;
  }

  /** Throws ABORTED once the operation was aborted; call it between units of work. */
  check(): void {
    if (this.requested) throw new InternalError('ABORTED', 'operation aborted');
  }
}
