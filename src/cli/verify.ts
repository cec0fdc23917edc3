/** `chunkpoint verify`: scrub a checkpoint; exit status 1 when it found problems. */
import { DEFAULT_TASK, type VerifyOptions, type VerifyResult } from '../index.js';
import { formatBytes, formatDuration } from '../units.js';
import { UsageError, withChunkpoint, type Command, type Output } from './command.js';
import { CHECKPOINT_BY_JOB, COMMON, LIMIT_RATE, checkpointArgs, rateOption } from './options.js';

export const verify: Command = {
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
};

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
