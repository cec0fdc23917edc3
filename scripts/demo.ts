/**
 * `npm run demo`: the main job end to end on the local-directory store.
 * Generates a real RocksDB state, snapshots it, changes it as compaction
 * does, snapshots incrementally, moves the job root elsewhere, restores the
 * latest checkpoint from there and checks it byte for byte.
 *
 *   npm run demo [-- --size 256MiB] [--dir .demo] [--threads N]
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseScriptArgs } from './usage.js';
import { Chunkpoint, type RestoreResult, type SnapshotResult } from '../src/index.js';
import { formatBytes, formatDuration, parseSize } from '../src/units.js';
import { generateState, mutateState } from '../sim/rocks-state.js';

async function digestTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(rel === '' ? dir : join(dir, rel), { withFileTypes: true })) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        await walk(relPath);
        continue;
      }
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(join(dir, relPath))) hash.update(chunk as Buffer);
      out.set(relPath, hash.digest('hex'));
    }
  };
  await walk('');
  return out;
}

function step(text: string): void {
  process.stdout.write(`\n== ${text}\n`);
}

function snapshotLine(label: string, r: SnapshotResult): string[] {
  return [
    label,
    formatDuration(r.durationMs),
    `${r.throughputMBps.toFixed(0)} MB/s`,
    formatBytes(r.bytesRead),
    formatBytes(r.bytesWritten),
    `${r.filesReused}/${r.files}`,
    `${r.chunksNew} / ${r.chunksDeduped}`,
    r.compressionRatio.toFixed(2),
  ];
}

function restoreLine(label: string, r: RestoreResult): string[] {
  return [label, formatDuration(r.durationMs), `${r.throughputMBps.toFixed(0)} MB/s`, formatBytes(r.bytesFromRemote), formatBytes(r.bytes), '-', `${r.chunks} verified`, '-'];
}

function printTable(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows) process.stdout.write(`${row.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')}\n`);
}

const USAGE = `
npm run demo [-- options]: generate real RocksDB state, snapshot it, change it, snapshot incrementally, move the job root, restore, verify

  --size <size>    state size (default 256MiB)
  --dir <dir>      work directory, replaced on every run (default .demo)
  --threads <n>    worker threads (default: available parallelism)
`;

async function main(): Promise<void> {
  const { values } = parseScriptArgs(USAGE, {
    options: { size: { type: 'string', default: '256MiB' }, dir: { type: 'string', default: '.demo' }, threads: { type: 'string' } },
    strict: true,
  });
  const size = parseSize(values.size, '--size');
  const work = resolve(values.dir);
  const stateDir = join(work, 'state');
  const store = join(work, 'store');
  const relocated = join(work, 'relocated', 'orders-moved');
  const target = join(work, 'restored');
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'relocated'), { recursive: true });

  step(`generating ${formatBytes(size)} of real RocksDB state in ${stateDir}`);
  let t = performance.now();
  const { records } = await generateState(stateDir, size, { seed: 42 });
  const ssts = (await readdir(stateDir)).filter((n) => n.endsWith('.sst')).length;
  process.stdout.write(`${records} records, ${ssts} SST files, ${formatDuration(performance.now() - t)}\n`);

  const cp = new Chunkpoint(values.threads === undefined ? {} : { threads: Number(values.threads) });
  try {
    step(`full snapshot into ${store} (job 'orders', ${cp.threads} worker threads)`);
    const full = await cp.snapshot(stateDir, { store, job: 'orders' });
    process.stdout.write(`${full.checkpoint}: ${formatBytes(full.bytes)} in ${formatDuration(full.durationMs)}\n`);

    step('changing the state: 10% new records (new SSTs), 5% overwritten and compacted (rewritten SSTs)');
    t = performance.now();
    await mutateState(stateDir, { seed: 43, records, appendFraction: 0.1, rewriteFraction: 0.05 });
    process.stdout.write(`done in ${formatDuration(performance.now() - t)}\n`);

    step('incremental snapshot');
    const incremental = await cp.snapshot(stateDir, { store, job: 'orders' });
    process.stdout.write(`${incremental.checkpoint}: reused ${incremental.filesReused} of ${incremental.files} files without reading them\n`);

    step(`moving the whole job root to ${relocated}`);
    await rename(join(store, 'orders'), relocated);

    step(`restoring ${incremental.checkpoint} from the moved job root into ${target}`);
    const restored = await cp.restore({ path: join(relocated, incremental.checkpoint) }, target);

    step('verifying the restored directory byte for byte (SHA-256 of every file)');
    const [expected, actual] = await Promise.all([digestTree(stateDir), digestTree(target)]);
    const mismatched = [...expected].filter(([name, digest]) => actual.get(name) !== digest).map(([name]) => name);
    const extra = [...actual.keys()].filter((name) => !expected.has(name));
    if (mismatched.length > 0 || extra.length > 0) {
      throw new Error(`restored state differs: mismatched ${mismatched.join(', ') || 'none'}; unexpected ${extra.join(', ') || 'none'}`);
    }
    process.stdout.write(`identical: ${expected.size} files\n`);

    step('summary');
    printTable([
      ['step', 'time', 'state rate', 'read', 'written', 'files reused', 'chunks new / dedup', 'lz4 ratio'],
      snapshotLine('full snapshot', full),
      snapshotLine('incremental snapshot', incremental),
      restoreLine('restore (relocated)', restored),
    ]);
    process.stdout.write(`\nstate rate = logical state bytes / wall time; restore 'read' = stored bytes fetched from the store.\nEverything is under ${work} (deleted by the next run).\n`);
  } finally {
    await cp.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
