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
import { readFile, rename, rm, mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseScriptArgs } from '../scripts/usage.js';
import { DEFAULT_CHUNK_SIZE, type RestoreResult, type SnapshotResult } from '../src/index.js';
import { formatBytes, formatDuration, parseSize } from '../src/units.js';
import { mutateState } from '../scripts/rocks-state.js';
import { computeCeiling } from './ceiling.js';
import { ensureDataset, listState, workingCopy, type Dataset, type DatasetSpec, type StateFileInfo } from './datasets.js';
import { fixedChunkDigests, newChunks } from './fixed-chunks.js';
import { measure, settle, type CacheState, type Measured, type PageCacheMode } from './measure.js';
import { BorgRepo, INSTALL_HINT, borgExtractedDir, findPeers, tarLz4Create, tarLz4Extract } from './peers.js';
import { compare, mbps, renderTable, renderTargets, type Comparison, type Phase, type RowTargets, type Target } from './report.js';

const exec = promisify(execFile);
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'chunkpoint');
/** The issue's targets. */
const TARGET = { fullVsBorg: 3, fullVsTar: 2.2, fullVsCeiling: 0.85, incrementalVsBorg: 2, restoreVsBorg: 3, peakRssBytes: 150e6 };
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
const pageCacheMode: PageCacheMode = values['page-cache'] === 'cold' ? 'cold' : 'warm';
if (values['page-cache'] !== pageCacheMode) usageError(`--page-cache '${values['page-cache']}' must be warm or cold`);

/** Every round of every phase, in the order first measured; the report uses each phase's fastest round. */
const rounds = new Map<string, Phase[]>();
const cacheStates = new Set<CacheState>();
const notes: string[] = [];

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** sync, then the page cache as asked for the phase about to read `inputs`. */
async function settled(...inputs: string[]): Promise<void> {
  cacheStates.add(await settle(pageCacheMode, inputs));
}

function record(phase: Phase, round: number): Phase {
  rounds.set(phase.id, [...(rounds.get(phase.id) ?? []), phase]);
  const rss = phase.maxRssBytes === undefined ? '' : `, peak RSS ${formatBytes(phase.maxRssBytes)}`;
  const of = phase.tool === 'ceiling' ? '' : ` [round ${round}/${repeat}]`;
  log(`  ${phase.dataset} ${phase.label}: ${formatDuration(phase.wallMs)}, ${mbps(phase.bytes, phase.wallMs).toFixed(0)} MB/s${rss}${of}`);
  return phase;
}

/** Each phase's fastest round (least disturbed by the machine's other work), with all rounds' times beside it. */
function bestPhases(): Phase[] {
  return [...rounds.values()].map((all) => {
    const best = all.reduce((a, b) => (b.wallMs < a.wallMs ? b : a));
    return { ...best, details: { ...best.details, roundsWallMs: all.map((p) => Math.round(p.wallMs)), peakRssAllRounds: Math.max(...all.map((p) => p.maxRssBytes ?? 0)) } };
  });
}

function fromMeasured(id: string, label: string, dataset: string, tool: Phase['tool'], bytes: number, m: Measured, extra: Partial<Phase> = {}): Phase {
  return { id, label, dataset, tool, bytes, wallMs: m.wallMs, ...(m.maxRssBytes === undefined ? {} : { maxRssBytes: m.maxRssBytes }), ...extra };
}

async function chunkpoint<T>(args: string[]): Promise<{ m: Measured; result: T }> {
  const m = await measure(process.execPath, [CLI, ...args, '--threads', String(threads), '--json']);
  return { m, result: JSON.parse(m.stdout) as T };
}

async function snapshotPhase(round: number, id: string, label: string, ds: string, stateDir: string, store: string, extra: string[] = []): Promise<SnapshotResult> {
  await settled(stateDir);
  const { m, result } = await chunkpoint<SnapshotResult>(['snapshot', stateDir, '--store', store, '--job', 'bench', '--chunk-size', String(chunkSize), ...extra]);
  record(
    fromMeasured(id, label, ds, 'chunkpoint', result.bytes, m, {
      inProcessMs: result.durationMs,
      storedBytes: result.bytesWritten,
      details: { bytesRead: result.bytesRead, bytesWritten: result.bytesWritten, filesReused: result.filesReused, files: result.files, chunksNew: result.chunksNew, chunksDeduped: result.chunksDeduped, compressionRatio: result.compressionRatio },
    }),
    round,
  );
  return result;
}

