/**
 * `npm run bench:tuning`: full snapshots of one cached dataset under each
 * setting of chunk size, worker threads and requests per thread (chunks a
 * thread works on at once; the coordinator keeps threads x (tasks + 1) in
 * flight), with the state read into the page cache (or the cache dropped)
 * before each, to choose the defaults.
 *
 *   npm run bench:tuning [-- --size 256MiB] [--dir .bench] [--repeat 2] [--json file]
 */
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseScriptArgs } from '../scripts/usage.js';
import { loadHasher } from '../src/format/content-key.js';
import { WorkerPool } from '../src/pool.js';
import { snapshotTask } from '../src/snapshot/index.js';
import { jobRootSpec, openStore } from '../src/store/open.js';
import { formatBytes, parseSize } from '../src/units.js';
import { ensureDataset, listState } from './datasets.js';
import { settle, type PageCacheMode } from './measure.js';

const USAGE = `
npm run bench:tuning [-- options]: full snapshots of one cached dataset per chunk size x worker threads x requests per thread

  --size <size>   dataset size (default 256MiB)
  --dir <dir>     work directory (default .bench)
  --repeat <n>    runs per setting (default 2)
  --page-cache <mode>  warm: the state is read into memory before each run; cold: the page cache is dropped (root only) (default warm)
  --json <file>   also write the results as JSON
`;
const { values } = parseScriptArgs(USAGE, {
  options: { size: { type: 'string', default: '256MiB' }, dir: { type: 'string', default: '.bench' }, repeat: { type: 'string', default: '2' }, 'page-cache': { type: 'string', default: 'warm' }, json: { type: 'string' } },
  strict: true,
});
const work = resolve(values.dir);
const repeat = Number(values.repeat);
const mode: PageCacheMode = values['page-cache'] === 'cold' ? 'cold' : 'warm';
if (values['page-cache'] !== mode) {
  process.stderr.write(`--page-cache '${mode}' must be warm or cold\n${USAGE}`);
  process.exit(2);
}
const MiB = 1024 * 1024;

interface Setting {
  chunkSize: number;
  threads: number;
  /** Chunks each thread works on at once. */
  perThread: number;
  durable: boolean;
}

const settings: Setting[] = [
  { chunkSize: 256 * 1024, threads: 2, perThread: 2, durable: false },
  { chunkSize: MiB, threads: 2, perThread: 2, durable: false },
  { chunkSize: 4 * MiB, threads: 2, perThread: 2, durable: false },
  { chunkSize: MiB, threads: 1, perThread: 2, durable: false },
  { chunkSize: MiB, threads: 2, perThread: 1, durable: false },
  { chunkSize: MiB, threads: 2, perThread: 4, durable: false },
  { chunkSize: 256 * 1024, threads: 2, perThread: 2, durable: true },
  { chunkSize: MiB, threads: 2, perThread: 2, durable: true },
  { chunkSize: 4 * MiB, threads: 2, perThread: 2, durable: true },
];

const dataset = await ensureDataset(work, { bytes: parseSize(values.size, '--size'), seed: 1, compression: 'none' }, (line) => process.stdout.write(`${line}\n`));
const bytes = (await listState(dataset.stateDir)).reduce((sum, f) => sum + f.size, 0);
const hasher = await loadHasher();
const storeDir = join(work, 'tuning-store');
const results: (Setting & { bestMs: number; runsMs: number[]; mbps: number; pageCache: string })[] = [];
process.stdout.write(`tuning on ${formatBytes(bytes)} of RocksDB state (uncompressed blocks), best of ${repeat}\n`);
process.stdout.write(`chunk     threads  per thread  fsync  MB/s   runs (ms)\n`);
for (const s of settings) {
  const pool = new WorkerPool({ threads: s.threads, requestsPerThread: s.perThread });
  const runsMs: number[] = [];
  let pageCache = 'dropped';
  try {
    for (let i = 0; i < repeat; i++) {
      await rm(storeDir, { recursive: true, force: true });
      if ((await settle(mode, [dataset.stateDir])) === 'warm') pageCache = 'warm';
      const store = openStore(jobRootSpec(storeDir, 'tuning'));
      const started = performance.now();
      await snapshotTask({ pool, hasher }, dataset.stateDir, { store, jobId: 'tuning', task: 'main' }, { chunkSize: s.chunkSize, durable: s.durable });
      runsMs.push(performance.now() - started);
    }
  } finally {
    await pool.close();
  }
  const bestMs = Math.min(...runsMs);
  const mbps = bytes / 1e6 / (bestMs / 1000);
  results.push({ ...s, bestMs, runsMs, mbps, pageCache });
  process.stdout.write(
    `${formatBytes(s.chunkSize).padEnd(8)}  ${String(s.threads).padStart(7)}  ${String(s.perThread).padStart(10)}  ${(s.durable ? 'yes' : 'no').padStart(5)}  ${mbps.toFixed(0).padStart(4)}   ${runsMs.map((ms) => ms.toFixed(0)).join(', ')}\n`,
  );
}
await rm(storeDir, { recursive: true, force: true });
if (values.json !== undefined) await writeFile(resolve(values.json), `${JSON.stringify({ format: 'chunkpoint-tuning-1', bytes, results }, null, 2)}\n`);
