/**
 * The `chunkpoint` command line. Exit codes: 0 success, 1 failure (one line
 * `chunkpoint: <CODE>: …` on stderr), 2 usage error.
 */
import { readFileSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Chunkpoint } from './chunkpoint.js';
import type { CheckpointLocator } from './checkpoint.js';
import { ChunkpointError, InvalidInputError, errnoOf, toChunkpointError } from './errors.js';
import type { TaskSnapshot } from './format/metadata.js';
import type { CheckpointReport, CheckpointSummary } from './inspect.js';
import type { RestoreResult } from './restore/index.js';
import type { VerifyOptions, VerifyResult } from './verify.js';
import type { SnapshotOptions, SnapshotResult } from './snapshot/index.js';
import { formatBytes, formatDate, formatDuration, formatRatio, formatUtcOffset, parseDuration, parseSize } from './units.js';
import { renderPairs, renderTable } from './table.js';
import { ProgressBar } from './progress-bar.js';
import type { EventListener } from './events.js';
import type { CacheOptions } from './cache.js';
import { DEFAULT_TASK } from './format/names.js';

class UsageError extends Error {}

/**
 * One option: how parseArgs reads it and how --help shows it. Help is
 * generated from this table, so no option can be accepted without being
 * listed with its default.
 */
interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** Value placeholder shown in help, e.g. `<size>`. */
  arg?: string;
  help: string;
  /** What applies when the option is absent: shown as `(default …)`; `required` for mandatory ones. */
  default: string;
}

type Specs = Record<string, OptionSpec>;

const COMMON: Specs = {
  threads: { type: 'string', arg: '<n>', help: 'worker threads', default: 'available cores' },
  json: { type: 'boolean', help: 'print one JSON object on stdout instead of text, and no progress bar', default: 'off' },
  'no-progress': { type: 'boolean', help: 'no progress bar on stderr', default: 'a bar when stderr is a terminal' },
  verbose: { type: 'boolean', help: 'print stack traces with errors', default: 'off' },
  help: { type: 'boolean', short: 'h', help: 'show this help', default: 'off' },
};
const STORE: OptionSpec = { type: 'string', arg: '<location>', help: 'store: a directory (created if missing) or s3://<bucket>/<prefix>', default: 'required' };
const JOB_ID: OptionSpec = { type: 'string', arg: '<jobId>', help: 'job id: letters, digits, . _ -', default: 'required' };
const JOB: Specs = { store: STORE, job: JOB_ID };
/** Commands that take a checkpoint either by path or by store + job. */
const CHECKPOINT_BY_JOB: Specs = {
  store: { ...STORE, help: 'store, with --job, instead of <checkpointDir>', default: 'none' },
  job: { ...JOB_ID, help: 'job id, with --store', default: 'none' },
  checkpoint: { type: 'string', arg: '<n>', help: 'checkpoint number or "latest", with --store/--job', default: 'latest' },
};
const RETENTION: Specs = {
  retain: { type: 'string', arg: '<n>', help: 'keep the newest n checkpoints, remove older ones this job wrote', default: '3' },
  grace: { type: 'string', arg: '<time>', help: 'never delete unreferenced packs younger than this (by the time in their name), e.g. 10m, 2h; 0 for none', default: '1h' },
  claim: { type: 'boolean', help: 'let retention remove checkpoints written under other job ids', default: 'off' },
  'drop-task': { type: 'string', multiple: true, arg: '<id>', help: 'commit without this task of the previous checkpoint: it is gone for good', default: 'refuse a commit lacking a task' },
};
const CACHE: Specs = {
  cache: { type: 'string', arg: '<dir>', help: 'local cache directory', default: 'none' },
  'cache-max-bytes': { type: 'string', arg: '<size>', help: 'size cap of the cache, e.g. 20GiB; least recently used entries go first', default: 'unlimited' },
};
const NO_FSYNC: OptionSpec = { type: 'boolean', help: 'do not fsync what is written, faster but not crash-safe', default: 'fsync' };
const LIMIT_RATE: OptionSpec = { type: 'string', arg: '<size>', help: 'limit store reads and writes to this many bytes per second, e.g. 50MiB', default: 'no limit' };

interface Command {
  summary: string;
  usage: string;
  /** Positional arguments for help: [name, meaning]. */
  positionals?: [string, string][];
  options: Specs;
  /** Resolves to the exit code when it is not 0 (a report was printed, but it reports a failure). */
  run(args: Parsed, out: Output): Promise<void | number>;
}

interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

interface Output {
  json: boolean;
  print(line: string): void;
  emit(value: unknown): void;
  /** The one stderr line of a command that printed its report but failed. */
  fail(code: string, message: string): void;
  /** Receives the API's events (drives the progress bar), when anyone listens. */
  onEvent?: EventListener;
}

