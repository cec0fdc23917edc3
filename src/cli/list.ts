/** `chunkpoint list`: a job's committed checkpoints as a table. */
import type { CheckpointSummary } from '../index.js';
import { formatBytes, formatDate, formatRatio } from '../units.js';
import { UsageError, withChunkpoint, type Command, type Output } from './command.js';
import { COMMON, JOB, requireJob } from './options.js';
import { renderTable } from './table.js';

export const list: Command = {
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
};

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
