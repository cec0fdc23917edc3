/**
 * The cache actor: a bad entry in a restore's local cache — a flipped byte
 * (header or payload), a FIFO where a blob was, or a blob grown to 100 GiB.
 * The restore must notice the flipped byte, drop and refetch the entry; it
 * must neither block on the FIFO nor read the grown file: both are misses.
 */
import { execFileSync } from 'node:child_process';
import { readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { blobEntryPath } from '../../src/cache.js';
import { loadCheckpoint, loadManifest } from '../../src/checkpoint.js';
import type { StressRun } from '../run.js';

/** Corrupts an entry of cache `dir` that the restore of checkpoint `id`, task `task` will read; false when the cache holds none. */
export async function corruptCacheEntry(run: StressRun, dir: string, id: number, task: string): Promise<boolean> {
  // A random entry of a cache holding every checkpoint's blobs would almost never be touched by the coming restore.
  const metadata = await loadCheckpoint(run.clean, id, run.hasher);
  const entry = metadata.tasks.find((t) => t.task === task);
  const chunks = entry === undefined ? [] : (await loadManifest(run.clean, entry, run.hasher)).manifest.files.flatMap((f) => f.chunks);
  const blobs: string[] = [];
  for (const c of chunks) {
    const path = blobEntryPath({ dir: resolve(dir) }, c.key, c.rawLength);
    if ((await stat(path).catch(() => undefined))?.isFile() === true) blobs.push(path);
  }
  if (blobs.length === 0) return false;
  const victim = run.pick(blobs);
  const kind = run.pick(['flip', 'flip', 'fifo', 'grown'] as const);
  if (kind === 'fifo') {
    await rm(victim);
    execFileSync('mkfifo', [victim]);
    await run.log('cache-corrupted', { entry: victim, kind });
  } else if (kind === 'grown') {
    await truncate(victim, 100 * 1024 ** 3);
    await run.log('cache-corrupted', { entry: victim, kind });
  } else {
    const data = await readFile(victim);
    if (data.byteLength === 0) return false;
    const at = Math.floor(run.random() * data.byteLength);
    data[at] = (data[at] ?? 0) ^ 0xff;
    await writeFile(victim, data);
    await run.log('cache-corrupted', { entry: victim, kind, offset: at });
  }
  run.counters.cacheCorruptions++;
  return true;
}
