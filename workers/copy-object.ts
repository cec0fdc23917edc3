/**
 * Copy side of a worker: read one object from a source job root, verify it
 * when it is a blob, and write it to the destination job root (no overwrite).
 * The bytes go straight from one store to the other inside this thread.
 */
import { parseBlobKey, verifyBlob } from '../src/blob.js';
import { loadHasher } from '../src/content-key.js';
import { ConflictError } from '../src/errors.js';
import type { CopyObjectRequest, CopyObjectResult } from '../src/protocol.js';
import type { Scratch } from './scratch.js';
import { storeFor } from './stores.js';

const hasher = await loadHasher();

export async function copyObject(req: CopyObjectRequest, scratch: Scratch): Promise<CopyObjectResult> {
  const from = storeFor(req.from);
  const to = storeFor(req.to);
  const where = `${from.location}/${req.key}`;
  const data = await from.get(req.key);
  if (data.byteLength !== req.size) {
    throw new ConflictError('SOURCE_CHANGED', `${where} changed while being copied (${req.size} bytes listed, ${data.byteLength} read); stop writers and gc on the source job and copy again`, {
      details: { where },
    });
  }
  const blob = parseBlobKey(req.key);
  if (blob !== undefined) verifyBlob(data, blob, hasher, where, scratch.buffer('raw', blob.rawLength));
  const put = await to.put(req.key, [data], { ifAbsent: true, durable: req.durable, syncName: false });
  if (put === 'exists') {
    const there = await to.stat(req.key);
    // Blobs are named by content: the same name and size is the same blob. Anything else is someone else's object.
    if (there?.size !== data.byteLength) {
      throw new ConflictError('COPY_CONFLICT', `${to.location}/${req.key} already exists with other content (${there?.size ?? 0} bytes, not ${data.byteLength}); copy into an empty or matching job root`, {
        details: { where: `${to.location}/${req.key}` },
      });
    }
    return { op: 'copyObject', bytesCopied: 0, verified: blob !== undefined };
  }
  return { op: 'copyObject', bytesCopied: data.byteLength, verified: blob !== undefined };
}
