/**
 * The harness's own record of a state directory: sha256 of every file by
 * relative path. Independent of chunkpoint's content keys (xxhash), so a bug
 * in those cannot hide a wrong restore.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StateDigest } from './messages.js';

export async function stateDigest(dir: string): Promise<{ digest: StateDigest; bytes: number }> {
  const digest: StateDigest = {};
  let bytes = 0;
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(rel === '' ? dir : join(dir, rel), { withFileTypes: true })) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(relPath);
      else {
        const data = await readFile(join(dir, relPath));
        bytes += data.byteLength;
        digest[relPath] = createHash('sha256').update(data).digest('hex');
      }
    }
  };
  await walk('');
  return { digest, bytes };
}

/** The differences between an expected and an actual digest, for a violation report (empty when equal). */
export function digestDiff(expected: StateDigest, actual: StateDigest): string[] {
  const out: string[] = [];
  for (const [path, hash] of Object.entries(expected)) {
    const got = actual[path];
    if (got === undefined) out.push(`missing ${path}`);
    else if (got !== hash) out.push(`different ${path}`);
  }
  for (const path of Object.keys(actual)) if (expected[path] === undefined) out.push(`unexpected ${path}`);
  return out;
}
