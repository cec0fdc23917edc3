/**
 * `chunkpoint stress` (and `npm run stress`): a seeded soak of snapshots,
 * commits, restores, gc and verifies under injected faults and kills; exit
 * status 0 when every invariant held, 1 on a violation. The harness is
 * loaded only when the command runs: the options and their defaults are
 * all the command table needs.
 */
import { randomInt } from 'node:crypto';
import { resolve } from 'node:path';
import type { Counters, StressResult } from '../../sim/report.js';
import { DEFAULTS, PLANTS, type Plant, type StressOptions } from '../../sim/options.js';
import { formatBytes, formatDuration, parseDuration, parseSize } from '../units.js';
import { UsageError, type Command, type Parsed } from './command.js';
import { COMMON } from './options.js';

export const stress: Command = {
  summary: 'seeded snapshot/restore soak with faults and kills against a store; checks every invariant',
  usage: 'chunkpoint stress [--duration 60s] [--seed <n>] [--tasks 4] [--store <dir|s3://bucket/prefix>] [--state-size 4MiB] [options]',
  description: `Task processes change real RocksDB state and snapshot it into one job each
round; the coordinator commits with retention while gc, restores (cold, warm
and corrupted cache; fresh and stale targets) and verifies run against the
same job, under injected store faults and SIGKILLs. Needs the 'rocksdb-native'
package (npm install rocksdb-native). Exit status: 0 every invariant held,
1 a violation (evidence kept, replay command printed), 2 usage error.`,
  options: {
    duration: { type: 'string', arg: '<time>', help: 'how long to keep starting rounds, e.g. 45s, 5m', default: '60s' },
    seed: { type: 'string', arg: '<n>', help: 'seed of every random choice', default: 'random, printed first' },
    tasks: { type: 'string', arg: '<n>', help: 'task processes', default: String(DEFAULTS.tasks) },
    store: { type: 'string', arg: '<location>', help: 'a directory or s3://<bucket>/<prefix>', default: 'a temp directory' },
    'state-size': { type: 'string', arg: '<size>', help: 'RocksDB state per task', default: '4MiB' },
    'chunk-size': { type: 'string', arg: '<size>', help: 'snapshot chunk size', default: '64KiB' },
    retain: { type: 'string', arg: '<n>', help: 'checkpoints kept by retention', default: String(DEFAULTS.retain) },
    grace: { type: 'string', arg: '<time>', help: "retention's grace period after each commit", default: '30s' },
    'gc-grace': { type: 'string', arg: '<time>', help: 'grace period of the gc actor beside the snapshots', default: '0: only leases protect' },
    lease: { type: 'string', arg: '<time>', help: "task sessions' lease (the run ends by waiting one out)", default: '10s' },
    drop: { type: 'string', arg: '<p>', help: 'probability per round of dropping the newest checkpoint while tasks build on it', default: String(DEFAULTS.drop) },
    transient: { type: 'string', arg: '<p>', help: 'transient fault probability per store operation', default: String(DEFAULTS.transient) },
    permanent: { type: 'string', arg: '<p>', help: 'permanent fault probability per write/get/delete/list', default: String(DEFAULTS.permanent) },
    torn: { type: 'string', arg: '<p>', help: 'torn-write probability per blob write, directory stores', default: String(DEFAULTS.torn) },
    latency: { type: 'string', arg: '<time>', help: 'random store latency up to this per operation', default: `${DEFAULTS.maxLatencyMs}ms` },
    kill: { type: 'string', arg: '<p>', help: 'SIGKILL probability per task and round', default: String(DEFAULTS.kill) },
    gc: { type: 'string', arg: '<p>', help: 'probability per round of a gc concurrent with snapshots', default: String(DEFAULTS.gc) },
    restores: { type: 'string', arg: '<n>', help: 'mean restores per round', default: String(DEFAULTS.restores) },
    'corrupt-cache': {
      type: 'string',
      arg: '<p>',
      help: 'probability that a warm-cache restore first finds a bad entry: a flipped byte, a FIFO, or an entry grown to 100 GiB',
      default: String(DEFAULTS.corruptCache),
    },
    damage: {
      type: 'string',
      arg: '<p>',
      help: "probability per commit of damaging an older retained checkpoint's metadata; the next commit must live with it, then it is dropped",
      default: String(DEFAULTS.damage),
    },
    'full-cache-dir': { type: 'string', arg: '<dir>', help: 'a directory on a full (or tiny) volume, used as the cache of some restores', default: 'none' },
    'no-faults': { type: 'boolean', help: 'no store faults, kills or damage (sets the rates above to 0)', default: 'off' },
    plant: {
      type: 'string',
      arg: '<kind>',
      help:
        'plant a violation to see the harness catch it: drop-pack (deletes a pack of a committed checkpoint), drop-old-pack (a pack only an older retained checkpoint references), ' +
        'skip-lease-check (commits after the leases ran out and gc took the packs, without the commit\'s lease check), lose-fresh-pack (deletes a pack a task just wrote, before its commit)',
      default: 'none',
    },
    fsync: { type: 'boolean', help: 'fsync blobs and metadata', default: 'off: kills do not lose the page cache' },
    keep: { type: 'boolean', help: 'keep the work directory and job root even when the run passes', default: 'off' },
    ...COMMON,
    threads: { ...COMMON.threads, help: 'worker threads per task process and coordinator', default: String(DEFAULTS.threads) },
    'no-progress': { ...COMMON['no-progress'], help: 'no live status line on stderr', default: 'a status line when stderr is a terminal' },
  },
  async run(args, out) {
    if (args.positionals.length > 0) throw new UsageError(`stress takes no positional arguments, got '${args.positionals[0] ?? ''}'`);
    const { options, replay } = stressOptions(args);
    const command = `chunkpoint stress ${replay.join(' ')}   (or: npm run stress -- ${replay.join(' ')})`;
    // The seed comes first, before anything can go wrong.
    out.announce(`chunkpoint stress: seed ${options.seed}; replay: ${command}`);
    const { runStress } = await import('../../sim/scenario.js');
    const status = out.status;
    const result = await runStress(options, status === undefined ? {} : { progress: (c, elapsedMs) => status(progressLine(c, elapsedMs, options.durationMs)) });
    if (out.json) out.emit({ ...result, ...(result.ok ? {} : { replay: command }) });
    else for (const line of summary(result, command)) out.print(line);
    if (result.ok) return;
    out.fail('STRESS_VIOLATION', `invariant '${result.violation?.invariant ?? '?'}' violated (seed ${options.seed}); evidence kept in ${result.workDir}`);
    return 1;
  },
};

