/**
 * The yardstick for incremental snapshots, computed independently of
 * chunkpoint (SHA-1, not its content keys): what a store that deduplicates
 * fixed-size chunks would have to add to hold the changed state, given the
 * chunks of the state it already holds.
 */
import { createHash } from 'node:crypto';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export async function fixedChunkDigests(dir: string, chunkSize: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const buf = Buffer.allocUnsafe(chunkSize);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const fh = await open(join(dir, entry.name));
    try {
      for (let offset = 0; ; offset += chunkSize) {
        const { bytesRead } = await fh.read(buf, 0, chunkSize, offset);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        out.set(`${createHash('sha1').update(chunk).digest('hex')}-${bytesRead}`, bytesRead);
        if (bytesRead < chunkSize) break;
      }
    } finally {
      await fh.close();
    }
  }
  return out;
}

/** Distinct chunks of `after` that `before` does not have, and their raw bytes. */
export function newChunks(before: Map<string, number>, after: Map<string, number>): { chunks: number; bytes: number } {
  let chunks = 0;
  let bytes = 0;
  for (const [key, length] of after) {
    if (before.has(key)) continue;
    chunks++;
    bytes += length;
  }
  return { chunks, bytes };
}
