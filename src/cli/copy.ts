/** `chunkpoint copy`: a job root with all its checkpoints to another store. */
import { formatBytes, formatDuration } from '../units.js';
import { UsageError, withChunkpoint, type Command } from './command.js';
import { COMMON, LIMIT_RATE, NO_FSYNC, rateOption } from './options.js';

export const copy: Command = {
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
};
