/**
 * `chunkpoint stress` (and `npm run stress`): options, the live progress
 * line, the summary, exit codes (0 every invariant held, 1 a violation or a
 * failure to run, 2 usage). Self-contained: the main CLI only dispatches here.
 */
import { randomInt } from 'node:crypto';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { toChunkpointError } from '../errors.js';
import { formatBytes, formatDuration, parseDuration, parseSize } from '../units.js';
import { DEFAULTS, PLANTS, runStress, type Counters, type Plant, type StressOptions, type StressResult } from './harness.js';

export const STRESS_SUMMARY = 'seeded snapshot/restore soak with faults and kills against a store; checks every invariant';

const USAGE = 'chunkpoint stress [--duration 60s] [--seed <n>] [--tasks 4] [--store <dir|s3://bucket/prefix>] [--state-size 4MiB] [options]';

const HELP = `usage: ${USAGE}

${STRESS_SUMMARY}.
Task processes change real RocksDB state and snapshot it into one job each
round; the coordinator commits with retention while gc, restores (cold, warm
and corrupted cache; fresh and stale targets) and verifies run against the
same job, under injected store faults and SIGKILLs. Needs the
'rocksdb-native' package (npm install rocksdb-native). Exit status: 0 every invariant held, 1 a
violation (evidence kept, replay command printed), 2 usage error.

options:
  --duration <time>      how long to keep starting rounds, e.g. 45s, 5m (default 60s)
  --seed <n>             seed of every random choice (default: random, printed first)
  --tasks <n>            task processes (default ${DEFAULTS.tasks})
  --store <location>     a directory or s3://<bucket>/<prefix> (default: a temp directory)
  --state-size <size>    RocksDB state per task (default 4MiB)
  --chunk-size <size>    snapshot chunk size (default 64KiB)
  --threads <n>          worker threads per task process and coordinator (default ${DEFAULTS.threads})
  --retain <n>           checkpoints kept by retention (default ${DEFAULTS.retain})
  --grace <time>         retention's grace period after each commit (default 30s)
  --gc-grace <time>      grace period of the gc actor beside the snapshots (default 0: only leases protect)
  --lease <time>         task sessions' lease (default 10s; the run ends by waiting one out)
  --drop <p>             probability per round of dropping the newest checkpoint while tasks build on it (default ${DEFAULTS.drop})
  --transient <p>        transient fault probability per store operation (default ${DEFAULTS.transient})
  --permanent <p>        permanent fault probability per write/get/delete/list (default ${DEFAULTS.permanent})
  --torn <p>             torn-write probability per blob write, directory stores (default ${DEFAULTS.torn})
  --latency <time>       random store latency up to this per operation (default ${DEFAULTS.maxLatencyMs}ms)
  --kill <p>             SIGKILL probability per task and round (default ${DEFAULTS.kill})
  --gc <p>               probability per round of a gc concurrent with snapshots (default ${DEFAULTS.gc})
  --restores <n>         mean restores per round (default ${DEFAULTS.restores})
  --corrupt-cache <p>    probability that a warm-cache restore first finds a bad entry: a flipped byte, a FIFO,
                         or an entry grown to 100 GiB (default ${DEFAULTS.corruptCache})
  --damage <p>           probability per commit of damaging an older retained checkpoint's metadata; the next
                         commit must live with it, then it is dropped (default ${DEFAULTS.damage})
  --full-cache-dir <dir> a directory on a full (or tiny) volume, used as the cache of some restores
  --no-faults            no store faults, kills or damage (sets the rates above to 0)
  --plant <kind>         plant a violation to see the harness catch it: drop-pack (deletes a pack of a
                         committed checkpoint), drop-old-pack (a pack only an older retained
                         checkpoint references), skip-lease-check (commits after the leases ran out
                         and gc took the packs, without the commit's lease check), lose-fresh-pack
                         (deletes a pack a task just wrote, before its commit)
  --fsync                fsync blobs and metadata (default off: kills do not lose the page cache)
  --keep                 keep the work directory and job root even when the run passes
  --json                 print one JSON object on stdout instead of text
  -h, --help             show this help`;

const OPTIONS = {
  duration: { type: 'string' },
  seed: { type: 'string' },
  tasks: { type: 'string' },
  store: { type: 'string' },
  'state-size': { type: 'string' },
  'chunk-size': { type: 'string' },
  threads: { type: 'string' },
  retain: { type: 'string' },
  grace: { type: 'string' },
  'gc-grace': { type: 'string' },
  lease: { type: 'string' },
  drop: { type: 'string' },
  transient: { type: 'string' },
  permanent: { type: 'string' },
  torn: { type: 'string' },
  latency: { type: 'string' },
  kill: { type: 'string' },
  gc: { type: 'string' },
  restores: { type: 'string' },
  'corrupt-cache': { type: 'string' },
  damage: { type: 'string' },
  'full-cache-dir': { type: 'string' },
  'no-faults': { type: 'boolean', default: false },
  plant: { type: 'string' },
  keep: { type: 'boolean', default: false },
  fsync: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

class UsageError extends Error {}

function wholeNumber(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`${what} '${text}' is not a whole number from ${min} to ${max}`);
  return Number(text);
}

