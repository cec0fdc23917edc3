/**
 * Options several commands share, and the readers that turn their values
 * into the API's options. A flag's name and wording live here, in the CLI:
 * the library takes plain values.
 */
import type { CacheOptions, CheckpointLocator } from '../index.js';
import { parseDuration, parseSize } from '../units.js';
import { UsageError, type OptionSpec, type Parsed, type Specs } from './command.js';

export const COMMON = {
  threads: { type: 'string', arg: '<n>', help: 'worker threads', default: 'available cores' },
  json: { type: 'boolean', help: 'print one JSON object on stdout instead of text, and no progress bar', default: 'off' },
  'no-progress': { type: 'boolean', help: 'no progress bar on stderr', default: 'a bar when stderr is a terminal' },
  verbose: { type: 'boolean', help: 'print stack traces with errors', default: 'off' },
  help: { type: 'boolean', short: 'h', help: 'show this help', default: 'off' },
} satisfies Specs;
const STORE: OptionSpec = { type: 'string', arg: '<location>', help: 'store: a directory (created if missing) or s3://<bucket>/<prefix>', default: 'required' };
const JOB_ID: OptionSpec = { type: 'string', arg: '<jobId>', help: 'job id: letters, digits, . _ -', default: 'required' };
export const JOB: Specs = { store: STORE, job: JOB_ID };
/** Commands that take a checkpoint either by path or by store + job. */
export const CHECKPOINT_BY_JOB: Specs = {
  store: { ...STORE, help: 'store, with --job, instead of <checkpointDir>', default: 'none' },
  job: { ...JOB_ID, help: 'job id, with --store', default: 'none' },
  checkpoint: { type: 'string', arg: '<n>', help: 'checkpoint number or "latest", with --store/--job', default: 'latest' },
};
export const RETENTION = {
  retain: { type: 'string', arg: '<n>', help: 'keep the newest n checkpoints, remove older ones this job wrote', default: '3' },
  grace: { type: 'string', arg: '<time>', help: 'never delete unreferenced packs younger than this (by the time in their name), e.g. 10m, 2h; 0 for none', default: '1h' },
  claim: { type: 'boolean', help: 'let retention remove checkpoints written under other job ids', default: 'off' },
  'drop-task': { type: 'string', multiple: true, arg: '<id>', help: 'commit without this task of the previous checkpoint: it is gone for good', default: 'refuse a commit lacking a task' },
} satisfies Specs;
export const CACHE = {
  cache: { type: 'string', arg: '<dir>', help: 'local cache directory', default: 'none' },
  'cache-max-bytes': { type: 'string', arg: '<size>', help: 'size cap of the cache, e.g. 20GiB; least recently used entries go first', default: 'unlimited' },
} satisfies Specs;
export const NO_FSYNC: OptionSpec = { type: 'boolean', help: 'do not fsync what is written, faster but not crash-safe', default: 'fsync' };
export const LIMIT_RATE: OptionSpec = { type: 'string', arg: '<size>', help: 'limit store reads and writes to this many bytes per second, e.g. 50MiB', default: 'no limit' };

/** --retain, --grace, --claim and --drop-task, as the commit and gc take them. */
export function lifecycleOptions(args: Parsed): { retain?: number; graceMs?: number; claim?: boolean; dropTasks?: string[] } {
  const out: { retain?: number; graceMs?: number; claim?: boolean; dropTasks?: string[] } = {};
  const drop = args.values['drop-task'];
  if (Array.isArray(drop)) out.dropTasks = drop;
  const retain = args.values['retain'];
  if (typeof retain === 'string') {
    if (!/^\d+$/.test(retain) || Number(retain) < 1) throw new UsageError(`--retain '${retain}' is not a whole number of checkpoints, at least 1`);
    out.retain = Number(retain);
  }
  const grace = args.values['grace'];
  if (typeof grace === 'string') out.graceMs = parseDuration(grace, '--grace', { allowZero: true });
  if (args.values['claim'] === true) out.claim = true;
  return out;
}

export function rateOption(args: Parsed): { limitRate?: number } {
  const text = args.values['limit-rate'];
  return typeof text === 'string' ? { limitRate: parseSize(text, '--limit-rate') } : {};
}

export function cacheOptions(args: Parsed): CacheOptions | undefined {
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

export function requireJob(args: Parsed): { store: string; job: string } {
  const store = args.values['store'];
  const job = args.values['job'];
  if (typeof store !== 'string') throw new UsageError('--store <dir|s3://bucket/prefix> is required');
  if (typeof job !== 'string') throw new UsageError('--job <jobId> is required');
  return { store, job };
}

/** A checkpoint named by its directory (the first positional) or by --store, --job and --checkpoint; `rest` is the other positionals. */
export function checkpointArgs(args: Parsed, command: string): { locator: CheckpointLocator; rest: string[] } {
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