const COMMANDS: Record<string, Command> = {
  snapshot: {
    summary: 'snapshot a state directory as the next checkpoint of a job',
    usage: 'chunkpoint snapshot <stateDir> --store <dir> --job <jobId> [options]',
    positionals: [['<stateDir>', 'the directory to snapshot (e.g. a RocksDB checkpoint)']],
    options: {
      ...JOB,
      task: { type: 'string', arg: '<id>', help: 'task id of this state directory within the job', default: 'main' },
      'task-snapshot': { type: 'string', arg: '<file>', help: "do not commit: write this task's snapshot (JSON) to <file> for 'chunkpoint commit'", default: 'commit' },
      'chunk-size': { type: 'string', arg: '<size>', help: 'chunk size, e.g. 512KiB, 4MiB', default: '1MiB' },
      'pack-size': { type: 'string', arg: '<size>', help: 'at most this many bytes of chunks per pack object, e.g. 64MiB', default: '32MiB' },
      lease: { type: 'string', arg: '<time>', help: "the snapshot session's lease, renewed while it runs; commit a task snapshot within it", default: '10m' },
      'limit-rate': LIMIT_RATE,
      immutable: { type: 'string', multiple: true, arg: '<glob>', help: 'basename glob of files never rewritten in place', default: '*.sst, *.blob' },
      'no-fsync': NO_FSYNC,
      cache: { ...CACHE['cache'], help: 'also put every blob written into this local cache' } as OptionSpec,
      'cache-max-bytes': CACHE['cache-max-bytes'] as OptionSpec,
      'local-copy': { type: 'string', arg: '<dir>', help: "keep the snapshotted files here for 'restore --local-copy' on this machine (hard links: put it on the state's volume)", default: 'none' },
      ...RETENTION,
      ...COMMON,
    },
    async run(args, out) {
      const [stateDir, extra] = args.positionals;
      if (stateDir === undefined || extra !== undefined) throw new UsageError('snapshot takes exactly one <stateDir>');
      const job = requireJob(args);
      const options: SnapshotOptions = { durable: args.values['no-fsync'] !== true };
      const chunkSize = args.values['chunk-size'];
      if (typeof chunkSize === 'string') options.chunkSize = parseSize(chunkSize, '--chunk-size');
      const packSize = args.values['pack-size'];
      if (typeof packSize === 'string') options.packSize = parseSize(packSize, '--pack-size');
      const lease = args.values['lease'];
      if (typeof lease === 'string') options.leaseMs = parseDuration(lease, '--lease');
      const limitRate = rateOption(args);
      const immutable = args.values['immutable'];
      if (Array.isArray(immutable)) options.immutable = immutable;
      const cache = cacheOptions(args);
      if (cache !== undefined) options.cache = cache;
      const localCopy = args.values['local-copy'];
      if (typeof localCopy === 'string') options.localCopy = { dir: localCopy };
      const task = args.values['task'];
      const taskFile = args.values['task-snapshot'];
      if (typeof taskFile === 'string') {
        // One task of a multi-task job: the coordinator commits later.
        if (typeof task !== 'string') throw new UsageError('--task-snapshot needs --task <id>');
        for (const name of ['retain', 'grace', 'claim', 'drop-task'] as const) {
          if (args.values[name] !== undefined && args.values[name] !== false) throw new UsageError(`--${name} goes with the commit, not with --task-snapshot`);
        }
        const unwritable = (error: unknown): InvalidInputError =>
          new InvalidInputError('OUTPUT_NOT_WRITABLE', `cannot write the task snapshot to ${taskFile} (${errnoOf(error) ?? String(error)}); pass a new file path`, { cause: error });
        // The output file is claimed before anything is read or uploaded: a bad path fails at once, not after the upload.
        const output = await open(taskFile, 'wx').catch((error: unknown) => {
          throw unwritable(error);
        });
        let part: TaskSnapshot;
        try {
          part = await withChunkpoint(args, out, (cp) => cp.snapshotTask(stateDir, { ...job, task }, { ...options, ...limitRate }));
          await output.writeFile(`${JSON.stringify(part)}\n`).catch((error: unknown) => {
            throw unwritable(error);
          });
          await output.close();
        } catch (error) {
          await output.close().catch(() => undefined);
          await rm(taskFile, { force: true });
          throw error;
        }
        if (out.json) out.emit({ task, taskSnapshot: taskFile, ...part.figures });
        else out.print(`task '${task}' snapshot written to ${taskFile}: ${part.figures.files} files, ${formatBytes(part.figures.bytesRead)} read, ${formatBytes(part.figures.bytesWritten)} written; commit it with 'chunkpoint commit' before ${part.expiresAt} (its lease)`);
        return;
      }
      if (typeof task === 'string') options.task = task;
      Object.assign(options, lifecycleOptions(args));
      const result = await withChunkpoint(args, out, (cp) => cp.snapshot(stateDir, job, { ...options, ...limitRate }));
      if (out.json) out.emit(result);
      else printSnapshot(result, `${job.store}/${job.job}`, out);
    },
  },
  commit: {
    summary: "commit the next checkpoint of a job from its tasks' snapshots (multi-task jobs)",
    usage: 'chunkpoint commit --store <dir> --job <jobId> <taskSnapshot.json>... [options]',
    positionals: [['<taskSnapshot.json>...', "files written by 'chunkpoint snapshot --task <id> --task-snapshot <file>', one per task"]],
    options: { ...JOB, ...RETENTION, ...COMMON },
    async run(args, out) {
      if (args.positionals.length === 0) throw new UsageError('commit needs at least one <taskSnapshot.json>');
      const job = requireJob(args);
      const parts: TaskSnapshot[] = [];
      for (const file of args.positionals) {
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch (error) {
          throw new InvalidInputError('TASK_SNAPSHOT_UNREADABLE', `cannot read task snapshot ${file} (${errnoOf(error) ?? String(error)}); check the path`, { cause: error });
        }
        try {
          // Validated in full by the commit; here only the syntax.
          parts.push(JSON.parse(text) as TaskSnapshot);
        } catch (error) {
          throw new InvalidInputError('INVALID_TASK_SNAPSHOT', `task snapshot ${file} is not JSON (${error instanceof Error ? error.message : String(error)}); pass the file 'snapshot --task-snapshot' wrote`, { cause: error });
        }
      }
      const result = await withChunkpoint(args, out, (cp) => cp.commit(job, parts, lifecycleOptions(args)));
      if (out.json) out.emit(result);
      else printSnapshot(result, `${job.store}/${job.job}`, out);
    },
  },
  restore: {
    summary: 'restore a committed checkpoint into a directory',
    usage: 'chunkpoint restore <checkpointDir> <targetDir> [options]\n       chunkpoint restore --store <dir> --job <jobId> [--checkpoint <n>|latest] <targetDir> [options]',
    positionals: [
      ['<checkpointDir>', 'a chk-<n> directory wherever its job root now is, or s3://<bucket>/<prefix>/<jobId>/chk-<n>'],
      ['<targetDir>', 'where to restore: a new or empty directory (see --overwrite, --keep-matching)'],
    ],
    options: {
      ...CHECKPOINT_BY_JOB,
      task: { type: 'string', arg: '<id>', help: 'the task to restore; required when the checkpoint has several', default: 'the only task' },
      overwrite: { type: 'boolean', help: 'replace the contents of a non-empty target', default: 'refuse a non-empty target' },
      'keep-matching': { type: 'boolean', help: 'restore in place: keep target files that verify, fetch only the rest', default: 'off' },
      'preserve-setid': { type: 'boolean', help: 'restore set-user-ID and set-group-ID bits (dropped by default)', default: 'off' },
      cache: { ...CACHE['cache'], help: 'local cache: read chunks from it first, add fetched ones' } as OptionSpec,
      'cache-max-bytes': CACHE['cache-max-bytes'] as OptionSpec,
      'cache-ttl': { type: 'string', arg: '<time>', help: 'evict cache entries unused for this long, e.g. 7d', default: 'never' },
      'local-copy': { type: 'string', arg: '<dir>', help: "take files from the task-local copy 'snapshot --local-copy' kept here, when proven unchanged", default: 'none' },
      'no-fsync': { ...NO_FSYNC, help: 'do not fsync restored files, faster but not crash-safe' },
      'limit-rate': LIMIT_RATE,
      ...COMMON,
    },
    async run(args, out) {
      const { locator, rest } = checkpointArgs(args, 'restore');
      const [target, extra] = rest;
      if (target === undefined || extra !== undefined) throw new UsageError('restore needs exactly one <targetDir>');
      const cache = cacheOptions(args);
      const result = await withChunkpoint(args, out, (cp) =>
        cp.restore(locator, target, {
          overwrite: args.values['overwrite'] === true,
          keepMatching: args.values['keep-matching'] === true,
          durable: args.values['no-fsync'] !== true,
          preserveSetid: args.values['preserve-setid'] === true,
          ...(cache === undefined ? {} : { cache }),
          ...(typeof args.values['local-copy'] === 'string' ? { localCopy: { dir: args.values['local-copy'] } } : {}),
          ...(typeof args.values['task'] === 'string' ? { task: args.values['task'] } : {}),
          ...rateOption(args),
        }),
      );
      if (out.json) out.emit(result);
      else printRestore(result, target, out);
    },
  },
  list: {
    summary: 'list the committed checkpoints of a job',
    usage: 'chunkpoint list --store <dir> --job <jobId> [options]',
    options: { ...JOB, ...COMMON },
    async run(args, out) {
      if (args.positionals.length > 0) throw new UsageError('list takes no positional arguments');
      const job = requireJob(args);
      const checkpoints = await withChunkpoint(args, out, (cp) => cp.list(job));
      if (out.json) out.emit({ store: job.store, job: job.job, checkpoints });
      else printList(checkpoints, out);
    },
  },
  inspect: {
    summary: 'show the files, chunks and sizes of a checkpoint',
    usage: 'chunkpoint inspect <checkpointDir> [options]\n       chunkpoint inspect --store <dir> --job <jobId> [--checkpoint <n>|latest] [options]',
    positionals: [['<checkpointDir>', 'a chk-<n> directory, or s3://<bucket>/<prefix>/<jobId>/chk-<n> (or use --store/--job)']],
    options: { ...CHECKPOINT_BY_JOB, ...COMMON },
    async run(args, out) {
      const { locator, rest } = checkpointArgs(args, 'inspect');
      if (rest.length > 0) throw new UsageError(`inspect got an unexpected argument '${rest[0] ?? ''}'`);
      const result = await withChunkpoint(args, out, (cp) => cp.inspect(locator));
      if (out.json) out.emit(result);
      else printReport(result, out);
    },
  },
  verify: {
    summary: 'scrub a checkpoint: check every pack it references is there whole, read every chunk (or a sample), report every problem',
    usage: 'chunkpoint verify <checkpointDir> [--sample <fraction>] [options]\n       chunkpoint verify --store <dir> --job <jobId> [--checkpoint <n>|latest] [--sample <fraction>] [options]',
    positionals: [['<checkpointDir>', 'a chk-<n> directory, or s3://<bucket>/<prefix>/<jobId>/chk-<n> (or use --store/--job)']],
    options: {
      ...CHECKPOINT_BY_JOB,
      sample: { type: 'string', arg: '<fraction>', help: 'check this fraction of the blobs, e.g. 0.1 or 10%', default: 'all blobs' },
      'sample-seed': { type: 'string', arg: '<n>', help: 'pick the same sample again', default: 'random, printed' },
      'limit-rate': LIMIT_RATE,
      ...COMMON,
    },
    async run(args, out) {
      const { locator, rest } = checkpointArgs(args, 'verify');
      if (rest.length > 0) throw new UsageError(`verify got an unexpected argument '${rest[0] ?? ''}'`);
      const options: VerifyOptions = {};
      const sample = args.values['sample'];
      if (typeof sample === 'string') {
        const fraction = sample.endsWith('%') ? Number(sample.slice(0, -1)) / 100 : Number(sample);
        if (!(fraction > 0 && fraction <= 1)) throw new UsageError(`--sample '${sample}' is not a fraction in (0, 1] such as 0.1 or 10%`);
        options.sample = fraction;
      }
      const seed = args.values['sample-seed'];
      if (typeof seed === 'string') {
        if (!/^\d{1,10}$/.test(seed) || Number(seed) >= 2 ** 32) throw new UsageError(`--sample-seed '${seed}' is not a whole number below 2^32`);
        options.sampleSeed = Number(seed);
      }
      const result = await withChunkpoint(args, out, (cp) => cp.verify(locator, { ...options, ...rateOption(args) }));
      if (out.json) out.emit(result);
      else printVerify(result, out);
      if (result.ok) return;
      out.fail('CHECKPOINT_DAMAGED', `${result.checkpoint} of ${result.location} has ${result.problems.length} problem(s); restore an older checkpoint or repair the store`);
      return 1;
    },
  },
  gc: {
    summary: 'delete what no checkpoint references (crashed snapshots, temp files, old checkpoints)',
    usage: 'chunkpoint gc --store <dir> --job <jobId> [--grace <time>] [--retain <n>] [--dry-run] [options]',
    options: {
      ...JOB,
      grace: { ...RETENTION['grace'], help: 'never delete objects younger than this, e.g. 10m' } as OptionSpec,
      retain: { ...RETENTION['retain'], help: 'also remove checkpoints beyond the newest n', default: 'keep all' } as OptionSpec,
      claim: { ...RETENTION['claim'], help: 'also remove checkpoints written under other job ids' } as OptionSpec,
      'dry-run': { type: 'boolean', help: 'report what would be removed, remove nothing', default: 'off' },
      ...COMMON,
    },
    async run(args, out) {
      if (args.positionals.length > 0) throw new UsageError('gc takes no positional arguments');
      const job = requireJob(args);
      const result = await withChunkpoint(args, out, (cp) => cp.gc(job, { ...lifecycleOptions(args), dryRun: args.values['dry-run'] === true }));
      if (out.json) out.emit(result);
      else {
        const verb = result.dryRun ? 'would remove' : 'removed';
        out.print(
          `gc ${verb} ${result.packsRemoved} packs, ${result.manifestsRemoved} manifests, ${result.sessionsRemoved} dead sessions and ${result.incompleteRemoved} interrupted writes (${formatBytes(result.bytesFreed)}) in ${formatDuration(result.durationMs)}`,
        );
        if (result.checkpointsRemoved.length > 0) out.print(`  checkpoints ${verb}: ${result.checkpointsRemoved.join(', ')}`);
        out.print(
          `  kept ${result.checkpointsKept} checkpoints${result.checkpointsNotOwned > 0 ? ` (${result.checkpointsNotOwned} written by other jobs, not claimed)` : ''}; of the unreferenced objects, ${result.liveKept} belong to snapshots in flight and ${result.youngKept} are younger than the grace period`,
        );
        if (result.unknownObjects > 0) out.print(`  left alone: ${result.unknownObjects} objects that are not chunkpoint's (e.g. ${result.unknownExamples.join(', ')})`);
      }
    },
  },
  drop: {
    summary: 'remove one checkpoint explicitly, e.g. a damaged one (gc frees what only it referenced)',
    usage: 'chunkpoint drop --store <dir> --job <jobId> --checkpoint <n> [options]',
    options: { ...JOB, checkpoint: { type: 'string', arg: '<n>', help: 'the checkpoint to remove, e.g. 7 or chk-7', default: 'required' }, ...COMMON },
    async run(args, out) {
      if (args.positionals.length > 0) throw new UsageError('drop takes no positional arguments');
      const job = requireJob(args);
      const text = args.values['checkpoint'];
      const n = typeof text === 'string' ? /^(?:chk-)?([1-9]\d{0,14})$/.exec(text)?.[1] : undefined;
      if (n === undefined) throw new UsageError('drop needs --checkpoint <n> (a checkpoint number such as 7 or chk-7)');
      const result = await withChunkpoint(args, out, (cp) => cp.drop(job, Number(n)));
      if (out.json) out.emit(result);
      else out.print(`${result.checkpoint} dropped from ${job.store}/${job.job}; run 'chunkpoint gc' to free what only it referenced`);
    },
  },
  copy: {
    summary: 'copy a job root with all its checkpoints to another store (directory or S3, any direction)',
    usage: 'chunkpoint copy <jobRoot> <otherStore>/<jobId> [options]',
    positionals: [
      ['<jobRoot>', 'the job root to copy: a directory or s3://<bucket>/<prefix>/<jobId>'],
      ['<otherStore>/<jobId>', 'the destination job root, same forms; created, or resumed if it holds the same checkpoints'],
    ],
    options: { 'no-fsync': { ...NO_FSYNC, help: 'do not fsync what is written to a directory destination' }, 'limit-rate': LIMIT_RATE, ...COMMON },
    async run(args, out) {
      const [from, to, extra] = args.positionals;
      if (from === undefined || to === undefined || extra !== undefined) throw new UsageError('copy takes exactly a <jobRoot> and a destination <otherStore>/<jobId>');
      const result = await withChunkpoint(args, out, (cp) => cp.copy(from, to, { durable: args.values['no-fsync'] !== true, ...rateOption(args) }));
      if (out.json) out.emit(result);
      else {
        const copied = result.checkpointsCopied.length === 0 ? 'no new checkpoints' : result.checkpointsCopied.join(', ');
        out.print(`copied ${copied} from ${result.from} to ${result.to} in ${formatDuration(result.durationMs)} (${result.throughputMBps.toFixed(1)} MB/s)`);
        out.print(`  objects   ${result.objectsCopied} copied (${formatBytes(result.bytesCopied)}, ${result.packsVerified} packs verified), ${result.objectsSkipped} already there (${formatBytes(result.bytesSkipped)})`);
        if (result.checkpointsPresent.length > 0) out.print(`  present   ${result.checkpointsPresent.join(', ')} (identical, kept)`);
      }
    },
  },
  cache: {
    summary: 'show or prune a local cache',
    usage: 'chunkpoint cache stats <dir> [options]\n       chunkpoint cache prune <dir> [--max-bytes <n>] [--ttl <time>] [options]',
    positionals: [['stats <dir> | prune <dir>', 'show the size of a local cache, or evict from it']],
    options: {
      'max-bytes': { type: 'string', arg: '<size>', help: 'prune: evict least recently used entries down to this size, e.g. 20GiB', default: 'no cap' },
      ttl: { type: 'string', arg: '<time>', help: 'prune: evict entries unused for this long, e.g. 7d', default: 'none' },
      ...COMMON,
    },
    async run(args, out) {
      const [action, dir, extra] = args.positionals;
      if ((action !== 'stats' && action !== 'prune') || dir === undefined || extra !== undefined) throw new UsageError("cache takes 'stats <dir>' or 'prune <dir>'");
      const options: CacheOptions = { dir };
      const maxBytes = args.values['max-bytes'];
      const ttl = args.values['ttl'];
      if (typeof maxBytes === 'string') options.maxBytes = parseSize(maxBytes, '--max-bytes');
      if (typeof ttl === 'string') options.ttlMs = parseDuration(ttl, '--ttl');
      if (action === 'stats') {
        if (options.maxBytes !== undefined || options.ttlMs !== undefined) throw new UsageError('--max-bytes and --ttl go with cache prune');
        const stats = await withChunkpoint(args, out, (cp) => cp.cacheStats(options));
        if (out.json) out.emit(stats);
        else {
          out.print(`cache ${stats.dir}`);
          out.print(`  ${stats.entries} chunks, ${formatBytes(stats.bytes)}; ${stats.checkpoints} checkpoint metadata copies`);
          if (stats.oldestUseMs !== undefined && stats.newestUseMs !== undefined) {
            out.print(`  least recently used ${new Date(stats.oldestUseMs).toISOString()}, most recently ${new Date(stats.newestUseMs).toISOString()}`);
          }
        }
        return;
      }
      if (options.maxBytes === undefined && options.ttlMs === undefined) throw new UsageError('cache prune needs --max-bytes and/or --ttl');
      const result = await withChunkpoint(args, out, (cp) => cp.cachePrune(options));
      if (out.json) out.emit(result);
      else out.print(`removed ${result.removedEntries} entries (${formatBytes(result.removedBytes)}); ${result.entries} entries, ${formatBytes(result.bytes)} remain`);
    },
  },
};

