/**
 * Restore in place: hash a byte range of a file already in the target and
 * say whether it is the chunk the checkpoint expects there.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { loadHasher } from '../src/format/content-key.js';
import { errnoOf, targetIoError } from '../src/errors.js';
import type { VerifyRangeRequest, VerifyRangeResult } from '../src/protocol.js';
import type { Cancellation } from './cancellation.js';
import type { Scratch } from './scratch.js';
import { readAt } from '../src/file-range.js';

const hasher = await loadHasher();

export async function verifyRange(req: VerifyRangeRequest, scratch: Scratch, cancel: Cancellation): Promise<VerifyRangeResult> {
  cancel.check();
  let fh;
  try {
    fh = await open(req.file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    // Missing, or replaced by a link: either way it is not the expected chunk.
    if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ELOOP') return { op: 'verifyRange', match: false };
    throw targetIoError('reading existing target file', req.file, error);
  }
  try {
    // A FIFO or device where a file was expected is not the chunk (and must not block the restore).
    if (!(await fh.stat()).isFile()) return { op: 'verifyRange', match: false };
    const buf = scratch.buffer('raw', req.length);
    const done = await readAt(fh, buf, req.offset);
    return { op: 'verifyRange', match: done === req.length && hasher.contentKey(buf) === req.key };
  } catch (error) {
    throw targetIoError('reading existing target file', `${req.file} (${req.relPath})`, error);
  } finally {
    await fh.close();
  }
}
