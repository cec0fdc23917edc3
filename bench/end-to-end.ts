/**
 * `npm run bench`: chunkpoint end to end on real RocksDB state, against the
 * compute ceiling and the peers, in one run.
 *
 *   npm run bench [-- --size 1GiB] [--repeat 3] [--page-cache warm|cold] [--json file] [--skip-snappy] ...
 *
 * Every measured step is its own process (wall time as a user waits for it,
 * peak RSS from GNU time), with dirty pages flushed before it and its input
 * read into the page cache (warm, the default) or the page cache dropped
 * (cold, root only). Every round repeats the whole sequence on fresh stores
 * and the report keeps each phase's fastest round. Datasets are generated once
 * into <dir>/datasets and reused; everything else lives in <dir>/run and is
 * replaced by the next run. Method and latest results: docs/PERFORMANCE.md.
 */
import { execFile } from 'node:child_process';
import { rename, rm, mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseScriptArgs } from '../scripts/usage.js';
import { DEFAULT_CHUNK_SIZE, DEFAULT_PACK_SIZE, type RestoreResult, type SnapshotResult, type SnapshotStages } from '../src/index.js';
import { formatBytes, formatDuration, parseDuration, parseSize } from '../src/units.js';
import { SNAPPY_BLOCKS, mutateState } from '../sim/rocks-state.js';
import { DEFAULT_IO_CONCURRENCY, DEFAULT_REQUESTS_PER_THREAD } from '../src/pool.js';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { loadHasher } from '../src/format/content-key.js';
import { computeCeiling } from './ceiling.js';
import { ensureDataset, listState, workingCopy, type Dataset, type DatasetSpec, type StateFileInfo } from './datasets.js';
import { fixedChunkDigests, newChunks } from './fixed-chunks.js';
import { cpuTimes, measure, settle, stealShare, waitQuiet, type CacheState, type Measured, type PageCacheMode } from './measure.js';
import { BorgRepo, INSTALL_HINT, ResticRepo, borgExtractedDir, findPeers, resticRestoredDir, tarLz4Create, tarLz4Extract } from './peers.js';
import { compare, mbps, renderTable, renderTargets, type Comparison, type PeerIds, type Phase, type RowTargets, type Target } from './report.js';
import { missingS3Binaries, startS3Server, type S3Server } from '../scripts/s3-server.js';

const exec = promisify(execFile);
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'chunkpoint');
const SERVER_LIMIT = join(import.meta.dirname, 's3-server-limit.js');
const DISK_LIMIT = join(import.meta.dirname, 'disk-limit.js');
const EMBEDDED = join(import.meta.dirname, 'embedded.js');
/** The issue's targets. */
// Issue #17: full >= 2.5x borg and 85% of the ceiling; restore >= 3.5x borg extract, >= 2.5x from a warm cache.
const TARGET = { fullVsBorg: 2.5, fullVsTar: 2.2, fullVsCeiling: 0.85, incrementalVsBorg: 2, restoreVsBorg: 3.5, warmRestoreVsBorg: 2.5, peakRssBytes: 150e6, s3FullVsRestic: 1.5, s3RestoreVsRestic: 1.5, s3UnchangedVsRestic: 1, s3VsServer: 0.8, localRestoreMs: 300 };
/** S3 request budgets for 1 GiB of state (issue #15), counted by the server. */
const S3_BUDGET = { full: 60, unchanged: 15, restore: 60, gc: 10 };
/** The change between the full and the incremental snapshot, as the demo makes it. */
const CHANGE = { appendFraction: 0.1, rewriteFraction: 0.05 };

