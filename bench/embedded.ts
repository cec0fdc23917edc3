/**
 * chunkpoint as a runtime embeds it: one long-lived Chunkpoint whose worker
 * threads are already running and warm when a checkpoint is due. The CLI
 * phases pay for a process, its module loading and its threads on every run
 * (~0.25-0.45 s on a 2-core VM); a stream processor or database that
 * checkpoints every few seconds pays that once. The compute ceiling is
 * measured with warm threads too, so this is its like-for-like comparison.
 *
 *   node dist/bench/embedded.js <state-before> <state-after> <store> <threads> <chunk-size>
 *     one snapshot of <state-before> into a scratch store first (it starts and
 *     warms the threads, as an earlier checkpoint would have), then, timed,
 *     a full snapshot of <state-before> into <store> (a fresh directory) and an
 *     incremental of <state-after> on top of it; the scratch store is removed
 *
 *   node dist/bench/embedded.js --no-disk <state> <store> <threads> <chunk-size>
 *     the same warm-up, then one timed full snapshot of <state> that does not
 *     wait for the disk: no fsync, and (run it with CHUNKPOINT_DIRECT_IO=0)
 *     packs written into the page cache. Not a way to run chunkpoint: a
 *     yardstick that shows what its pipeline does when only the CPU bounds
 *     it, to compare with the compute ceiling and with the ceilings that do
 *     a snapshot's reads and page-cache writes (bench/ceiling.ts).
 *
 * Prints one JSON line: {full, incremental} (or {full}), each a SnapshotResult.
 */
import { rm } from 'node:fs/promises';
import { Chunkpoint } from '../src/index.js';

function usage(message: string): never {
  process.stderr.write(`embedded: ${message}\nusage: embedded <state-before> <state-after> <store> <threads> <chunk-size> | embedded --no-disk <state> <store> <threads> <chunk-size>\n`);
  process.exit(2);
}

const noDisk = process.argv[2] === '--no-disk';
const args = process.argv.slice(noDisk ? 3 : 2);
const [before, after, store, threadsArg, chunkArg] = noDisk ? [args[0], undefined, ...args.slice(1)] : args;
if (before === undefined || (!noDisk && after === undefined) || store === undefined) usage(noDisk ? 'expected a state directory and a store directory' : 'expected two state directories and a store directory');
const threads = Number(threadsArg);
const chunkSize = Number(chunkArg);
if (!Number.isSafeInteger(threads) || threads < 1) usage(`threads must be a positive integer, got '${threadsArg ?? ''}'`);
if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) usage(`chunk size must be a positive integer, got '${chunkArg ?? ''}'`);

const cp = new Chunkpoint({ threads });
const scratch = `${store}-warm-up`;
try {
  await rm(scratch, { recursive: true, force: true });
  await cp.snapshot(before, { store: scratch, job: 'warm-up' }, { chunkSize, durable: !noDisk });
  await rm(scratch, { recursive: true, force: true });
  const full = await cp.snapshot(before, { store, job: 'bench' }, { chunkSize, durable: !noDisk });
  const incremental = after === undefined ? undefined : await cp.snapshot(after, { store, job: 'bench' }, { chunkSize });
  process.stdout.write(`${JSON.stringify(incremental === undefined ? { full } : { full, incremental })}\n`);
} finally {
  await cp.close();
}