function lifecycleOptions(args: Parsed): { retain?: number; graceMs?: number; claim?: boolean; dropTasks?: string[] } {
  const out: { retain?: number; graceMs?: number; claim?: boolean; dropTasks?: string[] } = {};
  const drop = args.values['drop-task'];
  if (Array.isArray(drop)) out.dropTasks = drop;
  const retain = args.values['retain'];
  if (typeof retain === 'string') {
    if (!/^\d+$/.test(retain) || Number(retain) < 1) throw new UsageError(`--retain '${retain}' is not a whole number of checkpoints, at least 1`);
    out.retain = Number(retain);
  }
  const grace = args.values['grace'];
  if (typeof grace === 'string') out.graceMs = /^0+(?:\.0*)?[a-z]*$/i.test(grace) ? 0 : parseDuration(grace, '--grace');
  if (args.values['claim'] === true) out.claim = true;
  return out;
}

function rateOption(args: Parsed): { limitRate?: number } {
  const text = args.values['limit-rate'];
  return typeof text === 'string' ? { limitRate: parseSize(text, '--limit-rate') } : {};
}

function cacheOptions(args: Parsed): CacheOptions | undefined {
  const dir = args.values['cache'];
  const maxBytes = args.values['cache-max-bytes'];
  const ttl = args.values['cache-ttl'];
  if (typeof dir !== 'string') {
    if (maxBytes !== undefined || ttl !== undefined) throw new UsageError('--cache-max-bytes and --cache-ttl go with --cache <dir>');
    return undefined;
  }
  const options: CacheOptions = { dir };
  if (typeof maxBytes === 'string') options.maxBytes = parseSize(maxBytes, '--cache-max-bytes');
  if (typeof ttl === 'string') options.ttlMs = parseDuration(ttl, '--cache-ttl');
  return options;
}

