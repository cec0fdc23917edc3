/**
 * Entry point of every worker thread (loaded by piscina). Dispatches on the
 * request's `op`; an op this build does not know fails loudly rather than
 * being ignored. Errors go back as data so their kind and code survive.
 */
import { InternalError, serializeError } from '../src/errors.js';
import type { WorkerMessage, WorkerRequest, WorkerResponse, WorkerResult } from '../src/protocol.js';
import { Cancellation } from './cancellation.js';
import { adoptRelay } from './relayed-store.js';
import { checkSpan } from './check-span.js';
import { copyObject } from './copy-object.js';
import { restoreChunks } from './restore-chunks.js';
import { restoreSpan } from './restore-span.js';
import { withScratch, type Scratch } from './scratch.js';
import { verifyRange } from './verify-range.js';
import { writePack } from './write-pack.js';

export default async function handle(message: WorkerMessage): Promise<WorkerResponse> {
  try {
    adoptRelay(message.relay);
    const cancel = new Cancellation(message.cancel);
    cancel.check();
    return { ok: true, result: await withScratch((scratch) => dispatch(message.request, scratch, cancel)) };
  } catch (error) {
    return { ok: false, error: serializeError(error) };
  }
}

async function dispatch(request: WorkerRequest, scratch: Scratch, cancel: Cancellation): Promise<WorkerResult> {
  switch (request.op) {
    case 'writePack':
      return writePack(request, scratch, cancel);
    case 'restoreSpan':
      return restoreSpan(request, scratch, cancel);
    case 'restoreChunks':
      return restoreChunks(request, scratch, cancel);
    case 'verifyRange':
      return verifyRange(request, scratch, cancel);
    case 'checkSpan':
      return checkSpan(request, scratch, cancel);
    case 'copyObject':
      return copyObject(request, scratch, cancel);
    default: {
      const unknown: never = request;
      throw new InternalError('UNKNOWN_OP', `worker received an unknown request op '${String((unknown as { op: unknown }).op)}'`);
    }
  }
}