function wholeNumber(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`${what} '${text}' is not a whole number from ${min} to ${max}`);
  return Number(text);
}

function probability(text: string, what: string): number {
  const p = Number(text);
  if (text.trim() === '' || !(p >= 0 && p <= 1)) throw new UsageError(`${what} '${text}' is not a probability from 0 to 1`);
  return p;
}

/** A size or duration that does not parse is a usage error here: the run has not started, nothing was touched. */
function usageValue<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** The run's options, and the arguments that replay it (every option that shapes the run, seed first). */
function stressOptions(args: Parsed): { options: StressOptions; replay: string[] } {
  const v = args.values;
  const text = (name: string): string | undefined => {
    const value = v[name];
    return typeof value === 'string' ? value : undefined;
  };
  const duration = text('duration');
  const seed = text('seed');
  const options: StressOptions = {
    ...DEFAULTS,
    durationMs: duration === undefined ? 60_000 : usageValue(() => parseDuration(duration, '--duration')),
    seed: seed === undefined ? randomInt(2 ** 32) : wholeNumber(seed, '--seed', 0, 2 ** 32 - 1),
  };
  const replay = ['--seed', String(options.seed), '--duration', duration ?? '60s'];
  const take = (name: string, apply: (t: string) => void): void => {
    const t = text(name);
    if (t === undefined) return;
    apply(t);
    replay.push(`--${name}`, t);
  };
  take('tasks', (t) => (options.tasks = wholeNumber(t, '--tasks', 1, 64)));
  take('store', (t) => (options.store = t));
  take('state-size', (t) => (options.stateBytes = usageValue(() => parseSize(t, '--state-size'))));
  take('chunk-size', (t) => (options.chunkSize = usageValue(() => parseSize(t, '--chunk-size'))));
  take('threads', (t) => (options.threads = wholeNumber(t, '--threads', 1, 256)));
  take('retain', (t) => (options.retain = wholeNumber(t, '--retain', 1, 1000)));
  take('grace', (t) => (options.graceMs = usageValue(() => parseDuration(t, '--grace', { allowZero: true }))));
  take('gc-grace', (t) => (options.gcGraceMs = usageValue(() => parseDuration(t, '--gc-grace', { allowZero: true }))));
  take('lease', (t) => (options.leaseMs = usageValue(() => parseDuration(t, '--lease'))));
  take('drop', (t) => (options.drop = probability(t, '--drop')));
  if (v['no-faults'] === true) {
    Object.assign(options, { transient: 0, permanent: 0, torn: 0, maxLatencyMs: 0, kill: 0, corruptCache: 0, damage: 0 });
    replay.push('--no-faults');
  }
  take('transient', (t) => (options.transient = probability(t, '--transient')));
  take('permanent', (t) => (options.permanent = probability(t, '--permanent')));
  take('torn', (t) => (options.torn = probability(t, '--torn')));
  take('latency', (t) => (options.maxLatencyMs = usageValue(() => parseDuration(t, '--latency', { allowZero: true }))));
  take('kill', (t) => (options.kill = probability(t, '--kill')));
  take('gc', (t) => (options.gc = probability(t, '--gc')));
  take('restores', (t) => {
    options.restores = Number(t);
    if (!(options.restores >= 0 && options.restores <= 100)) throw new UsageError(`--restores '${t}' is not a number from 0 to 100`);
  });
  take('corrupt-cache', (t) => (options.corruptCache = probability(t, '--corrupt-cache')));
  take('damage', (t) => (options.damage = probability(t, '--damage')));
  take('full-cache-dir', (t) => (options.fullCacheDir = resolve(t)));
  take('plant', (t) => {
    if (!(PLANTS as readonly string[]).includes(t)) throw new UsageError(`--plant '${t}' is not one of: ${PLANTS.join(', ')}`);
    options.plant = t as Plant;
  });
  if (v['fsync'] === true) {
    options.durable = true;
    replay.push('--fsync');
  }
  if (v['keep'] === true) options.keep = true;
  return { options, replay };
}

