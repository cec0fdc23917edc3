/** `chunkpoint drop`: remove one checkpoint explicitly. */
import { UsageError, withChunkpoint, type Command } from './command.js';
import { COMMON, JOB, requireJob } from './options.js';

export const drop: Command = {
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
};