function requireJob(args: Parsed): { store: string; job: string } {
  const store = args.values['store'];
  const job = args.values['job'];
  if (typeof store !== 'string') throw new UsageError('--store <dir|s3://bucket/prefix> is required');
  if (typeof job !== 'string') throw new UsageError('--job <jobId> is required');
  return { store, job };
}

function checkpointArgs(args: Parsed, command: string): { locator: CheckpointLocator; rest: string[] } {
  const hasStore = typeof args.values['store'] === 'string' || typeof args.values['job'] === 'string';
  const checkpoint = args.values['checkpoint'];
  if (hasStore) {
    const job = requireJob(args);
    let wanted: number | 'latest' = 'latest';
    if (typeof checkpoint === 'string' && checkpoint !== 'latest') {
      const n = /^(?:chk-)?(\d{1,15})$/.exec(checkpoint)?.[1];
      if (n === undefined) throw new UsageError(`--checkpoint '${checkpoint}' is not a checkpoint number or 'latest'`);
      wanted = Number(n);
    }
    return { locator: { ...job, checkpoint: wanted }, rest: args.positionals };
  }
  if (checkpoint !== undefined) throw new UsageError('--checkpoint goes with --store and --job');
  const [path, ...rest] = args.positionals;
  if (path === undefined) throw new UsageError(`${command} needs a <checkpointDir> (or --store and --job)`);
  return { locator: { path }, rest };
}