function progressLine(c: Counters, elapsedMs: number, totalMs: number): string {
  return `[${formatDuration(elapsedMs)} / ${formatDuration(totalMs)}] round ${c.rounds}, ${c.checkpointsCommitted} committed, ${c.restoresVerified} restores verified, ${c.kills} kills, ${c.faultsTransient + c.faultsPermanent + c.faultsTorn} faults`;
}

function summary(r: StressResult, replay: string): string[] {
  const c = r.counters;
  const lines: string[] = [];
  if (r.ok) lines.push(`stress: PASSED, every invariant held (seed ${r.seed}, ${formatDuration(r.durationMs)}, store ${r.store})`);
  else lines.push(`stress: FAILED, invariant '${r.violation?.invariant ?? '?'}' violated in round ${r.violation?.round ?? '?'} (seed ${r.seed})`, `  ${r.violation?.message ?? ''}`);
  const rows: [string, string][] = [
    ['rounds', `${c.rounds} (${c.roundsNotCommitted} not committed: a task was killed or failed)`],
    ['checkpoints committed', `${c.checkpointsCommitted}${c.committedDespiteError > 0 ? ` (${c.committedDespiteError} despite a failure after the commit point)` : ''}`],
    [
      'restores verified',
      `${c.restoresVerified} (${c.restoresNoCache} no cache, ${c.restoresColdCache} cold, ${c.restoresWarmCache} warm of which ${c.restoresCorruptedCache} with a bad entry, ${c.restoresFullCache} on a full volume; ${c.restoresStaleTarget} into stale targets; ${c.cacheEntriesDropped} bad cache entries dropped)`,
    ],
    ['verifies', `${c.verifies} checkpoint verifications (every pack's presence and size; all chunks of each new checkpoint, a sample of the older ones)`],
    ['gc runs', `${c.gcRuns} (${c.gcFailed} more failed on injected faults, ${c.gcRefused} refused beside a damaged checkpoint), ${c.drops} newest checkpoints dropped under running tasks`],
    ['damaged checkpoints', `${c.checkpointsDamaged} older checkpoints damaged, lived with by the next commit, then dropped`],
    ['kills', `${c.kills} task processes SIGKILLed`],
    ['injected faults', `${c.faultsTransient} transient, ${c.faultsPermanent} permanent, ${c.faultsTorn} torn writes, ${c.cacheCorruptions} corrupted cache entries`],
    ['expected failures', `${c.taskSnapshotsFailed} task snapshots, ${c.commitsFailed} commits (injected faults); ${c.commitsRefused} commits refused as documented`],
    ['space', `${formatBytes(r.storedBytes)} of packs for ${formatBytes(r.liveBytes)} of live chunks at the end (${r.spaceAmplification.toFixed(2)}x)`],
    ['bytes', `${formatBytes(c.bytesWritten)} written, ${formatBytes(c.bytesRead)} read, ${formatBytes(c.bytesSnapshotted)} of state snapshotted`],
    ['throughput', `snapshot ${r.snapshotMBps.toFixed(1)} MB/s of state, restore ${r.restoreMBps.toFixed(1)} MB/s`],
  ];
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(22)} ${v}`);
  if (r.evidenceKept) lines.push(`  evidence               work dir ${r.workDir}, job root ${r.jobRoot}, log ${r.log}`);
  if (!r.ok) lines.push(`  replay                 ${replay}`);
  return lines;
}
