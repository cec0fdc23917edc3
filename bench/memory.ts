/**
 * `npm run bench:memory`: peak RSS of a full snapshot and of restores (no
 * cache, cache being filled, warm cache) per state size, to check that memory
 * does not grow with the state: every process's peak against the smallest
 * size's, each measured as its own process by GNU time.
 *
 *   npm run bench:memory [-- --sizes 1GiB,8GiB] [--dir .bench] [--threads n] [--json file]
 *
 * Datasets are the end-to-end bench's (uncompressed blocks, seed 1), generated
 * once into <dir>/datasets; stores and restored copies are deleted after each
 * size, so the disk needs about three times the largest size free.
 */
import { rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseScriptArgs } from '../scripts/usage.js';
import type { RestoreResult, SnapshotResult } from '../src/index.js';
import { formatBytes, formatDuration, parseSize } from '../src/units.js';
import { ensureDataset, listState } from './datasets.js';
import { measure, settle } from './measure.js';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'chunkpoint');
/** The issue's memory targets: a ceiling, and at most this growth from the smallest to the largest state. */
const PEAK_RSS_LIMIT = 150e6;
const FLAT_WITHIN = 0.1;

const USAGE = `
npm run bench:memory [-- options]: peak RSS of snapshot and restore per state size

  --sizes <list>   comma-separated state sizes (default 1GiB,8GiB; each is generated once, minutes per GiB)
  --dir <dir>      work directory; datasets are cached in <dir>/datasets (default .bench)
  --threads <n>    worker threads (default: available parallelism)
  --json <file>    also write the results as JSON
`;
const { values } = parseScriptArgs(USAGE, {
  options: { sizes: { type: 'string', default: '1GiB,8GiB' }, dir: { type: 'string', default: '.bench' }, threads: { type: 'string' }, json: { type: 'string' } },
  strict: true,
});
function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}`);
  process.exit(2);
}
const sizes = values.sizes.split(',').map((s) => parseSize(s.trim(), '--sizes'));
if (sizes.length < 2) usageError(`--sizes '${values.sizes}' needs at least two sizes to compare`);
sizes.sort((a, b) => a - b);
const threads = values.threads === undefined ? availableParallelism() : Number(values.threads);
if (!Number.isInteger(threads) || threads < 1) usageError(`--threads '${values.threads}' is not a positive whole number`);
const work = resolve(values.dir);
const run = join(work, 'memory-run');

const PHASES = ['snapshot', 'restore, no cache', 'restore, cold cache (fills it)', 'restore, warm cache'] as const;
type PhaseName = (typeof PHASES)[number];

interface Row {
  size: number;
  stateBytes: number;
  chunks: number;
  phases: Record<PhaseName, { wallMs: number; peakRssBytes: number | undefined }>;
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function chunkpoint<T>(args: string[]): Promise<{ wallMs: number; peakRssBytes: number | undefined; result: T }> {
  const m = await measure(process.execPath, [CLI, ...args, '--threads', String(threads), '--json']);
  return { wallMs: m.wallMs, peakRssBytes: m.maxRssBytes, result: JSON.parse(m.stdout) as T };
}

const rows: Row[] = [];
for (const size of sizes) {
  const ds = await ensureDataset(work, { bytes: size, seed: 1, compression: 'none' }, log);
  const stateBytes = (await listState(ds.stateDir)).reduce((sum, f) => sum + f.size, 0);
  await rm(run, { recursive: true, force: true });
  const store = join(run, 'store');
  const cache = join(run, 'cache');
  log(`${formatBytes(size)} of records: ${formatBytes(stateBytes)} of SSTs`);
  const phases = {} as Row['phases'];
  const note = (name: PhaseName, m: { wallMs: number; peakRssBytes: number | undefined }): void => {
    phases[name] = { wallMs: m.wallMs, peakRssBytes: m.peakRssBytes };
    log(`  ${name}: ${formatDuration(m.wallMs)}, peak RSS ${m.peakRssBytes === undefined ? 'unknown (no GNU time)' : formatBytes(m.peakRssBytes)}`);
  };

  await settle('warm', [ds.stateDir]);
  const snap = await chunkpoint<SnapshotResult>(['snapshot', ds.stateDir, '--store', store, '--job', 'memory']);
  note('snapshot', snap);
  const restore = async (name: PhaseName, target: string, withCache: boolean): Promise<RestoreResult> => {
    await rm(target, { recursive: true, force: true });
    await settle('warm', [store, ...(withCache ? [cache] : [])]);
    const r = await chunkpoint<RestoreResult>(['restore', '--store', store, '--job', 'memory', '--checkpoint', 'latest', target, ...(withCache ? ['--cache', cache] : [])]);
    note(name, r);
    if (r.result.bytes !== stateBytes) throw new Error(`${name} restored ${r.result.bytes} bytes of ${stateBytes}`);
    await rm(target, { recursive: true, force: true });
    return r.result;
  };
  const restored = await restore('restore, no cache', join(run, 'restored'), false);
  await restore('restore, cold cache (fills it)', join(run, 'restored'), true);
  await restore('restore, warm cache', join(run, 'restored'), true);
  rows.push({ size, stateBytes, chunks: restored.chunks, phases });
  await rm(run, { recursive: true, force: true });
}

const first = rows[0];
if (first === undefined) throw new Error('no size measured');
const mb = (bytes: number | undefined): string => (bytes === undefined ? '-' : `${(bytes / 1048576).toFixed(1)} MiB`);
log('');
log(`peak RSS per process (${threads} worker threads), growth against ${formatBytes(first.size)}`);
log(`${'phase'.padEnd(32)}${rows.map((r) => formatBytes(r.size).padStart(12)).join('')}  growth`);
const verdicts: { phase: PhaseName; growth: number | undefined; peak: number | undefined }[] = [];
for (const name of PHASES) {
  const peaks = rows.map((r) => r.phases[name].peakRssBytes);
  const base = peaks[0];
  const last = peaks.at(-1);
  const growth = base === undefined || last === undefined ? undefined : last / base - 1;
  const known = peaks.filter((p): p is number => p !== undefined);
  const peak = known.length === peaks.length ? Math.max(...known) : undefined;
  verdicts.push({ phase: name, growth, peak });
  log(`${name.padEnd(32)}${peaks.map((p) => mb(p).padStart(12)).join('')}  ${growth === undefined ? '-' : `${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%`}`);
}
const worstGrowth = Math.max(...verdicts.map((v) => v.growth ?? Number.NaN));
const worstPeak = Math.max(...verdicts.map((v) => v.peak ?? Number.NaN));
log('');
log(`peak RSS <= ${PEAK_RSS_LIMIT / 1e6} MB: ${Number.isNaN(worstPeak) ? 'not measured' : `${(worstPeak / 1e6).toFixed(1)} MB, ${worstPeak <= PEAK_RSS_LIMIT ? 'pass' : 'MISS'}`}`);
log(`flat within ${FLAT_WITHIN * 100}% from ${formatBytes(first.size)} to ${formatBytes(rows.at(-1)?.size ?? 0)}: ${Number.isNaN(worstGrowth) ? 'not measured' : `worst growth ${(worstGrowth * 100).toFixed(1)}%, ${worstGrowth <= FLAT_WITHIN ? 'pass' : 'MISS'}`}`);
if (values.json !== undefined) {
  await writeFile(resolve(values.json), `${JSON.stringify({ format: 'chunkpoint-memory-1', threads, rows, verdicts, date: new Date().toISOString() }, null, 2)}\n`);
}