async function withChunkpoint<T>(args: Parsed, out: Output, fn: (cp: Chunkpoint) => Promise<T>): Promise<T> {
  const threadsText = args.values['threads'];
  let threads: number | undefined;
  if (typeof threadsText === 'string') {
    threads = Number(threadsText);
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new UsageError(`--threads '${threadsText}' is not a whole number from 1 to 256`);
  }
  const cp = new Chunkpoint({ ...(threads === undefined ? {} : { threads }), ...(out.onEvent === undefined ? {} : { onEvent: out.onEvent }) });
  try {
    return await fn(cp);
  } finally {
    await cp.close();
  }
}

function printSnapshot(r: SnapshotResult, where: string, out: Output): void {
  out.print(`${r.checkpoint} committed to ${where} in ${formatDuration(r.durationMs)} (${r.throughputMBps.toFixed(1)} MB/s of state)`);
  out.print(`  state     ${r.files} files, ${formatBytes(r.bytes)}${r.tasks > 1 ? ` in ${r.tasks} tasks` : ''}`);
  out.print(`  reused    ${r.filesReused} files (${formatBytes(r.bytesReused)}) without reading them`);
  out.print(`  read      ${formatBytes(r.bytesRead)}`);
  out.print(`  written   ${formatBytes(r.bytesWritten)}: ${r.packsWritten} pack${r.packsWritten === 1 ? '' : 's'}${r.packsWritten > 0 ? ` (compression ratio ${r.compressionRatio.toFixed(2)})` : ''}, manifests and metadata`);
  out.print(`  chunks    ${r.chunksNew} new, ${r.chunksDeduped} found in ${r.base ?? 'the base'}${r.packsRewritten > 0 ? `; ${r.packsRewritten} packs of ${r.base ?? 'the base'} rewritten (mostly dead, missing or damaged)` : ''}`);
  if (r.bytesCached > 0) out.print(`  cached    ${formatBytes(r.bytesCached)} added to the local cache`);
  if (r.localCopy !== null) out.print(`  local     ${r.localCopy.files} files (${formatBytes(r.localCopy.bytes)}) kept in the task-local copy`);
  if (r.checkpointsRemoved.length > 0) out.print(`  retention removed ${r.checkpointsRemoved.join(', ')}: ${r.packsRemoved} packs, ${formatBytes(r.bytesFreed)} freed`);
  for (const w of r.warnings) out.print(`  warning   ${w}`);
}

