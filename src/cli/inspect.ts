/** `chunkpoint inspect`: one checkpoint's sizes, then its files as a table. */
import type { CheckpointReport } from '../index.js';
import { formatBytes, formatDate, formatRatio, formatUtcOffset } from '../units.js';
import { UsageError, withChunkpoint, type Command, type Output } from './command.js';
import { CHECKPOINT_BY_JOB, COMMON, checkpointArgs } from './options.js';
import { renderPairs, renderTable } from './table.js';

export const inspect: Command = {
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
};

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
