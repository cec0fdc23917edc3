/** `chunkpoint restore`: a committed checkpoint (or one task of it) into a directory. */
import { DEFAULT_TASK, type RestoreResult } from '../index.js';
import { formatBytes, formatDuration } from '../units.js';
import { UsageError, withChunkpoint, type Command, type Output } from './command.js';
import { CACHE, CHECKPOINT_BY_JOB, COMMON, LIMIT_RATE, NO_FSYNC, cacheOptions, checkpointArgs, rateOption } from './options.js';

export const restore: Command = {
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
    cache: { ...CACHE.cache, help: 'local cache: read chunks from it first, add fetched ones' },
    'cache-max-bytes': CACHE['cache-max-bytes'],
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
};

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
  if (r.metadataFromCache) out.print(`  metadata  ${r.metadataNote ?? 'from the local cache (the store could not be read)'}`);
  if (r.previousContentsLeftAt !== null) out.print(`  warning   the target's previous contents were moved to ${r.previousContentsLeftAt} and could not be deleted; remove that directory by hand`);
}