function printRestore(r: RestoreResult, target: string, out: Output): void {
  out.print(`${r.checkpoint}${r.task === DEFAULT_TASK ? '' : ` task '${r.task}'`} restored into ${target} in ${formatDuration(r.durationMs)} (${r.throughputMBps.toFixed(1)} MB/s)`);
  out.print(`  files     ${r.files}, ${formatBytes(r.bytes)} in ${r.chunks} verified chunks`);
  out.print(`  fetched   ${formatBytes(r.bytesFromRemote)} from the store, ${formatBytes(r.bytesFromCache)} from the local cache${r.cacheEntriesDropped > 0 ? ` (${r.cacheEntriesDropped} bad cache entries replaced)` : ''}`);
  if (r.filesKept > 0) out.print(`  kept      ${r.filesKept} files (${formatBytes(r.bytesKept)}) already in place and verified`);
  if (r.filesFromLocalCopy > 0 || r.localCopiesRejected > 0) {
    const read = r.localCopiesVerified > 0 ? `; ${r.localCopiesVerified} had changed identity and were read to prove them` : '';
    const rejected = r.localCopiesRejected > 0 ? `; ${r.localCopiesRejected} no longer held the checkpoint's bytes and were fetched instead` : '';
    out.print(`  local     ${r.filesFromLocalCopy} files (${formatBytes(r.bytesFromLocalCopy)}) from the task-local copy${read}${rejected}`);
  }
  if (r.metadataFromCache) out.print('  metadata  from the local cache (the store was unreachable)');
  if (r.previousContentsLeftAt !== null) out.print(`  warning   the target's previous contents were moved to ${r.previousContentsLeftAt} and could not be deleted; remove that directory by hand`);
}