const USAGE = `
npm run bench [-- options]: chunkpoint end to end on real RocksDB state, against the compute ceiling, tar | lz4 -1 and borg

  --size <size>         logical state per dataset (default 1GiB)
  --dir <dir>           work directory; datasets are cached in <dir>/datasets (default .bench)
  --threads <n>         worker threads (default: available parallelism)
  --chunk-size <size>   chunk size (default ${DEFAULT_CHUNK_SIZE / 1048576} MiB)
  --seed <n>            dataset seed (default 1)
  --repeat <n>          rounds of every phase; the table shows each phase's fastest (default 3)
  --page-cache <mode>   warm: every phase's input is read into memory first, as the anchors measured;
                        cold: the page cache is dropped before every phase (root only), so reads hit the disk (default warm)
  --json <file>         also write every phase, round, ratio and condition as JSON
  --skip-snappy         only the uncompressed-blocks dataset
  --skip-s3             no S3 section (chunkpoint and restic against a local Ceph RGW; on by default when Ceph is installed)
  --quiet-load <x>      before every phase, wait until the 1-minute load average is under this (default 0.3)
  --quiet-wait <time>   ... but at most this long, then measure and mark the row BUSY (default 90s; 0 to never wait)
`;
const { values } = parseScriptArgs(USAGE, {
  options: {
    size: { type: 'string', default: '1GiB' },
    dir: { type: 'string', default: '.bench' },
    threads: { type: 'string' },
    'chunk-size': { type: 'string' },
    seed: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '3' },
    'page-cache': { type: 'string', default: 'warm' },
    json: { type: 'string' },
    'skip-snappy': { type: 'boolean', default: false },
    'skip-s3': { type: 'boolean', default: false },
    'quiet-load': { type: 'string', default: '0.3' },
    'quiet-wait': { type: 'string', default: '90s' },
  },
  strict: true,
});
function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}`);
  process.exit(2);
}
const size = parseSize(values.size, '--size');
const work = resolve(values.dir);
const run = join(work, 'run');
const threads = values.threads === undefined ? availableParallelism() : Number(values.threads);
if (!Number.isInteger(threads) || threads < 1) usageError(`--threads '${values.threads}' is not a positive whole number`);
const chunkSize = values['chunk-size'] === undefined ? DEFAULT_CHUNK_SIZE : parseSize(values['chunk-size'], '--chunk-size');
const seed = Number(values.seed);
if (!Number.isInteger(seed) || seed < 0) usageError(`--seed '${values.seed}' is not a whole number`);
const repeat = Number(values.repeat);
if (!Number.isInteger(repeat) || repeat < 1) usageError(`--repeat '${values.repeat}' is not a positive whole number`);
const quietLoad = Number(values['quiet-load']);
if (!(quietLoad > 0)) usageError(`--quiet-load '${values['quiet-load']}' is not a positive load average`);
const quietWaitMs = values['quiet-wait'] === '0' ? 0 : parseDuration(values['quiet-wait'], '--quiet-wait');
const pageCacheMode: PageCacheMode = values['page-cache'] === 'cold' ? 'cold' : 'warm';
if (values['page-cache'] !== pageCacheMode) usageError(`--page-cache '${values['page-cache']}' must be warm or cold`);

/** Every round of every phase, in the order first measured; the report uses each phase's fastest round. */
const rounds = new Map<string, Phase[]>();
const cacheStates = new Set<CacheState>();
const notes: string[] = [];

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** How quiet the machine was when the current phase started, and the CPU counters then (for its steal). */
let phaseStart: { load: number; quiet: boolean; cpu: number[] | undefined } = { load: 0, quiet: true, cpu: undefined };

/** sync, the page cache as asked for the phase about to read `inputs`, then a quiet machine (or as quiet as it gets). */
async function settled(...inputs: string[]): Promise<void> {
  cacheStates.add(await settle(pageCacheMode, inputs));
  const q = await waitQuiet(quietLoad, quietWaitMs);
  phaseStart = { load: q.load, quiet: q.quiet, cpu: cpuTimes() };
}

function record(phase: Phase, round: number): Phase {
  const [start, end] = [phaseStart.cpu, cpuTimes()];
  const withMachine: Phase = { ...phase, loadAtStart: phaseStart.load, quietAtStart: phaseStart.quiet, ...(start === undefined || end === undefined ? {} : { steal: stealShare(start, end) }) };
  rounds.set(phase.id, [...(rounds.get(phase.id) ?? []), withMachine]);
  const rss = phase.maxRssBytes === undefined ? '' : `, peak RSS ${formatBytes(phase.maxRssBytes)}`;
  const of = phase.tool === 'ceiling' ? '' : ` [round ${round}/${repeat}]`;
  const req = phase.requests === undefined ? '' : `, ${phase.requests} S3 requests`;
  log(`  ${phase.dataset} ${phase.label}: ${formatDuration(phase.wallMs)}, ${mbps(phase.bytes, phase.wallMs).toFixed(0)} MB/s${rss}${req}; load ${phaseStart.load.toFixed(2)}${phaseStart.quiet ? '' : ' (BUSY)'}${of}`);
  return withMachine;
}


/** Each phase's fastest round (least disturbed by the machine's other work), with all rounds' times beside it. */
function bestPhases(): Phase[] {
  return [...rounds.values()].map((all) => {
    const best = all.reduce((a, b) => (b.wallMs < a.wallMs ? b : a));
    return { ...best, details: { ...best.details, roundsWallMs: all.map((p) => Math.round(p.wallMs)), peakRssAllRounds: Math.max(...all.map((p) => p.maxRssBytes ?? 0)) } };
  });
}

function fromMeasured(id: string, label: string, dataset: string, tool: Phase['tool'], bytes: number, m: Measured, extra: Partial<Phase> = {}): Phase {
  return { id, label, dataset, tool, bytes, wallMs: m.wallMs, ...(m.maxRssBytes === undefined ? {} : { maxRssBytes: m.maxRssBytes }), ...(m.cpuMs === undefined ? {} : { cpuMs: m.cpuMs }), ...extra };
}

async function chunkpoint<T>(args: string[]): Promise<{ m: Measured; result: T }> {
  const m = await measure(process.execPath, [CLI, ...args, '--threads', String(threads), '--json']);
  return { m, result: JSON.parse(m.stdout) as T };
}

/** What the JSON report keeps of a snapshot's result, for the CLI's rows and the embedded ones alike. */
function snapshotDetails(result: SnapshotResult): Record<string, unknown> {
  return { bytesRead: result.bytesRead, bytesWritten: result.bytesWritten, filesReused: result.filesReused, files: result.files, chunksNew: result.chunksNew, chunksDeduped: result.chunksDeduped, compressionRatio: result.compressionRatio, ...(result.stages === null ? {} : { stages: result.stages }) };
}

async function snapshotPhase(round: number, id: string, label: string, ds: string, stateDir: string, store: string, extra: string[] = []): Promise<SnapshotResult> {
  await settled(stateDir);
  const { m, result } = await chunkpoint<SnapshotResult>(['snapshot', stateDir, '--store', store, '--job', 'bench', '--chunk-size', String(chunkSize), ...extra]);
  record(
    fromMeasured(id, label, ds, 'chunkpoint', result.bytes, m, {
      inProcessMs: result.durationMs,
      storedBytes: result.bytesWritten,
      details: snapshotDetails(result),
    }),
    round,
  );
  if (result.stages !== null) log(`    stages: ${stagesLine(result.stages, m.wallMs - result.durationMs)}`);
  return result;
}

/**
 * Where a snapshot's time went: the coordinator's stages (wall, in order),
 * the workers' (summed over threads), and what the process spent outside
 * the operation (start-up, pool start, exit).
 */
function stagesLine(s: SnapshotStages, outsideMs: number | undefined): string {
  const w = s.workers;
  const outside = outsideMs === undefined ? 'no process or pool start-up (threads already running)' : `process and pool start-up ${Math.round(outsideMs)} ms`;
  return `list ${s.listMs} ms, plan ${s.planMs}, write ${s.writeMs} [threads: read ${w.readMs}, hash ${w.hashMs}, lz4 ${w.compressMs}, store ${w.writeMs}], publish ${s.publishMs}, manifest ${s.manifestMs}, commit ${s.commitMs}, local copy ${s.localCopyMs}; ${outside}`;
}

/**
 * A full and an incremental snapshot through the API in one long-lived
 * process whose threads already run (bench/embedded.ts), as a runtime that
 * embeds chunkpoint takes them. Each row's time is the operation's own
 * (durationMs): there is no process start to count. Its peak RSS is the
 * whole process's, warm-up included; its CPU is not reported (it would
 * include the warm-up snapshot).
 */
async function embeddedPhases(round: number, ds: string, before: string, after: string): Promise<void> {
  const store = join(run, `${ds}-store-embedded`);
  // The script clears its own warm-up store.
  await rm(store, { recursive: true, force: true });
  await settled(before, after);
  const m = await measure(process.execPath, [EMBEDDED, before, after, store, String(threads), String(chunkSize)]);
  const results = JSON.parse(m.stdout) as { full: SnapshotResult; incremental: SnapshotResult };
  recordEmbedded(round, ds, 'full-embedded', 'chunkpoint full snapshot, embedded (warm threads)', results.full, m);
  recordEmbedded(round, ds, 'incremental-embedded', 'chunkpoint incremental, embedded (warm threads)', results.incremental, m);
  await rm(store, { recursive: true, force: true });

  // The same full snapshot with the disk out of the way (no fsync, packs into the page cache): CPU-bound,
  // so its distance to the ceilings is the pipeline's own overhead, not the disk's.
  await settled(before);
  const n = await measure(process.execPath, [EMBEDDED, '--no-disk', before, store, String(threads), String(chunkSize)], { env: { ...process.env, CHUNKPOINT_DIRECT_IO: '0' } });
  recordEmbedded(round, ds, 'full-embedded-nodisk', 'full, embedded, no fsync, page-cache writes', (JSON.parse(n.stdout) as { full: SnapshotResult }).full, n);
  await rm(store, { recursive: true, force: true });
}

/** An embedded operation's row: timed by its own durationMs; the peak RSS is the whole process's (`m`). */
function recordEmbedded(round: number, ds: string, phase: string, label: string, result: SnapshotResult, m: Measured): void {
  record(
    {
      id: `${ds}:${phase}`,
      label,
      dataset: ds,
      tool: 'chunkpoint',
      bytes: result.bytes,
      wallMs: result.durationMs,
      inProcessMs: result.durationMs,
      storedBytes: result.bytesWritten,
      ...(m.maxRssBytes === undefined ? {} : { maxRssBytes: m.maxRssBytes }),
      details: snapshotDetails(result),
    },
    round,
  );
  if (result.stages !== null) log(`    stages: ${stagesLine(result.stages, undefined)}`);
}

/** `cache` undefined: no local cache, every chunk from the store and nothing else written. */
async function restorePhase(round: number, id: string, label: string, ds: string, store: string, target: string, cache: string | undefined, expected: StateFileInfo[], extra: string[] = []): Promise<RestoreResult> {
  await rm(target, { recursive: true, force: true });
  await settled(store, ...(cache === undefined ? [] : [cache]));
  const { m, result } = await chunkpoint<RestoreResult>(['restore', '--store', store, '--job', 'bench', '--checkpoint', 'latest', target, ...(cache === undefined ? [] : ['--cache', cache]), ...extra]);
  record(
    fromMeasured(id, label, ds, 'chunkpoint', result.bytes, m, {
      inProcessMs: result.durationMs,
      details: { bytesFromRemote: result.bytesFromRemote, bytesFromCache: result.bytesFromCache, chunks: result.chunks, filesFromLocalCopy: result.filesFromLocalCopy, localCopiesVerified: result.localCopiesVerified },
    }),
    round,
  );
  await expectSameFiles(expected, target, label);
  return result;
}

/**
 * The disk's own limit for what a phase wrote durably (disk-limit.ts): `written` bytes as `files`
 * files, as many in flight as the workers keep requests. Recorded over the phase's `bytes`, so the
 * ratio compares the same work.
 */
async function diskLimitPhase(round: number, id: string, label: string, ds: string, bytes: number, written: number, files: number): Promise<void> {
  const dir = join(run, 'disk-limit');
  await rm(dir, { recursive: true, force: true });
  await settled();
  const m = await measure(process.execPath, [DISK_LIMIT, dir, String(written), String(Math.max(1, files)), String(threads * DEFAULT_REQUESTS_PER_THREAD)]);
  record(fromMeasured(id, label, ds, 'disk', bytes, m, { details: { bytesWritten: written, files } }), round);
}

/** Names and sizes: chunkpoint verifies every chunk's content key itself; this catches a restore of the wrong checkpoint. */
async function expectSameFiles(expected: StateFileInfo[], dir: string, what: string): Promise<void> {
  const actual = await listState(dir);
  const text = (files: StateFileInfo[]): string => files.map((f) => `${f.name}:${f.size}`).join(',');
  if (text(actual) !== text(expected)) throw new Error(`${what}: restored files differ from the state (${actual.length} vs ${expected.length} files)`);
}

function stateBytes(files: StateFileInfo[]): number {
  return files.reduce((sum, f) => sum + f.size, 0);
}

/**
 * The compute ceiling (`io` 'none': what the issue's target compares with);
 * with 'read' the same work after reading each chunk from the page cache (the
 * copy out of it is CPU on the same cores); with 'read-write' also each blob
 * written into the page cache. Each is what any snapshot that does that much
 * I/O can reach at most on this machine.
 */
async function ceilingPhase(ds: string, stateDir: string, io: 'none' | 'read' | 'read-write' = 'none'): Promise<void> {
  const spill = io === 'read-write' ? join(run, 'ceiling-spill') : undefined;
  if (spill !== undefined) {
    await rm(spill, { recursive: true, force: true });
    await mkdir(spill, { recursive: true });
  }
  if (io !== 'none') await settled(stateDir);
  const c = await computeCeiling(stateDir, { threads, chunkSize, reads: io !== 'none', ...(spill === undefined ? {} : { spill }) });
  if (spill !== undefined) await rm(spill, { recursive: true, force: true });
  const labels = {
    none: `compute ceiling (hash+lz4, ${threads} thr, in memory)`,
    read: `ceiling with reads (read+hash+lz4, ${threads} thr)`,
    'read-write': `ceiling with reads and page-cache writes`,
  };
  record(
    {
      id: io === 'none' ? `${ds}:ceiling` : io === 'read' ? `${ds}:ceiling-read` : `${ds}:ceiling-rw`,
      label: labels[io],
      dataset: ds,
      tool: 'ceiling',
      bytes: c.bytes,
      wallMs: c.bestMs,
      storedBytes: c.storedBytes,
      details: { roundsMs: c.roundsMs.map(Math.round), queueDepth: c.queueDepth, lz4Ratio: c.bytes / c.storedBytes },
    },
    1,
  );
}

interface Peers {
  tarLz4: boolean;
  borg: boolean;
  restic: boolean;
}

/**
 * The state a phase reads always sits at the same path (`run/state`), as a
 * live database directory does: borg's files cache is keyed by path, and
 * the incremental runs must find the full runs' files where they left them.
 * Versions of the state are kept beside it and renamed into place.
 */
class StatePlace {
  constructor(
    readonly path: string,
    private current: string | undefined = undefined,
  ) {}

  async put(version: string): Promise<void> {
    if (this.current === version) return;
    if (this.current !== undefined) await rename(this.path, this.current);
    await rename(version, this.path);
    this.current = version;
  }

  async release(): Promise<void> {
    if (this.current !== undefined) await rename(this.path, this.current);
    this.current = undefined;
  }
}

async function fullPeers(round: number, ds: string, stateDir: string, bytes: number, peers: Peers): Promise<BorgRepo | undefined> {
  if (peers.tarLz4) {
    const archive = join(run, `${ds}.tar.lz4`);
    await rm(archive, { force: true });
    await settled(stateDir);
    const m = await tarLz4Create(stateDir, archive);
    record(fromMeasured(`${ds}:tar`, 'tar | lz4 -1 (no fsync)', ds, 'tar|lz4', bytes, m), round);
  }
  if (!peers.borg) return undefined;
  const borg = new BorgRepo(join(run, `${ds}-borg-repo`), join(run, `${ds}-borg-home`));
  await rm(join(run, `${ds}-borg-home`), { recursive: true, force: true });
  await borg.init();
  await settled(stateDir);
  record(fromMeasured(`${ds}:borg-full`, 'borg create lz4 (fsyncs)', ds, 'borg', bytes, await borg.create('full', stateDir)), round);
  return borg;
}

interface UncompressedOutcome {
  full: SnapshotResult;
  incremental: SnapshotResult;
  dedupe: { chunks: number; bytes: number };
  expectedRead: number;
  /** The last round's restore from the task-local copy. */
  localRestore: RestoreResult | undefined;
}

async function uncompressedDataset(ds: Dataset, peers: Peers): Promise<UncompressedOutcome> {
  const name = 'none';
  const place = new StatePlace(join(run, 'state'));
  const before = join(run, 'state-before');
  const after = join(run, 'state-after');
  await workingCopy(ds.stateDir, before);
  const beforeFiles = await listState(before);
  const bytes = stateBytes(beforeFiles);

  log(`\n${name}: ${formatBytes(bytes)} of RocksDB state, uncompressed blocks`);
  log(`  changing a copy of the state: ${CHANGE.appendFraction * 100}% new records, ${CHANGE.rewriteFraction * 100}% overwritten and compacted`);
  // Hard links are made before any phase: linking changes an inode's ctime, which borg's files cache checks.
  await workingCopy(before, after);
  await mutateState(after, { seed: seed + 1000, records: ds.records, compression: false, ...CHANGE });
  const afterFiles = await listState(after);
  const afterBytes = stateBytes(afterFiles);
  // What an incremental snapshot has to read: immutable files it has not seen (by name, size, mtime) and every mutable file.
  const seen = new Set(beforeFiles.map((f) => `${f.name}:${f.size}:${f.mtimeMs}`));
  const expectedRead = afterFiles.filter((f) => !f.name.endsWith('.sst') || !seen.has(`${f.name}:${f.size}:${f.mtimeMs}`)).reduce((sum, f) => sum + f.size, 0);

  await place.put(before);
  await settled(place.path);
  await ceilingPhase(name, place.path);
  await ceilingPhase(name, place.path, 'read');
  await ceilingPhase(name, place.path, 'read-write');

  let full: SnapshotResult | undefined;
  let incremental: SnapshotResult | undefined;
  let localRestore: RestoreResult | undefined;
  for (let round = 1; round <= repeat; round++) {
    const store = join(run, `${name}-store`);
    const cache = join(run, `${name}-cache`);
    await rm(store, { recursive: true, force: true });
    await rm(cache, { recursive: true, force: true });

    await place.put(before);
    full = await snapshotPhase(round, `${name}:full`, 'chunkpoint full snapshot', name, place.path, store);
    await diskLimitPhase(round, `${name}:disk-packs`, "disk limit: the packs' bytes, synced", name, bytes, full.bytesWritten, full.packsWritten);
    await snapshotPhase(round, `${name}:full-nofsync`, 'chunkpoint full --no-fsync', name, place.path, join(run, `${name}-store-nofsync`), ['--no-fsync']);
    await rm(join(run, `${name}-store-nofsync`), { recursive: true, force: true });
    const borg = await fullPeers(round, name, place.path, bytes, peers);

    await place.put(after);
    incremental = await snapshotPhase(round, `${name}:incremental`, 'chunkpoint incremental', name, place.path, store);
    if (borg !== undefined) {
      await settled(place.path);
      record(fromMeasured(`${name}:borg-incremental`, 'borg create lz4, incremental', name, 'borg', afterBytes, await borg.create('incremental', place.path)), round);
    }
    // `before` is back at its own path now; `after` is in place.
    await embeddedPhases(round, name, before, place.path);

    const plain = await restorePhase(round, `${name}:restore`, 'chunkpoint restore, no cache', name, store, join(run, 'restore-plain'), undefined, afterFiles);
    await diskLimitPhase(round, `${name}:disk-restore`, 'disk limit: the restored bytes, synced', name, plain.bytes, plain.bytes, plain.files);
    await rm(join(run, 'restore-plain'), { recursive: true, force: true });
    await restorePhase(round, `${name}:restore-cold`, 'chunkpoint restore, cold cache (fills it)', name, store, join(run, 'restore-cold'), cache, afterFiles);
    await restorePhase(round, `${name}:restore-warm`, 'chunkpoint restore, warm cache', name, store, join(run, 'restore-warm'), cache, afterFiles);
    await rm(join(run, 'restore-cold'), { recursive: true, force: true });
    await rm(join(run, 'restore-warm'), { recursive: true, force: true });
    // Task-local recovery: a snapshot that keeps a local copy (SSTs linked), then a restore from it.
    const local = join(run, `${name}-local-copy`);
    await rm(local, { recursive: true, force: true });
    await snapshotPhase(round, `${name}:unchanged-local-copy`, 'chunkpoint unchanged snapshot, keeping a local copy', name, place.path, store, ['--local-copy', local]);
    localRestore = await restorePhase(round, `${name}:restore-local-copy`, 'chunkpoint restore from the task-local copy', name, store, join(run, 'restore-local'), undefined, afterFiles, ['--local-copy', local]);
    await rm(join(run, 'restore-local'), { recursive: true, force: true });
    await rm(local, { recursive: true, force: true });
    if (borg !== undefined) {
      const target = join(run, 'restore-borg');
      await rm(target, { recursive: true, force: true });
      await settled(borg.repo);
      record(fromMeasured(`${name}:borg-extract`, 'borg extract (no fsync)', name, 'borg', afterBytes, await borg.extract('incremental', target)), round);
      await expectSameFiles(afterFiles, borgExtractedDir(target, place.path), 'borg extract');
      await rm(target, { recursive: true, force: true });
    }
    if (peers.tarLz4) {
      // The archive holds the state before the change: the same kind and nearly the same amount of data.
      const target = join(run, 'restore-tar');
      const archive = join(run, `${name}.tar.lz4`);
      await rm(target, { recursive: true, force: true });
      await settled(archive);
      record(fromMeasured(`${name}:tar-extract`, 'lz4 -d | tar -x (no fsync)', name, 'tar|lz4', bytes, await tarLz4Extract(archive, target)), round);
      await rm(target, { recursive: true, force: true });
    }
  }
  await place.release();

  log('  fixed-size-chunk dedupe yardstick (SHA-1 of every chunk before and after the change)');
  const dedupe = newChunks(await fixedChunkDigests(before, chunkSize), await fixedChunkDigests(after, chunkSize));
  if (full === undefined || incremental === undefined) throw new Error('no round ran');
  return { full, incremental, dedupe, expectedRead, localRestore };
}

interface S3Outcome {
  requests: Record<'full' | 'unchanged' | 'incremental' | 'restore' | 'gc', number>;
  kept: number;
}

/**
 * The same state, snapshotted into and restored from a local Ceph RGW, beside
 * restic's own S3 backend on the same server. The server shares the two
 * cores with the client, so the server is the bound; its own request counter
 * says what each phase asked of it.
 */
async function s3Dataset(peers: Peers): Promise<S3Outcome | undefined> {
  const name = 's3';
  const before = join(run, 'state-before');
  const after = join(run, 'state-after');
  const beforeFiles = await listState(before);
  const afterFiles = await listState(after);
  const place = new StatePlace(join(run, 'state'));
  log(`\n${name}: the same state on a local Ceph RADOS Gateway (S3), chunkpoint and restic`);
  let outcome: S3Outcome | undefined;
  try {
    for (let round = 1; round <= repeat; round++) {
      // A fresh server each round: every round starts from the same empty store, and the
      // server's RAM-backed OSD (2 GiB) never fills with earlier rounds' objects.
      const server: S3Server = await startS3Server(['bench']);
      try {
        const counted = async <T>(what: () => Promise<T>): Promise<{ value: T; requests: number; serverCpuMs: number }> => {
          const r0 = await server.requests();
          const c0 = await server.cpuMs();
          const value = await what();
          const serverCpuMs = (await server.cpuMs()) - c0;
          return { value, requests: (await server.requests()) - r0, serverCpuMs };
        };
        const store = `s3://bench/chunkpoint-r${round}`;
        const requests = { full: 0, unchanged: 0, incremental: 0, restore: 0, gc: 0 };
        const snap = async (id: 'full' | 'unchanged' | 'incremental', label: string, state: string[]): Promise<SnapshotResult> => {
          await settled(place.path);
          const { value, requests: n, serverCpuMs } = await counted(() => chunkpoint<SnapshotResult>(['snapshot', place.path, '--store', store, '--job', 'bench', '--chunk-size', String(chunkSize)]));
          requests[id] = n;
          record(fromMeasured(`${name}:${id}`, label, name, 'chunkpoint', value.result.bytes, value.m, { inProcessMs: value.result.durationMs, requests: n, serverCpuMs, details: { bytesRead: value.result.bytesRead, bytesWritten: value.result.bytesWritten, packsWritten: value.result.packsWritten, state } }), round);
          return value.result;
        };
        await place.put(before);
        const full = await snap('full', 'chunkpoint full snapshot to S3', ['before']);
        // The server's own limit for the same bytes: PUTs of pack-sized objects, as many in flight as the workers keep.
        await settled();
        const limitPrefix = `server-limit-r${round}/`;
        const put = await counted(() => measure(process.execPath, [SERVER_LIMIT, 'put', 'bench', limitPrefix, String(full.bytesWritten), String(threads * DEFAULT_REQUESTS_PER_THREAD), String(DEFAULT_PACK_SIZE)]));
        record(fromMeasured(`${name}:server-put`, 'server limit: PutObject of the same bytes', name, 'server', full.bytes, put.value, { requests: put.requests, serverCpuMs: put.serverCpuMs }), round);
        await deletePrefix(server, 'bench', limitPrefix);
        await snap('unchanged', 'chunkpoint incremental, nothing changed', ['before']);
        await place.put(after);
        await snap('incremental', 'chunkpoint incremental to S3', ['after']);
        const target = join(run, 'restore-s3');
        await rm(target, { recursive: true, force: true });
        await settled();
        const restored = await counted(() => chunkpoint<RestoreResult>(['restore', '--store', store, '--job', 'bench', '--checkpoint', 'latest', target]));
        requests.restore = restored.requests;
        record(fromMeasured(`${name}:restore`, 'chunkpoint restore from S3, no cache', name, 'chunkpoint', restored.value.result.bytes, restored.value.m, { inProcessMs: restored.value.result.durationMs, requests: restored.requests, serverCpuMs: restored.serverCpuMs, details: { storeReads: restored.value.result.storeReads } }), round);
        await expectSameFiles(afterFiles, target, 'restore from S3');
        await rm(target, { recursive: true, force: true });
        // ...and for the restore: GETs of as many stored bytes as it fetched, as many in flight as it keeps.
        await settled();
        const get = await counted(() => measure(process.execPath, [SERVER_LIMIT, 'get', 'bench', `chunkpoint-r${round}/bench/shared/`, String(restored.value.result.bytesFromRemote), String(DEFAULT_IO_CONCURRENCY)]));
        record(fromMeasured(`${name}:server-get`, 'server limit: GetObject of the same bytes', name, 'server', restored.value.result.bytes, get.value, { requests: get.requests, serverCpuMs: get.serverCpuMs }), round);
        // Local-first: the second restore through a cache fetches only the metadata.
        const s3Cache = join(run, `s3-cache-r${round}`);
        for (const [id, label] of [
          ['restore-cold', 'chunkpoint restore from S3, cold cache (fills it)'],
          ['restore-warm', 'chunkpoint restore from S3, warm cache'],
        ] as const) {
          await settled(...(id === 'restore-warm' ? [s3Cache] : []));
          const r = await counted(() => chunkpoint<RestoreResult>(['restore', '--store', store, '--job', 'bench', '--checkpoint', 'latest', '--cache', s3Cache, target]));
          record(fromMeasured(`${name}:${id}`, label, name, 'chunkpoint', r.value.result.bytes, r.value.m, { inProcessMs: r.value.result.durationMs, requests: r.requests, serverCpuMs: r.serverCpuMs, details: { bytesFromRemote: r.value.result.bytesFromRemote, bytesFromCache: r.value.result.bytesFromCache } }), round);
          await expectSameFiles(afterFiles, target, `restore from S3 (${id})`);
          await rm(target, { recursive: true, force: true });
        }
        await rm(s3Cache, { recursive: true, force: true });
        await settled();
        const gc = await counted(() => chunkpoint<{ checkpointsKept: number }>(['gc', '--store', store, '--job', 'bench']));
        requests.gc = gc.requests;
        record(fromMeasured(`${name}:gc`, 'chunkpoint gc, nothing to delete', name, 'chunkpoint', stateBytes(afterFiles), gc.value.m, { requests: gc.requests, serverCpuMs: gc.serverCpuMs }), round);
        outcome = { requests, kept: gc.value.result.checkpointsKept };

        if (!peers.restic) continue;
        const restic = new ResticRepo(`s3:${server.endpoint}/bench/restic-r${round}`, join(run, `restic-cache-r${round}`));
        await restic.init();
        const backup = async (id: string, label: string, files: StateFileInfo[]): Promise<void> => {
          await settled(place.path);
          const { value, requests: n, serverCpuMs } = await counted(() => restic.backup(place.path));
          record(fromMeasured(`${name}:${id}`, label, name, 'restic', stateBytes(files), value, { requests: n, serverCpuMs }), round);
        };
        await place.put(before);
        await backup('restic-full', 'restic backup to S3, first', beforeFiles);
        await backup('restic-unchanged', 'restic backup, nothing changed', beforeFiles);
        await place.put(after);
        await backup('restic-incremental', 'restic backup, incremental', afterFiles);
        const resticTarget = join(run, 'restore-restic');
        await settled();
        const r = await counted(() => restic.restore(resticTarget));
        record(fromMeasured(`${name}:restic-restore`, 'restic restore from S3', name, 'restic', stateBytes(afterFiles), r.value, { requests: r.requests, serverCpuMs: r.serverCpuMs }), round);
        await expectSameFiles(afterFiles, resticRestoredDir(resticTarget, place.path), 'restic restore');
        await rm(resticTarget, { recursive: true, force: true });
      } finally {
        await server.stop();
      }
    }
  } finally {
    await place.release();
  }
  void beforeFiles;
  return outcome;
}

