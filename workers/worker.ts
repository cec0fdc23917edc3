/**
 * Entry point of every worker thread (loaded by piscina). Dispatches on the
 * request's `op`; an op this build does not know fails loudly rather than
 * being ignored. Errors go back as data so their kind and code survive.
 */
import { InternalError, serializeError } from '../src/errors.js';
import type { WorkerRequest, WorkerResponse } from '../src/protocol.js';
import { checkBlob } from './check-blob.js';
import { copyObject } from './copy-object.js';
import { restoreChunk } from './restore-chunk.js';
import { verifyRange } from './verify-range.js';
import { writeChunk } from './write-chunk.js';

export default async function handle(request: WorkerRequest): Promise<WorkerResponse> {
  try {
    switch (request.op) {
      case 'writeChunk':
        return { ok: true, result: await writeChunk(request) };
      case 'restoreChunk':
        return { ok: true, result: await restoreChunk(request) };
      case 'verifyRange':
        return { ok: true, result: await verifyRange(request) };
      case 'checkBlob':
        return { ok: true, result: await checkBlob(request) };
      case 'copyObject':
        return { ok: true, result: await copyObject(request) };
      default: {
        const unknown: never = request;
        throw new InternalError('UNKNOWN_OP', `worker received an unknown request op '${String((unknown as { op: unknown }).op)}'`);
      }
    }
  } catch (error) {
    return { ok: false, error: serializeError(error) };
  }
}