function printVerify(r: VerifyResult, out: Output): void {
  const what = r.sample === 1 ? `all ${r.blobs} chunks` : `${r.blobsChecked} of ${r.blobs} chunks (sample ${r.sample}, seed ${r.sampleSeed ?? '?'})`;
  out.print(`${r.checkpoint} of ${r.location}: ${r.packsPresent} of ${r.packs} packs whole; read ${what}, ${formatBytes(r.bytesChecked)} in ${formatDuration(r.durationMs)}`);
  if (r.ok) {
    out.print('  no problems found');
    return;
  }
  out.print(`  ${r.problems.length} problem(s):`);
  for (const p of r.problems) {
    const files = p.usedBy.map((u) => `${u.task === DEFAULT_TASK ? '' : `${u.task}:`}${u.path} chunk ${u.chunk}`).join(', ');
    out.print(`  ${p.code}  ${p.object}${files === '' ? '' : `  used by ${files}${p.uses > p.usedBy.length ? ` and ${p.uses - p.usedBy.length} more` : ''}`}`);
    out.print(`      ${p.message}`);
  }
}

function printList(checkpoints: CheckpointSummary[], out: Output): void {
  if (checkpoints.length === 0) {
    out.print('no committed checkpoints');
    return;
  }
  const columns = [
    { header: 'CHECKPOINT' },
    { header: 'CREATED' },
    { header: 'FILES', right: true },
    { header: 'SIZE', right: true },
    { header: 'STORED', right: true },
    { header: 'RATIO', right: true },
    { header: 'WRITTEN', right: true },
  ];
  const rows = checkpoints.map((c) =>
    c.damaged === undefined
      ? [c.checkpoint, formatDate(c.createdAt), String(c.files), formatBytes(c.bytes), formatBytes(c.storedBytes), formatRatio(c.compressionRatio), formatBytes(c.bytesWritten)]
      : [c.checkpoint, 'DAMAGED', '-', '-', '-', '-', '-'],
  );
  for (const line of renderTable(columns, rows)) out.print(line);
  for (const c of checkpoints) if (c.damaged !== undefined) out.print(`${c.checkpoint} cannot be read: ${c.damaged}`);
}

