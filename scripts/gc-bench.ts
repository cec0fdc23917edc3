/**
 * Garbage collection at scale: builds a job of N incremental checkpoints of a
 * real RocksDB state (compaction-style changes between them), then times
 * `chunkpoint gc` in fresh processes (so peak RSS is gc's alone), first with
 * everything referenced, then with retention removing all but the newest 2.
 *
 *   npm run build && node dist/scripts/gc-bench.js --state <rocksdb dir> --store <dir> [--checkpoints 10] [--size 1GiB]
 *
 * A missing --state is generated at --size (slow: ~7 min per GiB on a 2-core VM);
 * an existing one is changed in place.
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseScriptArgs } from './usage.js';
import { Chunkpoint } from '../src/index.js';
import { formatBytes, formatDuration, parseSize } from '../src/units.js';
import { generateState, mutateState, recordsFor } from '../sim/rocks-state.js';

const run = promisify(execFile);
const USAGE = `
node dist/scripts/gc-bench.js --state <rocksdb dir> --store <dir> [options]: gc time and memory on a job of many checkpoints

  --state <dir>        RocksDB state to use (generated there when absent)
  --store <dir>        store directory
  --checkpoints <n>    incremental checkpoints to make (default 10)
  --size <size>        size of generated state (default 1GiB)
  --job <id>           job id (default gc-bench)
`;
const { values } = parseScriptArgs(USAGE, {
  options: { state: { type: 'string' }, store: { type: 'string' }, checkpoints: { type: 'string', default: '10' }, size: { type: 'string', default: '1GiB' }, job: { type: 'string', default: 'gc-bench' } },
  strict: true,
});
if (values.state === undefined || values.store === undefined) throw new Error('usage: gc-bench --state <rocksdb dir> --store <dir> [--checkpoints 10] [--size 1GiB]');
const stateDir = resolve(values.state);
const store = resolve(values.store);
const job = values.job;
const count = Number(values.checkpoints);
const cli = join(import.meta.dirname, '..', '..', 'bin', 'chunkpoint');

let records: number;
if ((await stat(stateDir).catch(() => undefined)) === undefined) {
  process.stdout.write(`generating ${values.size} of RocksDB state in ${stateDir}\n`);
  records = (await generateState(stateDir, parseSize(values.size, '--size'), { seed: 1 })).records;
} else {
  records = recordsFor(parseSize(values.size, '--size'));
}

async function gc(args: string[]): Promise<{ result: Record<string, unknown>; maxRssKiB: number; wallMs: number }> {
  const t0 = performance.now();
  const { stdout, stderr } = await run('/usr/bin/time', ['-f', '%M', process.execPath, cli, 'gc', '--store', store, '--job', job, '--json', ...args], { maxBuffer: 1 << 24 });
  const lines = stderr.trim().split('\n');
  return { result: JSON.parse(stdout) as Record<string, unknown>, maxRssKiB: Number(lines.at(-1)), wallMs: performance.now() - t0 };
}

const cp = new Chunkpoint();
try {
  for (let i = 1; i <= count; i++) {
    if (i > 1) {
      // Small appends and a rewritten range keep the state near its size across checkpoints.
      records = (await mutateState(stateDir, { seed: 1000 + i, records, appendFraction: 0.01, rewriteFraction: 0.03 })).records;
    }
    const snap = await cp.snapshot(stateDir, { store, job }, { retain: 1000 });
    process.stdout.write(`${snap.checkpoint}: ${formatBytes(snap.bytes)} state, ${formatBytes(snap.bytesRead)} read, ${formatBytes(snap.bytesWritten)} written in ${formatDuration(snap.durationMs)}\n`);
  }
} finally {
  await cp.close();
}

const list = JSON.parse((await run(process.execPath, [cli, 'list', '--store', store, '--job', job, '--json'])).stdout) as { checkpoints: { bytes: number; chunks: number }[] };
const chunks = list.checkpoints.reduce((n, c) => n + c.chunks, 0);
process.stdout.write(`job: ${list.checkpoints.length} checkpoints, ${formatBytes(list.checkpoints.reduce((n, c) => n + c.bytes, 0))} of state in all, ${chunks} chunk references\n`);
const all = await gc([]);
process.stdout.write(`gc (all referenced): ${formatDuration(all.wallMs)} wall incl. process start, ${all.result['durationMs'] as number} ms in gc, peak RSS ${formatBytes(all.maxRssKiB * 1024)}; removed ${all.result['blobsRemoved'] as number} blobs\n`);
const retained = await gc(['--retain', '2', '--grace', '0']);
process.stdout.write(
  `gc --retain 2 --grace 0: ${formatDuration(retained.wallMs)} wall, ${retained.result['durationMs'] as number} ms in gc, peak RSS ${formatBytes(retained.maxRssKiB * 1024)}; removed ${(retained.result['checkpointsRemoved'] as string[]).length} checkpoints, ${retained.result['blobsRemoved'] as number} blobs, ${formatBytes(retained.result['bytesFreed'] as number)}\n`,
);
