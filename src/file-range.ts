/**
 * Positioned reads and writes that finish the job: the OS may return fewer
 * bytes than asked (signals, pipes, network filesystems), and a short chunk
 * must never pass for a whole one.
 */
import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** Reads up to `into.byteLength` bytes at `position`; returns how many were read (fewer only at end of file). */
export async function readAt(fh: FileHandle, into: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await fh.read(into, done, into.byteLength - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** readAt on the calling thread: blocks it until the bytes are in (see workers/write-pack.ts for when that is worth it). */
export function readAtSync(fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.byteLength) {
    const bytesRead = readSync(fd, into, done, into.byteLength - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Writes all of `data` at `position` (or at the current offset when `position` is null). */
export async function writeAt(fh: FileHandle, data: Uint8Array, position: number | null): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, data.byteLength - done, position === null ? null : position + done);
    done += bytesWritten;
  }
}
