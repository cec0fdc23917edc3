/** `chunkpoint snapshot`: the next checkpoint of a job, or one task's part of it (--task-snapshot). */
import { open, rm } from 'node:fs/promises';
import { InvalidInputError, errnoOf } from '../errors.js';
import type { SnapshotOptions, SnapshotResult, TaskSnapshot } from '../index.js';
import { formatBytes, formatDuration, parseDuration, parseSize } from '../units.js';
import { UsageError, withChunkpoint, type Command, type Output } from './command.js';
import { CACHE, COMMON, JOB, LIMIT_RATE, NO_FSYNC, RETENTION, cacheOptions, lifecycleOptions, rateOption, requireJob } from './options.js';
import { inCliWords } from './wording.js';

export const snapshot: Command = {
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
    cache: { ...CACHE.cache, help: 'also put every blob written into this local cache' },
    'cache-max-bytes': CACHE['cache-max-bytes'],
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
};

/** The report of a committed checkpoint, shared with `chunkpoint commit`. */
export function printSnapshot(r: SnapshotResult, where: string, out: Output): void {
  out.print(`${r.checkpoint} committed to ${where} in ${formatDuration(r.durationMs)} (${r.throughputMBps.toFixed(1)} MB/s of state)`);
  out.print(`  state     ${r.files} files, ${formatBytes(r.bytes)}${r.tasks > 1 ? ` in ${r.tasks} tasks` : ''}`);
  out.print(`  reused    ${r.filesReused} files (${formatBytes(r.bytesReused)}) without reading them`);
  out.print(`  read      ${formatBytes(r.bytesRead)}`);
  out.print(`  written   ${formatBytes(r.bytesWritten)}: ${r.packsWritten} pack${r.packsWritten === 1 ? '' : 's'}${r.packsWritten > 0 ? ` (compression ratio ${r.compressionRatio.toFixed(2)})` : ''}, manifests and metadata`);
  out.print(`  chunks    ${r.chunksNew} new, ${r.chunksDeduped} found in ${r.base ?? 'the base'}${r.packsRewritten > 0 ? `; ${r.packsRewritten} packs of ${r.base ?? 'the base'} rewritten (mostly dead, missing or damaged; ${r.chunksRewritten} of the new chunks are theirs)` : ''}`);
  if (r.bytesCached > 0) out.print(`  cached    ${formatBytes(r.bytesCached)} added to the local cache`);
  if (r.localCopy !== null) out.print(`  local     ${r.localCopy.files} files (${formatBytes(r.localCopy.bytes)}) kept in the task-local copy`);
  if (r.checkpointsRemoved.length > 0) out.print(`  retention removed ${r.checkpointsRemoved.join(', ')}: ${r.packsRemoved} packs, ${formatBytes(r.bytesFreed)} freed`);
  for (const w of r.warnings) out.print(`  warning   ${inCliWords(w)}`);
}