/** Removes a yardstick's objects, so the server's RAM-backed store keeps room for the phases after it. */
async function deletePrefix(server: S3Server, bucket: string, prefix: string): Promise<void> {
  let token: string | undefined;
  do {
    const page = await server.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    const keys = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
    if (keys.length > 0) await server.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    token = page.NextContinuationToken;
  } while (token !== undefined);
}

async function snappyDataset(ds: Dataset, peers: Peers): Promise<void> {
  const name = 'snappy';
  const place = new StatePlace(join(run, 'state-snappy'));
  const version = join(run, 'state-snappy-version');
  await workingCopy(ds.stateDir, version);
  await place.put(version);
  const bytes = stateBytes(await listState(place.path));
  log(`\n${name}: ${formatBytes(bytes)} of RocksDB state, Snappy-compressed blocks (${formatBytes(ds.bytes)} of records)`);
  await settled(place.path);
  await ceilingPhase(name, place.path);
  for (let round = 1; round <= repeat; round++) {
    const store = join(run, `${name}-store`);
    await rm(store, { recursive: true, force: true });
    await snapshotPhase(round, `${name}:full`, 'chunkpoint full snapshot', name, place.path, store);
    await fullPeers(round, name, place.path, bytes, peers);
  }
  await place.release();
}

async function versionOf(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await exec(cmd, args);
    return (stdout || stderr).split('\n')[0]?.trim();
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const started = new Date();
  const load = loadavg();
  const cpuStart = cpuTimes();
  const peers = await findPeers();
  if (!peers.tarLz4) log(`tar | lz4 is not installed: skipping it (install: ${INSTALL_HINT})`);
  if (!peers.borg) log(`borg is not installed: skipping it (install: ${INSTALL_HINT})`);
  await rm(run, { recursive: true, force: true });
  await mkdir(run, { recursive: true });

  const spec = (compression: DatasetSpec['compression']): DatasetSpec => ({ bytes: size, seed, compression });
  const plain = await ensureDataset(work, spec('none'), log);
  // The RocksDB that writes the datasets (rocksdb-native) is built without block compression.
  if (!values['skip-snappy'] && !SNAPPY_BLOCKS) notes.push('Snappy dataset skipped: the RocksDB binding that writes the datasets (rocksdb-native) has no block compression');
  const snappy = values['skip-snappy'] || !SNAPPY_BLOCKS ? undefined : await ensureDataset(work, spec('snappy'), log);
  for (const ds of [plain, snappy]) if (ds?.note !== undefined) notes.push(`dataset ${ds.compression}: ${ds.note}`);

  const hashKind = (await loadHasher()).kind;
  notes.push(`content keys: ${hashKind === 'native' ? 'native XXH64 (@node-rs/xxhash)' : 'portable XXH64 (xxhash-wasm)'}, in the snapshot, the restore and the compute ceiling alike`);
  log(`chunkpoint bench: ${formatBytes(size)} of records, ${threads} worker threads, ${formatBytes(chunkSize)} chunks, ${hashKind} XXH64, work dir ${work}`);
  const { full, incremental, dedupe, expectedRead, localRestore } = await uncompressedDataset(plain, peers);
  const s3Missing = missingS3Binaries();
  let s3: S3Outcome | undefined;
  if (values['skip-s3']) notes.push('S3 section skipped (--skip-s3)');
  else if (s3Missing.length > 0) notes.push(`S3 section skipped: Ceph is not installed (missing ${s3Missing.join(', ')})`);
  else s3 = await s3Dataset(peers);
  if (!peers.restic) log(`restic is not installed: the S3 section runs without it (install: ${INSTALL_HINT})`);
  if (snappy !== undefined) await snappyDataset(snappy, peers);

  const cpuEnd = cpuTimes();
  const steal = cpuStart !== undefined && cpuEnd !== undefined ? stealShare(cpuStart, cpuEnd) : undefined;
  const phases = bestPhases();
  const cache =
    pageCacheMode === 'warm'
      ? 'warm (every phase read its input once before it started)'
      : cacheStates.has('warm')
        ? 'warm (asked for cold, but could not drop the page cache: not root?)'
        : 'dropped before every phase (reads hit the disk)';

  const peersOf = (id: string): PeerIds => {
    const [ds, phase] = id.split(':') as [string, string];
    if (ds === 's3') {
      if (phase === 'restore') return { restic: 's3:restic-restore', limit: 's3:server-get' };
      if (phase.startsWith('restore')) return { restic: 's3:restic-restore' };
      if (phase === 'full') return { restic: 's3:restic-full', limit: 's3:server-put' };
      return phase === 'unchanged' || phase === 'incremental' ? { restic: `s3:restic-${phase}` } : {};
    }
    if (phase === 'full') return { borg: `${ds}:borg-full`, tar: `${ds}:tar`, ceiling: `${ds}:ceiling`, limit: `${ds}:disk-packs` };
    if (phase === 'full-nofsync') return { borg: `${ds}:borg-full`, tar: `${ds}:tar`, ceiling: `${ds}:ceiling` };
    // Operation time in a running process: like-for-like with the ceiling (warm threads, timed in process),
    // not with the wall time of a process (a peer's, or the disk limit's, which includes its start).
    if (phase === 'full-embedded') return { ceiling: `${ds}:ceiling` };
    // Its limit is the ceiling with reads and page-cache writes: the same I/O, none of chunkpoint's code around it.
    if (phase === 'full-embedded-nodisk') return { ceiling: `${ds}:ceiling`, limit: `${ds}:ceiling-rw` };
    if (phase === 'incremental') return { borg: `${ds}:borg-incremental` };
    if (phase === 'restore-local-copy') return { borg: `${ds}:borg-extract`, tar: `${ds}:tar-extract` };
    // Every other restore writes every byte of the state and syncs it.
    if (phase.startsWith('restore')) return { borg: `${ds}:borg-extract`, tar: `${ds}:tar-extract`, limit: `${ds}:disk-restore` };
    return {};
  };
  const comparisons: Comparison[] = [];
  for (const p of phases) {
    if (p.tool !== 'chunkpoint') continue;
    for (const against of Object.values(peersOf(p.id)) as string[]) {
      const c = compare(phases, p.id, against);
      if (c !== undefined) comparisons.push(c);
    }
  }
  const ratio = (id: string, against: string): number | undefined => comparisons.find((c) => c.phase === id && c.against === against)?.ratio;
  const atLeast = (name: string, value: number | undefined, need: number, why?: string, percent = false): Target => ({
    name,
    measured: value === undefined ? 'not measured (peer missing)' : percent ? `${(value * 100).toFixed(0)}%` : `${value.toFixed(2)}x`,
    required: percent ? `>= ${need * 100}%` : `>= ${need}x`,
    met: value === undefined ? undefined : value >= need,
    ...(why === undefined ? {} : { why }),
  });
  // Every round counts for memory: a peak is a peak even in a slow round.
  const cpRss = [...rounds.values()].flat().filter((p) => p.tool === 'chunkpoint' && p.maxRssBytes !== undefined).map((p) => p.maxRssBytes ?? 0);
  const peakRss = cpRss.length === 0 ? undefined : Math.max(...cpRss);
  const snappyFull = phases.find((p) => p.id === 'snappy:full');
  const plainFull = phases.find((p) => p.id === 'none:full');
  const budget = (name: string, measured: number | undefined, limit: number): Target => ({
    name,
    measured: measured === undefined ? 'not measured (no S3 section)' : `${measured} requests`,
    required: `<= ${limit} (server's counter, for 1 GiB)`,
    met: measured === undefined ? undefined : measured <= limit,
  });
  const targets: Target[] = [
    atLeast('full snapshot vs borg create', ratio('none:full', 'none:borg-full'), TARGET.fullVsBorg),
    atLeast('full snapshot vs tar | lz4 -1', ratio('none:full', 'none:tar'), TARGET.fullVsTar, 'chunkpoint fsyncs every blob, tar | lz4 does not; see the --no-fsync row'),
    atLeast('full snapshot vs compute ceiling', ratio('none:full', 'none:ceiling'), TARGET.fullVsCeiling, 'in-process time; the ceiling does no I/O', true),
    {
      name: 'incremental reads only changed files',
      measured: `read ${formatBytes(incremental.bytesRead)}: changed files ${formatBytes(expectedRead)}, chunks of ${incremental.packsRewritten} mostly-dead packs rewritten ${formatBytes(incremental.bytesRewritten)}`,
      required: 'read = changed + rewritten',
      met: incremental.bytesRead === expectedRead + incremental.bytesRewritten,
    },
    atLeast('incremental snapshot vs borg incremental', ratio('none:incremental', 'none:borg-incremental'), TARGET.incrementalVsBorg),
    {
      name: 'incremental stores <= fixed-chunk dedupe',
      measured: `${incremental.chunksNew - incremental.chunksRewritten} new chunks (and ${incremental.chunksRewritten} of mostly-dead packs stored again), fixed-size dedupe needs ${dedupe.chunks} (${formatBytes(dedupe.bytes)})`,
      required: `<= ${dedupe.chunks} chunks`,
      met: incremental.chunksNew - incremental.chunksRewritten <= dedupe.chunks,
    },
    atLeast('restore from the local store vs borg extract', ratio('none:restore', 'none:borg-extract'), TARGET.restoreVsBorg, 'no cache; chunkpoint fsyncs every restored file, borg extract does not'),
    atLeast('restore from a warm cache vs borg extract', ratio('none:restore-warm', 'none:borg-extract'), TARGET.warmRestoreVsBorg, 'every chunk from the local cache; fsynced as above'),
    (() => {
      const phase = phases.find((p) => p.id === 'none:restore-local-copy');
      return {
        name: 'restore from the task-local copy (whole state)',
        measured: phase === undefined || localRestore === undefined ? 'not measured' : `${formatDuration(phase.wallMs)} wall (${localRestore.durationMs} ms in process), ${formatBytes(localRestore.bytesFromRemote)} from the store, ${localRestore.localCopiesVerified} copies read to prove them`,
        required: `<= ${TARGET.localRestoreMs / 1000} s in process, 0 bytes from the store`,
        met: phase === undefined || localRestore === undefined ? undefined : localRestore.durationMs <= TARGET.localRestoreMs && localRestore.bytesFromRemote === 0,
      };
    })(),
    {
      name: 'peak RSS of every chunkpoint phase',
      measured: peakRss === undefined ? 'not measured (no /usr/bin/time)' : formatBytes(peakRss),
      required: '<= 150 MB',
      met: peakRss === undefined ? undefined : peakRss <= TARGET.peakRssBytes,
    },
    {
      name: 'peak RSS flat from 1 to 8 GiB',
      measured: 'measured by npm run bench:memory -- --sizes 1GiB,8GiB',
      required: 'within 10%',
      met: undefined,
    },
    atLeast('S3: full snapshot vs restic backup', ratio('s3:full', 's3:restic-full'), TARGET.s3FullVsRestic),
    atLeast('S3: unchanged incremental vs restic backup', ratio('s3:unchanged', 's3:restic-unchanged'), TARGET.s3UnchangedVsRestic),
    atLeast('S3: restore vs restic restore', ratio('s3:restore', 's3:restic-restore'), TARGET.s3RestoreVsRestic),
    budget('S3 requests: full snapshot', s3?.requests.full, S3_BUDGET.full),
    budget('S3 requests: unchanged incremental', s3?.requests.unchanged, S3_BUDGET.unchanged),
    budget('S3 requests: restore', s3?.requests.restore, S3_BUDGET.restore),
    budget('S3 requests: gc with nothing to delete', s3?.requests.gc, S3_BUDGET.gc + (s3?.kept ?? 0)),
    atLeast('S3: full snapshot vs the server\'s PutObject limit', ratio('s3:full', 's3:server-put'), TARGET.s3VsServer, 'the same bytes PUT in 32 MiB objects with nothing else done; the server shares the 2 cores', true),
    atLeast('S3: restore vs the server\'s GetObject limit', ratio('s3:restore', 's3:server-get'), TARGET.s3VsServer, 'the same bytes read and dropped; the server shares the 2 cores', true),
    {
      name: 'Snappy full snapshot vs uncompressed',
      measured:
        snappyFull === undefined || plainFull === undefined
          ? `not measured (${SNAPPY_BLOCKS ? '--skip-snappy' : 'no Snappy dataset'})`
          : `${mbps(snappyFull.bytes, snappyFull.wallMs).toFixed(0)} vs ${mbps(plainFull.bytes, plainFull.wallMs).toFixed(0)} MB/s`,
      required: '>= 1x',
      met: snappyFull === undefined || plainFull === undefined ? undefined : mbps(snappyFull.bytes, snappyFull.wallMs) >= mbps(plainFull.bytes, plainFull.wallMs),
    },
  ];
  const rowTargets: RowTargets = {
    'none:full': { text: `>=${TARGET.fullVsBorg}x borg, >=${TARGET.fullVsTar}x tar, >=85% ceil`, met: targets.slice(0, 3).every((t) => t.met === true) },
    'none:incremental': { text: '>=2x borg, reads changed only', met: targets.slice(3, 6).every((t) => t.met === true) },
    'none:restore': { text: `>=${TARGET.restoreVsBorg}x borg`, met: targets[6]?.met },
    'none:restore-warm': { text: `>=${TARGET.warmRestoreVsBorg}x borg`, met: targets[7]?.met },
    'snappy:full': { text: '>= uncompressed full', met: targets.find((t) => t.name === 'Snappy full snapshot vs uncompressed')?.met },
    's3:full': { text: `>=1.5x restic, <=${S3_BUDGET.full} req`, met: [0, 3].every((i) => targets.filter((t) => t.name.startsWith('S3'))[i]?.met === true) },
    's3:unchanged': { text: `>1x restic, <=${S3_BUDGET.unchanged} req`, met: [1, 4].every((i) => targets.filter((t) => t.name.startsWith('S3'))[i]?.met === true) },
    's3:restore': { text: `>=1.5x restic, <=${S3_BUDGET.restore} req`, met: [2, 5].every((i) => targets.filter((t) => t.name.startsWith('S3'))[i]?.met === true) },
    's3:gc': { text: `<=${S3_BUDGET.gc}+kept req`, met: targets.filter((t) => t.name.startsWith('S3'))[6]?.met },
  };

  log(`\nResults: ${formatBytes(size)} of records per dataset (${formatBytes(full.bytes)} on disk uncompressed), ${threads} worker threads, ${formatBytes(chunkSize)} chunks, fastest of ${repeat} round${repeat === 1 ? '' : 's'} per phase`);
  log(`page cache: ${cache}; load average at start ${load.map((l) => l.toFixed(1)).join(' ')}${steal === undefined ? '' : `; CPU steal during the run ${(steal * 100).toFixed(0)}%`}`);
  log('MB/s = logical state MB (10^6) / wall time of the whole command (process start included), except the "embedded" rows: the operation in a process');
  log('whose threads already run, as a runtime embedding chunkpoint takes its checkpoints (bench/embedded.ts); ratios = chunkpoint speed / other speed;');
  log('"vs ceiling" uses chunkpoint\'s in-process time. chunkpoint fsyncs blobs, metadata and restored files; borg fsyncs its repository, not extracted files; tar | lz4 never fsyncs.');
  log('"vs limit": the disk\'s (or the S3 server\'s) own limit for the same bytes; for the "no fsync, page-cache writes" row, the ceiling with reads and page-cache writes.\n');
  log(renderTable(phases, peersOf, rowTargets));
  log('\nTargets');
  log(renderTargets(targets));
  for (const note of notes) log(`note: ${note}`);

  if (values.json !== undefined) {
    const report = {
      format: 'chunkpoint-bench-1',
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      conditions: {
        sizeBytes: size,
        threads,
        chunkSize,
        cpus: availableParallelism(),
        contentKeys: hashKind,
        pageCache: pageCacheMode === 'warm' ? 'warm' : cacheStates.has('warm') ? 'warm (drop not allowed)' : 'dropped',
        repeat,
        loadAverageAtStart: load,
        cpuStealShare: steal,
        node: process.version,
        borg: peers.borg ? await versionOf('borg', ['--version']) : undefined,
        restic: peers.restic ? await versionOf('restic', ['version']) : undefined,
        quietLoad,
        quietWaitMs,
        lz4: peers.tarLz4 ? await versionOf('lz4', ['--version']) : undefined,
        notes,
      },
      phases: phases.map((p) => ({ ...p, mbps: mbps(p.bytes, p.wallMs), ...(p.inProcessMs === undefined ? {} : { inProcessMBps: mbps(p.bytes, p.inProcessMs) }) })),
      ratios: Object.fromEntries(comparisons.map((c) => [c.name, c.ratio])),
      fixedChunkDedupe: dedupe,
      targets,
    };
    await writeFile(resolve(values.json), `${JSON.stringify(report, null, 2)}\n`);
    log(`\nJSON written to ${resolve(values.json)}`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
