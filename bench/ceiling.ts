/**
 * The compute ceiling: how fast the snapshot writer's CPU work (content key +
 * LZ4 + blob header, see ceiling-worker.ts) goes on the same number of worker
 * threads, with the same chunks and the same number of requests in flight as the
 * coordinator keeps, when the bytes are already in memory. No snapshot can be
 * faster than this on the machine; the gap to it is I/O and coordination.
 *
 * With `reads`, each chunk is first read from its file (warm page cache) in
 * the worker, as the snapshot writer does: the copy out of the page cache is
 * CPU on the same cores, and no snapshot of a state it must read can be
 * faster than that figure either. With `spill` too, every blob is then
 * written into the page cache (ceiling-worker.ts): the same bound for a
 * snapshot that also writes its packs through the kernel.
 */
import { DEFAULT_REQUESTS_PER_THREAD } from '../src/pool.js';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { forEachBounded } from '../src/bounded.js';
import type { CeilingRequest } from './ceiling-worker.js';

export interface CeilingResult {
  /** Raw bytes encoded per round. */
  bytes: number;
  /** Sum of the blob sizes: what a snapshot would store. */
  storedBytes: number;
  /** The fastest round (the ceiling is a best case). */
  bestMs: number;
  roundsMs: number[];
  threads: number;
  queueDepth: number;
}

export interface CeilingOptions {
  threads: number;
  chunkSize: number;
  /** Requests in flight (default: what the snapshot coordinator keeps, threads x (requests per thread + 1)). */
  queueDepth?: number;
  rounds?: number;
  /** Caps the bytes loaded (or read), so a huge state does not need as much memory (default 1 GiB). */
  maxBytes?: number;
  /** Read every chunk from its file in the worker instead of encoding it from memory. */
  reads?: boolean;
  /** With `reads`: also write every blob into the page cache, in files under this directory (which must exist). */
  spill?: string;
}

/** Loads the directory's files into shared memory (or, with `reads`, lists them), then times rounds over all their chunks. */
export async function computeCeiling(stateDir: string, options: CeilingOptions): Promise<CeilingResult> {
  const maxBytes = options.maxBytes ?? 2 ** 30;
  const queueDepth = options.queueDepth ?? options.threads * (DEFAULT_REQUESTS_PER_THREAD + 1);
  const requests: CeilingRequest[] = [];
  let loaded = 0;
  for (const name of (await readdir(stateDir)).sort()) {
    if (loaded >= maxBytes) break;
    const fh = await open(join(stateDir, name));
    try {
      const size = Math.min((await fh.stat()).size, maxBytes - loaded);
      if (size === 0) continue;
      loaded += size;
      if (options.reads === true) {
        const file = join(stateDir, name);
        for (let offset = 0; offset < size; offset += options.chunkSize) {
          requests.push({ file, offset, length: Math.min(options.chunkSize, size - offset), ...(options.spill === undefined ? {} : { spill: options.spill }) });
        }
        continue;
      }
      const buffer = new SharedArrayBuffer(size);
      await fh.read(new Uint8Array(buffer), 0, size, 0);
      for (let offset = 0; offset < size; offset += options.chunkSize) requests.push({ buffer, offset, length: Math.min(options.chunkSize, size - offset) });
    } finally {
      await fh.close();
    }
  }

  const pool = new Piscina({
    filename: new URL('./ceiling-entry.cjs', import.meta.url).href,
    minThreads: options.threads,
    maxThreads: options.threads,
    concurrentTasksPerWorker: 1,
  });
  try {
    // Warm-up: every thread compiles its wasm and JIT-compiles the path before timing starts.
    await Promise.all(requests.slice(0, options.threads * 4).map((r) => pool.run(r) as Promise<number>));
    const roundsMs: number[] = [];
    let storedBytes = 0;
    for (let round = 0; round < (options.rounds ?? 3); round++) {
      storedBytes = 0;
      const started = performance.now();
      await forEachBounded(requests, queueDepth, async (t) => {
        // Await first: `storedBytes += await ...` would read the sum before the wait and lose concurrent updates.
        const stored = (await pool.run(t)) as number;
        storedBytes += stored;
      });
      roundsMs.push(performance.now() - started);
    }
    return { bytes: loaded, storedBytes, bestMs: Math.min(...roundsMs), roundsMs, threads: options.threads, queueDepth };
  } finally {
    await pool.destroy();
  }
}
