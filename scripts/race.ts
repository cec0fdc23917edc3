/**
 * The gc-versus-snapshot race of issue #15, scripted: each round builds a job
 * whose second checkpoint is deleted by hand (its packs are now orphans, as
 * after a crash or retention), then runs `chunkpoint gc` and a snapshot of
 * the same data as separate processes at the same time, with a seeded random
 * head start for gc, and checks every checkpoint left with `verify` and a
 * byte-for-byte restore. Format 1 lost data here (a snapshot deduplicated
 * against an orphan gc was deleting); format 2 must end every round with 0
 * damaged checkpoints, with a grace period of 0 and with the default.
 *
 *   node dist/scripts/race.js [--rounds 200] [--grace 0|default|both] [--seed N] [--dir .race]
 *
 * Exit status: 0 when no round damaged a checkpoint, 1 otherwise.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { prng } from '../src/random.js';
import { parseScriptArgs } from './usage.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../bin/chunkpoint', import.meta.url));

const USAGE = `
node dist/scripts/race.js [--rounds 200] [--grace 0|default|both] [--seed N] [--dir .race]

Runs gc and a snapshot concurrently against a job with orphaned packs, round
after round, and verifies every checkpoint after each round. Prints the seed;
the same seed replays the same schedule of head starts.
`;

export interface RaceOptions {
  rounds: number;
  graces: ('0' | 'default')[];
  seed: number;
  dir: string;
  log?: (line: string) => void;
}

export interface RaceResult {
  rounds: number;
  damaged: { round: number; grace: string; checkpoint: string; detail: string }[];
  gcRemovedPacks: number;
  snapshotsFailed: number;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function sameTree(a: string, b: string): Promise<boolean> {
  const names = async (dir: string): Promise<string[]> => (await readdir(dir)).sort();
  const [left, right] = [await names(a), await names(b)];
  if (left.join('\n') !== right.join('\n')) return false;
  for (const name of left) if (!(await readFile(join(a, name))).equals(await readFile(join(b, name)))) return false;
  return true;
}

export async function race(options: RaceOptions): Promise<RaceResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const random = prng(options.seed);
  const result: RaceResult = { rounds: 0, damaged: [], gcRemovedPacks: 0, snapshotsFailed: 0 };
  const work = resolve(options.dir);
  await rm(work, { recursive: true, force: true });
  for (let round = 0; round < options.rounds; round++) {
    const grace = options.graces[round % options.graces.length] ?? '0';
    const dir = join(work, `round-${round}`);
    const [a, b, store] = [join(dir, 'a'), join(dir, 'b'), join(dir, 'st')];
    await mkdir(a, { recursive: true });
    await mkdir(b, { recursive: true });
    await writeFile(join(a, '1.sst'), randomBytes(2_000_000));
    await writeFile(join(b, '2.sst'), randomBytes(20_000_000));
    const job = ['--store', store, '--job', 'j'];
    const snap = (state: string): Promise<{ code: number; stdout: string; stderr: string }> => cli(['snapshot', state, ...job, '--chunk-size', '16KiB', '--pack-size', '1MiB', '--json']);
    for (const state of [a, b]) {
      const r = await snap(state);
      if (r.code !== 0) throw new Error(`round ${round}: setup snapshot failed: ${r.stderr}`);
    }
    // Its packs are now orphans, as after a crash or retention.
    await rm(join(store, 'j', 'chk-2'), { recursive: true });
    const headStart = Math.floor(random() * 300);
    const gcArgs = ['gc', ...job, '--json', ...(grace === '0' ? ['--grace', '0'] : [])];
    const [gc, snapshot] = await Promise.all([cli(gcArgs), new Promise<void>((r) => setTimeout(r, headStart)).then(() => snap(b))]);
    if (gc.code === 0) result.gcRemovedPacks += (JSON.parse(gc.stdout) as { packsRemoved: number }).packsRemoved;
    if (snapshot.code !== 0) {
      // A refusal is allowed (it must be a clean one); a damaged checkpoint is not.
      result.snapshotsFailed++;
      log(`round ${round}: the concurrent snapshot was refused: ${snapshot.stderr.trim()}`);
    }
    const list = await cli(['list', ...job, '--json']);
    const checkpoints = (JSON.parse(list.stdout) as { checkpoints: { checkpoint: string; damaged?: string }[] }).checkpoints;
    for (const c of checkpoints) {
      const verify = await cli(['verify', ...job, '--checkpoint', c.checkpoint, '--json']);
      if (verify.code !== 0 || c.damaged !== undefined) {
        result.damaged.push({ round, grace, checkpoint: c.checkpoint, detail: (c.damaged ?? verify.stdout + verify.stderr).slice(0, 500) });
        continue;
      }
      const target = join(dir, `restored-${c.checkpoint}`);
      const restored = await cli(['restore', ...job, '--checkpoint', c.checkpoint, target]);
      const source = c.checkpoint === 'chk-1' ? a : b;
      if (restored.code !== 0 || !(await sameTree(source, target))) result.damaged.push({ round, grace, checkpoint: c.checkpoint, detail: `restore: ${restored.stderr}` });
    }
    result.rounds++;
    log(`round ${round + 1}/${options.rounds} (grace ${grace}, gc head start ${headStart} ms): ${checkpoints.length} checkpoints, ${result.damaged.length} damaged so far`);
    await rm(dir, { recursive: true, force: true });
  }
  await rm(work, { recursive: true, force: true });
  return result;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { values } = parseScriptArgs(USAGE, {
    options: { rounds: { type: 'string', default: '200' }, grace: { type: 'string', default: 'both' }, seed: { type: 'string' }, dir: { type: 'string', default: '.race' } },
    strict: true,
  });
  const rounds = Number(values.rounds);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  const graces: ('0' | 'default')[] = values.grace === 'both' ? ['0', 'default'] : values.grace === '0' ? ['0'] : values.grace === 'default' ? ['default'] : [];
  if (!Number.isInteger(rounds) || rounds < 1 || graces.length === 0 || !Number.isInteger(seed)) {
    process.stderr.write(`bad option\n${USAGE}`);
    process.exit(2);
  }
  process.stdout.write(`race: ${rounds} rounds, grace ${graces.join(' and ')}, seed ${seed} (replay with --seed ${seed})\n`);
  const result = await race({ rounds, graces, seed, dir: values.dir });
  process.stdout.write(`race: ${result.rounds} rounds, ${result.damaged.length} damaged checkpoints, ${result.snapshotsFailed} snapshots refused, gc removed ${result.gcRemovedPacks} packs; seed ${seed}\n`);
  for (const d of result.damaged) process.stdout.write(`  round ${d.round} (grace ${d.grace}) ${d.checkpoint}: ${d.detail}\n`);
  process.exitCode = result.damaged.length === 0 ? 0 : 1;
}