function probability(text: string, what: string): number {
  const p = Number(text);
  if (text.trim() === '' || !(p >= 0 && p <= 1)) throw new UsageError(`${what} '${text}' is not a probability from 0 to 1`);
  return p;
}

function usageValue<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

export function parseStressArgs(argv: string[]): { options: StressOptions; json: boolean; replay: string[] } | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const options: StressOptions = {
    ...DEFAULTS,
    durationMs: v.duration === undefined ? 60_000 : usageValue(() => parseDuration(v.duration as string, '--duration')),
    seed: v.seed === undefined ? randomInt(2 ** 32) : wholeNumber(v.seed, '--seed', 0, 2 ** 32 - 1),
  };
  // Every option that shapes the run goes into the replay command, seed first.
  const replay = ['--seed', String(options.seed), '--duration', v.duration ?? '60s'];
  const take = (name: keyof typeof OPTIONS, apply: (text: string) => void): void => {
    const text = v[name];
    if (typeof text !== 'string') return;
    apply(text);
    replay.push(`--${name}`, text);
  };
  take('tasks', (t) => (options.tasks = wholeNumber(t, '--tasks', 1, 64)));
  take('store', (t) => (options.store = t));
  take('state-size', (t) => (options.stateBytes = usageValue(() => parseSize(t, '--state-size'))));
  take('chunk-size', (t) => (options.chunkSize = usageValue(() => parseSize(t, '--chunk-size'))));
  take('threads', (t) => (options.threads = wholeNumber(t, '--threads', 1, 256)));
  take('retain', (t) => (options.retain = wholeNumber(t, '--retain', 1, 1000)));
  take('grace', (t) => (options.graceMs = t === '0' ? 0 : usageValue(() => parseDuration(t, '--grace'))));
  take('gc-grace', (t) => (options.gcGraceMs = t === '0' ? 0 : usageValue(() => parseDuration(t, '--gc-grace'))));
  take('lease', (t) => (options.leaseMs = usageValue(() => parseDuration(t, '--lease'))));
  take('drop', (t) => (options.drop = probability(t, '--drop')));
  if (v['no-faults']) {
    Object.assign(options, { transient: 0, permanent: 0, torn: 0, maxLatencyMs: 0, kill: 0, corruptCache: 0, damage: 0 });
    replay.push('--no-faults');
  }
  take('transient', (t) => (options.transient = probability(t, '--transient')));
  take('permanent', (t) => (options.permanent = probability(t, '--permanent')));
  take('torn', (t) => (options.torn = probability(t, '--torn')));
  take('latency', (t) => (options.maxLatencyMs = t === '0' ? 0 : usageValue(() => parseDuration(t, '--latency'))));
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
  if (v.fsync) {
    options.durable = true;
    replay.push('--fsync');
  }
  if (v.keep) options.keep = true;
  return { options, json: v.json, replay };
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

/** Runs `chunkpoint stress <argv>`; resolves to the exit code. */
export async function stressMain(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process): Promise<number> {
  let parsed;
  try {
    parsed = parseStressArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`chunkpoint: usage: ${error.message}\n${USAGE}\nrun 'chunkpoint stress --help' for the options\n`);
    return 2;
  }
  if (parsed === 'help') {
    io.stdout.write(`${HELP}\n`);
    return 0;
  }
  const { options, json } = parsed;
  const replay = `chunkpoint stress ${parsed.replay.join(' ')}   (or: npm run stress -- ${parsed.replay.join(' ')})`;
  // The seed comes first, before anything can go wrong; with --json stdout holds only the JSON object.
  (json ? io.stderr : io.stdout).write(`chunkpoint stress: seed ${options.seed}; replay: ${replay}\n`);
  const tty = !json && (io.stderr as { isTTY?: boolean }).isTTY === true;
  let shown = false;
  try {
    const result = await runStress(
      options,
      tty
        ? {
            progress: (c, elapsed) => {
              io.stderr.write(`\r\x1b[K${progressLine(c, elapsed, options.durationMs)}`);
              shown = true;
            },
          }
        : {},
    );
    if (shown) io.stderr.write('\r\x1b[K');
    if (json) io.stdout.write(`${JSON.stringify({ ...result, ...(result.ok ? {} : { replay }) })}\n`);
    else io.stdout.write(`${summary(result, replay).join('\n')}\n`);
    if (!result.ok) io.stderr.write(`chunkpoint: STRESS_VIOLATION: invariant '${result.violation?.invariant ?? '?'}' violated (seed ${options.seed}); evidence kept in ${result.workDir}\n`);
    return result.ok ? 0 : 1;
  } catch (error) {
    if (shown) io.stderr.write('\r\x1b[K');
    const e = toChunkpointError(error);
    io.stderr.write(`chunkpoint: ${e.code}: ${e.message}\n`);
    return 1;
  }
}