/** `cache` undefined: no local cache, every chunk from the store and nothing else written. */
async function restorePhase(round: number, id: string, label: string, ds: string, store: string, target: string, cache: string | undefined, expected: StateFileInfo[]): Promise<RestoreResult> {
  await rm(target, { recursive: true, force: true });
  await settled(store, ...(cache === undefined ? [] : [cache]));
  const { m, result } = await chunkpoint<RestoreResult>(['restore', '--store', store, '--job', 'bench', '--checkpoint', 'latest', target, ...(cache === undefined ? [] : ['--cache', cache])]);
  record(
    fromMeasured(id, label, ds, 'chunkpoint', result.bytes, m, {
      inProcessMs: result.durationMs,
      details: { bytesFromRemote: result.bytesFromRemote, bytesFromCache: result.bytesFromCache, chunks: result.chunks },
    }),
    round,
  );
  await expectSameFiles(expected, target, label);
  return result;
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

async function ceilingPhase(ds: string, stateDir: string): Promise<void> {
  const c = await computeCeiling(stateDir, { threads, chunkSize });
  record(
    {
      id: `${ds}:ceiling`,
      label: `compute ceiling (hash+lz4, ${threads} thr, in memory)`,
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

  let full: SnapshotResult | undefined;
  let incremental: SnapshotResult | undefined;
  for (let round = 1; round <= repeat; round++) {
    const store = join(run, `${name}-store`);
    const cache = join(run, `${name}-cache`);
    await rm(store, { recursive: true, force: true });
    await rm(cache, { recursive: true, force: true });

    await place.put(before);
    full = await snapshotPhase(round, `${name}:full`, 'chunkpoint full snapshot', name, place.path, store);
    await snapshotPhase(round, `${name}:full-nofsync`, 'chunkpoint full --no-fsync', name, place.path, join(run, `${name}-store-nofsync`), ['--no-fsync']);
    await rm(join(run, `${name}-store-nofsync`), { recursive: true, force: true });
    const borg = await fullPeers(round, name, place.path, bytes, peers);

    await place.put(after);
    incremental = await snapshotPhase(round, `${name}:incremental`, 'chunkpoint incremental', name, place.path, store);
    if (borg !== undefined) {
      await settled(place.path);
      record(fromMeasured(`${name}:borg-incremental`, 'borg create lz4, incremental', name, 'borg', afterBytes, await borg.create('incremental', place.path)), round);
    }

    await restorePhase(round, `${name}:restore`, 'chunkpoint restore, no cache', name, store, join(run, 'restore-plain'), undefined, afterFiles);
    await rm(join(run, 'restore-plain'), { recursive: true, force: true });
    await restorePhase(round, `${name}:restore-cold`, 'chunkpoint restore, cold cache (fills it)', name, store, join(run, 'restore-cold'), cache, afterFiles);
    await restorePhase(round, `${name}:restore-warm`, 'chunkpoint restore, warm cache', name, store, join(run, 'restore-warm'), cache, afterFiles);
    await rm(join(run, 'restore-cold'), { recursive: true, force: true });
    await rm(join(run, 'restore-warm'), { recursive: true, force: true });
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
  return { full, incremental, dedupe, expectedRead };
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

/** Share of CPU time the hypervisor gave to others (steal) between two /proc/stat readings. */
async function cpuTimes(): Promise<number[] | undefined> {
  const text = await readFile('/proc/stat', 'utf8').catch(() => undefined);
  return text?.split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number);
}

async function main(): Promise<void> {
  const started = new Date();
  const load = loadavg();
  const cpuStart = await cpuTimes();
  const peers = await findPeers();
  if (!peers.tarLz4) log(`tar | lz4 is not installed: skipping it (install: ${INSTALL_HINT})`);
  if (!peers.borg) log(`borg is not installed: skipping it (install: ${INSTALL_HINT})`);
  await rm(run, { recursive: true, force: true });
  await mkdir(run, { recursive: true });

  const spec = (compression: DatasetSpec['compression']): DatasetSpec => ({ bytes: size, seed, compression });
  const plain = await ensureDataset(work, spec('none'), log);
  const snappy = values['skip-snappy'] ? undefined : await ensureDataset(work, spec('snappy'), log);
  for (const ds of [plain, snappy]) if (ds?.note !== undefined) notes.push(`dataset ${ds.compression}: ${ds.note}`);

  log(`chunkpoint bench: ${formatBytes(size)} of records, ${threads} worker threads, ${formatBytes(chunkSize)} chunks, work dir ${work}`);
  const { full, incremental, dedupe, expectedRead } = await uncompressedDataset(plain, peers);
  if (snappy !== undefined) await snappyDataset(snappy, peers);

  const cpuEnd = await cpuTimes();
  const steal = cpuStart !== undefined && cpuEnd !== undefined ? stealShare(cpuStart, cpuEnd) : undefined;
  const phases = bestPhases();
  const cache =
    pageCacheMode === 'warm'
      ? 'warm (every phase read its input once before it started)'
      : cacheStates.has('warm')
        ? 'warm (asked for cold, but could not drop the page cache: not root?)'
        : 'dropped before every phase (reads hit the disk)';

  const peersOf = (id: string): { borg?: string; tar?: string; ceiling?: string } => {
    const [ds, phase] = id.split(':') as [string, string];
    if (phase === 'full' || phase === 'full-nofsync') return { borg: `${ds}:borg-full`, tar: `${ds}:tar`, ceiling: `${ds}:ceiling` };
    if (phase === 'incremental') return { borg: `${ds}:borg-incremental` };
    if (phase.startsWith('restore')) return { borg: `${ds}:borg-extract`, tar: `${ds}:tar-extract` };
    return {};
  };
  const comparisons: Comparison[] = [];
  for (const p of phases) {
    if (p.tool !== 'chunkpoint') continue;
    for (const against of Object.values(peersOf(p.id))) {
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
  const targets: Target[] = [
    atLeast('full snapshot vs borg create', ratio('none:full', 'none:borg-full'), TARGET.fullVsBorg),
    atLeast('full snapshot vs tar | lz4 -1', ratio('none:full', 'none:tar'), TARGET.fullVsTar, 'chunkpoint fsyncs every blob, tar | lz4 does not; see the --no-fsync row'),
    atLeast('full snapshot vs compute ceiling', ratio('none:full', 'none:ceiling'), TARGET.fullVsCeiling, 'in-process time; the ceiling does no I/O', true),
    {
      name: 'incremental reads only changed files',
      measured: `read ${formatBytes(incremental.bytesRead)}, changed files ${formatBytes(expectedRead)}`,
      required: 'read = changed',
      met: incremental.bytesRead === expectedRead,
    },
    atLeast('incremental snapshot vs borg incremental', ratio('none:incremental', 'none:borg-incremental'), TARGET.incrementalVsBorg),
    {
      name: 'incremental stores <= fixed-chunk dedupe',
      measured: `${incremental.chunksNew} new chunks, fixed-size dedupe needs ${dedupe.chunks} (${formatBytes(dedupe.bytes)})`,
      required: `<= ${dedupe.chunks} chunks`,
      met: incremental.chunksNew <= dedupe.chunks,
    },
    atLeast('restore from the local store vs borg extract', ratio('none:restore', 'none:borg-extract'), TARGET.restoreVsBorg, 'no cache; chunkpoint fsyncs every restored file, borg extract does not'),
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
    {
      name: 'Snappy full snapshot vs uncompressed',
      measured:
        snappyFull === undefined || plainFull === undefined
          ? 'not measured (--skip-snappy)'
          : `${mbps(snappyFull.bytes, snappyFull.wallMs).toFixed(0)} vs ${mbps(plainFull.bytes, plainFull.wallMs).toFixed(0)} MB/s`,
      required: '>= 1x',
      met: snappyFull === undefined || plainFull === undefined ? undefined : mbps(snappyFull.bytes, snappyFull.wallMs) >= mbps(plainFull.bytes, plainFull.wallMs),
    },
  ];
  const rowTargets: RowTargets = {
    'none:full': { text: '>=3x borg, >=2.2x tar, >=85% ceil', met: targets.slice(0, 3).every((t) => t.met === true) },
    'none:incremental': { text: '>=2x borg, reads changed only', met: targets.slice(3, 6).every((t) => t.met === true) },
    'none:restore': { text: '>=3x borg', met: targets[6]?.met },
    'snappy:full': { text: '>= uncompressed full', met: targets[9]?.met },
  };

  log(`\nResults: ${formatBytes(size)} of records per dataset (${formatBytes(full.bytes)} on disk uncompressed), ${threads} worker threads, ${formatBytes(chunkSize)} chunks, fastest of ${repeat} round${repeat === 1 ? '' : 's'} per phase`);
  log(`page cache: ${cache}; load average at start ${load.map((l) => l.toFixed(1)).join(' ')}${steal === undefined ? '' : `; CPU steal during the run ${(steal * 100).toFixed(0)}%`}`);
  log('MB/s = logical state MB (10^6) / wall time of the whole command (process start included); ratios = chunkpoint speed / other speed;');
  log('"vs ceiling" uses chunkpoint\'s in-process time. chunkpoint fsyncs blobs, metadata and restored files; borg fsyncs its repository, not extracted files; tar | lz4 never fsyncs.\n');
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
        pageCache: pageCacheMode === 'warm' ? 'warm' : cacheStates.has('warm') ? 'warm (drop not allowed)' : 'dropped',
        repeat,
        loadAverageAtStart: load,
        cpuStealShare: steal,
        node: process.version,
        borg: peers.borg ? await versionOf('borg', ['--version']) : undefined,
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

function stealShare(start: number[], end: number[]): number {
  const total = end.reduce((sum, v, i) => sum + v - (start[i] ?? 0), 0);
  // /proc/stat cpu fields: user nice system idle iowait irq softirq steal ...
  const steal = (end[7] ?? 0) - (start[7] ?? 0);
  return total > 0 ? steal / total : 0;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
