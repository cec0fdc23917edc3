/** `chunkpoint gc`: delete what no checkpoint references. */
import { formatBytes, formatDuration } from '../units.js';
import { UsageError, withChunkpoint, type Command } from './command.js';
import { COMMON, JOB, RETENTION, lifecycleOptions, requireJob } from './options.js';

export const gc: Command = {
  summary: 'delete what no checkpoint references (crashed snapshots, temp files, old checkpoints)',
  usage: 'chunkpoint gc --store <dir> --job <jobId> [--grace <time>] [--retain <n>] [--dry-run] [options]',
  options: {
    ...JOB,
    grace: { ...RETENTION.grace, help: 'never delete objects younger than this, e.g. 10m' },
    retain: { ...RETENTION.retain, help: 'also remove checkpoints beyond the newest n', default: 'keep all' },
    claim: { ...RETENTION.claim, help: 'also remove checkpoints written under other job ids' },
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
};
