/**
 * Copy side of a worker: stream one pack from a source job root to a
 * destination, checking it on the way — its header, every blob against the
 * trailer's index (header, decompression, content key), and the trailer
 * itself — so a copy never spreads damage. Bytes go store to store inside
 * this thread, a blob at a time.
 */
import { ConflictError, CorruptDataError } from '../src/errors.js';
import { decodeBlob } from '../src/format/blob.js';
import { loadHasher } from '../src/format/content-key.js';
import { PACK_HEADER_SIZE, checkPackHeader, readPackIndex } from '../src/format/pack.js';
import type { CopyObjectRequest, CopyObjectResult } from '../src/protocol.js';
import type { ObjectWriter } from '../src/store/store.js';
import type { Cancellation } from './cancellation.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';
import { readFully } from './restore-span.js';

const hasher = await loadHasher();

export async function copyObject(req: CopyObjectRequest, scratch: Scratch, cancel: Cancellation): Promise<CopyObjectResult> {
  const from = storeFor(req.from);
  const to = storeFor(req.to);
  const where = `${from.location}/${req.key}`;
  let read;
  try {
    read = await readPackIndex(from, req.key, req.size, hasher);
  } catch (error) {
    if (error instanceof ConflictError && error.code === 'PACK_CHANGED') throw changed(where, req.size);
    if (error instanceof CorruptDataError && error.code === 'PACK_TRAILER') throw damaged(where, `has a damaged or missing trailer (${error.message})`);
    throw error;
  }
  const { index, entriesOffset, trailer } = read;
  const entries = index.entries();

  const reader = await from.openReader(req.key, { offset: 0, length: entriesOffset });
  let writer: ObjectWriter | undefined;
  try {
    const header = scratch.buffer('header', PACK_HEADER_SIZE);
    if ((await readFully(reader, header)) !== PACK_HEADER_SIZE) throw changed(where, req.size);
    checkPackHeader(header, hasher, where);
    writer = await to.createWriter(req.key);
    await writer.write([header]);
    for (const entry of entries) {
      cancel.check();
      const blob = scratch.buffer('blob', entry.length);
      if ((await readFully(reader, blob)) !== entry.length) throw changed(where, req.size);
      decodeBlob(blob, entry, hasher, (n) => scratch.buffer('raw', n), `blob at ${entry.offset} of pack ${where}`);
      await writer.write([blob]);
    }
    await writer.write([trailer]);
    const staged = await writer.finish();
    writer = undefined;
    return { op: 'copyObject', bytesCopied: staged.size, verified: true, staged };
  } finally {
    await reader.close();
    await writer?.abort();
  }
}

function damaged(where: string, why: string): CorruptDataError {
  return new CorruptDataError('PACK_CORRUPT', `pack ${where} ${why}; nothing of it was copied. Copy only intact job roots (run verify on the source)`, { details: { where } });
}

function changed(where: string, size: number): ConflictError {
  return new ConflictError('SOURCE_CHANGED', `${where} is not the ${size} bytes the source checkpoint records (it changed or was truncated while being copied); stop writers and gc on the source job, verify it, and copy again`, {
    details: { where },
  });
}