function printReport(r: CheckpointReport, out: Output): void {
  out.print(`${r.checkpoint} of ${r.location}`);
  const pairs: [string, string][] = [
    ['created', `${formatDate(r.createdAt)} (UTC${formatUtcOffset(r.createdAt)})`],
    ['tasks', r.tasks.join(', ')],
    ['files', `${r.files} in ${r.chunks} chunks (${r.uniqueChunks} distinct, up to ${formatBytes(r.chunkSize)} each)`],
    ['logical size', formatBytes(r.bytes)],
    ['stored size', `${formatBytes(r.storedBytes)} (ratio ${formatRatio(r.compressionRatio)})`],
    ['new', `${formatBytes(r.storedBytesNew)} stored by ${r.checkpoint}'s own snapshot`],
    ['shared', r.base === null ? `${formatBytes(r.storedBytesShared)} (a full snapshot)` : `${formatBytes(r.storedBytesShared)} in packs of earlier snapshots (it builds on ${r.base})`],
    ['packs', `${r.packs} referenced`],
    ['written', `${formatBytes(r.bytesWritten)} by its snapshot (packs and manifests)`],
  ];
  for (const line of renderPairs(pairs)) out.print(line);
  out.print('');
  const several = r.tasks.length > 1;
  const columns = [
    ...(several ? [{ header: 'TASK' }] : []),
    { header: 'FILE' },
    { header: 'SIZE', right: true },
    { header: 'CHUNKS', right: true },
    { header: 'STORED', right: true },
    { header: 'RATIO', right: true },
    { header: 'STORED BY' },
  ];
  const rows = r.fileReports.map((f) => [
    ...(several ? [f.task] : []),
    f.path,
    formatBytes(f.size),
    String(f.chunks),
    formatBytes(f.storedBytes),
    f.storedBytes > 0 ? formatRatio(f.size / f.storedBytes) : '-',
    f.chunks === 0 ? '-' : f.reused ? 'earlier' : r.checkpoint,
  ]);
  rows.push([...(several ? [''] : []), 'total', formatBytes(r.bytes), String(r.chunks), formatBytes(r.fileReports.reduce((sum, f) => sum + f.storedBytes, 0)), '', '']);
  for (const line of renderTable(columns, rows)) out.print(line);
  out.print('');
  out.print("STORED BY: 'earlier' when every chunk of the file lives in packs earlier snapshots wrote.");
  out.print('STORED counts each chunk of a file; the total may exceed the stored size when files share chunks.');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** `--name <arg>` and its explanation with the default, as aligned help lines. */
function optionLines(specs: Specs): [string, string][] {
  return Object.entries(specs).map(([name, spec]) => [
    `${spec.short === undefined ? '' : `-${spec.short}, `}--${name}${spec.arg === undefined ? '' : ` ${spec.arg}`}`,
    `${spec.help}${spec.multiple === true ? ', repeatable' : ''} (${spec.default === 'required' ? 'required' : `default: ${spec.default}`})`,
  ]);
}

function mainHelp(): string {
  const lines = ['usage: chunkpoint <command> [options]', '', 'commands:'];
  lines.push(...renderPairs([...Object.entries(COMMANDS).map(([name, cmd]): [string, string] => [name, cmd.summary]), ['stress', 'seeded snapshot/restore soak with faults and kills against a store; checks every invariant']]));
  lines.push('', 'options of every command:', ...renderPairs([...optionLines(COMMON), ['--version', 'print the version and exit (chunkpoint --version)']]));
  lines.push('', 'Sizes take units (512KiB, 4MiB, 2GiB), durations too (30s, 10m, 2h, 7d).');
  lines.push("Exit status: 0 success, 1 failure (one line 'chunkpoint: <CODE>: ...' on stderr), 2 usage error.");
  lines.push("Run 'chunkpoint <command> --help' for a command's options.");
  return lines.join('\n');
}

function commandHelp(_name: string, cmd: Command): string {
  const lines = [`usage: ${cmd.usage}`, '', cmd.summary];
  if (cmd.positionals !== undefined) lines.push('', 'arguments:', ...renderPairs(cmd.positionals));
  lines.push('', 'options:', ...renderPairs(optionLines(cmd.options)));
  lines.push('', 'Sizes take units (512KiB, 4MiB, 2GiB), durations too (30s, 10m, 2h, 7d).');
  return lines.join('\n');
}

/** parseArgs' view of a command's options. */
function parseConfig(specs: Specs): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, spec] of Object.entries(specs)) {
    out[name] = { type: spec.type, ...(spec.multiple === true ? { multiple: true } : {}), ...(spec.short === undefined ? {} : { short: spec.short }) };
  }
  return out;
}

/** Runs the CLI and returns the exit code; never calls process.exit, so the pool shuts down cleanly. */
export async function main(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process): Promise<number> {
  // The AWS SDK prints a multi-line Node-version support notice on first use; it would
  // break the one-line error contract on stderr. Set before the worker threads copy the environment.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(`${mainHelp()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  // Self-contained (own options, progress and exit codes), loaded only when asked for.
  if (name === 'stress') return (await import('./stress/cli.js')).stressMain(rest, io);
  const cmd = COMMANDS[name];
  if (cmd === undefined) {
    io.stderr.write(`chunkpoint: usage: unknown command '${name}'\n${mainHelp()}\n`);
    return 2;
  }
  let args: Parsed;
  try {
    args = parseArgs({ args: rest, options: parseConfig(cmd.options), allowPositionals: true, strict: true }) as Parsed;
  } catch (error) {
    io.stderr.write(`chunkpoint: usage: ${error instanceof Error ? error.message : String(error)}\n${cmd.usage}\nrun 'chunkpoint ${name} --help' for the options\n`);
    return 2;
  }
  if (args.values['help'] === true) {
    io.stdout.write(`${commandHelp(name, cmd)}\n`);
    return 0;
  }
  const json = args.values['json'] === true;
  const lines: string[] = [];
  let failure: string | undefined;
  // A bar only for a person watching: never into a pipe or a log file, never mixed with --json.
  const bar = !json && args.values['no-progress'] !== true && (io.stderr as { isTTY?: boolean }).isTTY === true ? new ProgressBar(io.stderr) : undefined;
  const out: Output = {
    json,
    print: (line) => lines.push(line),
    emit: (value) => lines.push(JSON.stringify(value)),
    fail: (code, message) => (failure = `chunkpoint: ${code}: ${message}\n`),
    ...(bar === undefined ? {} : { onEvent: bar.onEvent }),
  };
  try {
    const code = await cmd.run(args, out);
    bar?.stop();
    if (lines.length > 0) io.stdout.write(`${lines.join('\n')}\n`);
    if (failure !== undefined) io.stderr.write(failure);
    return code ?? 0;
  } catch (error) {
    bar?.stop();
    if (error instanceof UsageError) {
      io.stderr.write(`chunkpoint: usage: ${error.message}\n${cmd.usage}\nrun 'chunkpoint ${name} --help' for the options\n`);
      return 2;
    }
    const cp: ChunkpointError = toChunkpointError(error);
    io.stderr.write(`chunkpoint: ${cp.code}: ${cp.message}\n`);
    if (args.values['verbose'] === true && cp.stack !== undefined) io.stderr.write(`${cp.stack}\n`);
    return 1;
  }
}
