/**
 * The real `bin/chunkpoint`, run in a child process against a real RocksDB
 * state: output shapes (text and --json), both restore forms, exit codes and
 * the one-line error contract.
 */
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { REPO_ROOT, removeTempDirs, rocksState, runCli, tempDir, treeDigest, type CliResult, type FileInfo, type RocksState } from './support.js';

const JOB = 'cli-job';
const THREADS = ['--threads', '2'];

let state: RocksState;
let stateDigest: Map<string, FileInfo>;
let stateBytes: number;
let store: string;
let jobRoot: string;
/** First snapshot, with --json. */
let first: CliResult;
/** Second snapshot of the unchanged state, as text. */
let second: CliResult;

beforeAll(async () => {
  state = await rocksState();
  stateDigest = await treeDigest(state.dir);
  stateBytes = [...stateDigest.values()].reduce((sum, f) => sum + f.size, 0);
  store = await tempDir('cli-store');
  jobRoot = join(store, JOB);
  first = await runCli(['snapshot', state.dir, '--store', store, '--job', JOB, '--json', ...THREADS]);
  second = await runCli(['snapshot', state.dir, '--store', store, '--job', JOB, ...THREADS]);
});

afterAll(async () => {
  await removeTempDirs();
});

function expectSuccess(result: CliResult): void {
  expect(result.code, `stderr: ${result.stderr}`).toBe(0);
  expect(result.stderr).toBe('');
}

/** stdout must be exactly one JSON object (and nothing else). */
function jsonObject(result: CliResult): Record<string, unknown> {
  expectSuccess(result);
  let value: unknown;
  try {
    value = JSON.parse(result.stdout);
  } catch {
    return expect.fail(`stdout is not exactly one JSON document: ${result.stdout}`);
  }
  expect(typeof value === 'object' && value !== null && !Array.isArray(value), `not a JSON object: ${result.stdout}`).toBe(true);
  return value as Record<string, unknown>;
}

function lines(text: string): string[] {
  return text.replace(/\n$/, '').split('\n');
}

/** Exit 1 with exactly one `chunkpoint: CODE: message` line on stderr, nothing on stdout, no stack. */
function expectOneLineFailure(result: CliResult, code: string): void {
  expect(result.code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr.endsWith('\n')).toBe(true);
  expect(lines(result.stderr)).toHaveLength(1);
  expect(result.stderr).toMatch(/^chunkpoint: [A-Z_]+: /);
  expect(result.stderr.startsWith(`chunkpoint: ${code}: `), result.stderr).toBe(true);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

function expectUsageError(result: CliResult, mentions?: string): void {
  expect(result.code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(2);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^chunkpoint: usage: /);
  expect(result.stderr).not.toMatch(/^\s+at /m);
  if (mentions !== undefined) expect(result.stderr).toContain(mentions);
}

/**
 * New and shared stored bytes add up to the packs' size but for the pack format's own
 * bytes: a 16-byte header, a 32-byte trailer entry per blob and a 32-byte footer per pack.
 */
function expectPackOverheadOnly(report: Record<string, unknown>): void {
  const stored = report['storedBytes'] as number;
  const chunks = (report['storedBytesNew'] as number) + (report['storedBytesShared'] as number);
  expect(chunks).toBeLessThanOrEqual(stored);
  expect(stored - chunks).toBeLessThanOrEqual((report['packs'] as number) * 48 + (report['uniqueChunks'] as number) * 32);
}

function sstCount(): number {
  return [...stateDigest.keys()].filter((p) => p.endsWith('.sst')).length;
}

describe('snapshot', () => {
  it('--json prints one JSON object with the snapshot figures', () => {
    const result = jsonObject(first);
    for (const field of ['checkpointId', 'checkpoint', 'files', 'bytesRead', 'bytesWritten', 'filesReused', 'chunksNew', 'chunksDeduped', 'durationMs']) {
      expect(result, `missing field ${field}`).toHaveProperty(field);
    }
    expect(result['checkpointId']).toBe(1);
    expect(result['checkpoint']).toBe('chk-1');
    expect(result['files']).toBe(stateDigest.size);
    // A first snapshot reads every byte of the state and reuses nothing.
    expect(result['bytesRead']).toBe(stateBytes);
    expect(result['filesReused']).toBe(0);
    expect(result['chunksNew']).toBeGreaterThan(0);
    expect(result['bytesWritten']).toBeGreaterThan(0);
    for (const field of ['chunksDeduped', 'durationMs']) {
      expect(result[field]).toBeTypeOf('number');
      expect(result[field] as number).toBeGreaterThanOrEqual(0);
    }
  });

  it('prints a text summary; a second snapshot of unchanged state reuses the SSTs and writes no chunk and no pack', () => {
    expectSuccess(second);
    const out = lines(second.stdout);
    expect(out[0]).toMatch(new RegExp(`^chk-2 committed to .*${JOB}`));
    expect(second.stdout).toMatch(new RegExp(`state\\s+${stateDigest.size} files`));
    expect(second.stdout).toMatch(new RegExp(`reused\\s+${sstCount()} files`));
    // The mutable files are read again and found in chk-1, the checkpoint it builds on: nothing new is stored.
    expect(second.stdout).toMatch(/chunks\s+0 new, [1-9]\d* found in chk-1\n/);
    expect(second.stdout).toMatch(/written\s+\d+(\.\d)? (B|KiB): 0 packs, manifests and metadata\n/);
    expect(second.stdout).not.toContain('warning');
    expect(() => JSON.parse(second.stdout) as unknown).toThrow();
  });
});

describe('restore', () => {
  it('restore <chk-dir> <target> --json restores a byte-identical state', async () => {
    const target = join(await tempDir('cli-restore'), 'target');
    const result = jsonObject(await runCli(['restore', join(jobRoot, 'chk-1'), target, '--json', ...THREADS]));
    for (const field of ['files', 'bytes', 'durationMs', 'bytesFromRemote']) {
      expect(result, `missing field ${field}`).toHaveProperty(field);
      expect(result[field]).toBeTypeOf('number');
    }
    expect(result['files']).toBe(stateDigest.size);
    expect(result['bytes']).toBe(stateBytes);
    expect(result['bytesFromRemote']).toBeGreaterThan(0);
    expect(await treeDigest(target)).toEqual(stateDigest);
  });

  it('restore --store --job --checkpoint latest <target> restores the latest checkpoint', async () => {
    const target = join(await tempDir('cli-restore'), 'target');
    const result = await runCli(['restore', '--store', store, '--job', JOB, '--checkpoint', 'latest', target, ...THREADS]);
    expectSuccess(result);
    expect(lines(result.stdout)[0]).toMatch(/^chk-2 restored into /);
    expect(result.stdout).toContain(target);
    expect(await treeDigest(target)).toEqual(stateDigest);
  });

  it('restore --store --job --checkpoint <n> restores that checkpoint', async () => {
    const target = join(await tempDir('cli-restore'), 'target');
    const result = jsonObject(await runCli(['restore', '--store', store, '--job', JOB, '--checkpoint', '1', target, '--json', ...THREADS]));
    expect(result['checkpoint']).toBe('chk-1');
    expect(await treeDigest(target)).toEqual(stateDigest);
  });

  it('refuses a non-empty target (exit 1) and replaces it with --overwrite', async () => {
    const target = await tempDir('cli-nonempty');
    await writeFile(join(target, 'keep.txt'), 'precious');
    const refused = await runCli(['restore', join(jobRoot, 'chk-2'), target, ...THREADS]);
    expectOneLineFailure(refused, 'TARGET_NOT_EMPTY');
    // The library names its options (bad-input.test.ts); the CLI says its flags instead.
    expect(refused.stderr).toContain('pass an empty directory, --keep-matching to restore in place, or --overwrite to replace its contents');
    expect(await readdir(target)).toEqual(['keep.txt']);
    expect(await readFile(join(target, 'keep.txt'), 'utf8')).toBe('precious');

    const replaced = await runCli(['restore', join(jobRoot, 'chk-2'), target, '--overwrite', ...THREADS]);
    expectSuccess(replaced);
    expect(await treeDigest(target)).toEqual(stateDigest);
  });
});

describe('list', () => {
  it('--json prints the committed checkpoints, oldest first', async () => {
    const result = jsonObject(await runCli(['list', '--store', store, '--job', JOB, '--json', ...THREADS]));
    expect(result['store']).toBe(store);
    expect(result['job']).toBe(JOB);
    const checkpoints = result['checkpoints'] as Record<string, unknown>[];
    expect(Array.isArray(checkpoints)).toBe(true);
    expect(checkpoints.map((c) => c['checkpoint'])).toEqual(['chk-1', 'chk-2']);
    expect(checkpoints.map((c) => c['checkpointId'])).toEqual([1, 2]);
    for (const c of checkpoints) {
      expect(c['files']).toBe(stateDigest.size);
      expect(c['bytes']).toBe(stateBytes);
    }
  });

  it('prints a table in text mode', async () => {
    const result = await runCli(['list', '--store', store, '--job', JOB, ...THREADS]);
    expectSuccess(result);
    const out = lines(result.stdout);
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(/^CHECKPOINT\s+CREATED\s+FILES\s+SIZE\s+STORED\s+RATIO\s+WRITTEN$/);
    // Local date and time, human sizes with one decimal, ratios with an x.
    const row = new RegExp(`\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+${stateDigest.size}\\s+\\d+\\.\\d (KiB|MiB)\\s+\\d+\\.\\d (KiB|MiB)\\s+\\d+\\.\\d\\dx\\s+\\d+(\\.\\d)? (B|KiB|MiB)$`);
    expect(out[1]).toMatch(new RegExp(`^chk-1${row.source}`));
    expect(out[2]).toMatch(new RegExp(`^chk-2${row.source}`));
    // Aligned: every column starts at the same offset in every line.
    const header = out[0] ?? '';
    for (const column of ['FILES', 'SIZE', 'RATIO']) {
      const end = header.indexOf(column) + column.length;
      for (const row of out.slice(1)) expect(row.slice(0, end), `${column} not right-aligned in '${row}'`).toMatch(/ \S+$/);
    }
  });

  it('says so when a job has no committed checkpoint', async () => {
    const emptyStore = await tempDir('cli-empty-store');
    await mkdir(join(emptyStore, 'fresh', 'chk-1'), { recursive: true });
    const text = await runCli(['list', '--store', emptyStore, '--job', 'fresh', ...THREADS]);
    expectSuccess(text);
    expect(text.stdout).toBe('no committed checkpoints\n');
    const json = jsonObject(await runCli(['list', '--store', emptyStore, '--job', 'fresh', '--json', ...THREADS]));
    expect(json['checkpoints']).toEqual([]);
  });
});

describe('inspect', () => {
  it('--json reports every file of the checkpoint', async () => {
    const result = jsonObject(await runCli(['inspect', join(jobRoot, 'chk-1'), '--json', ...THREADS]));
    expect(result['checkpoint']).toBe('chk-1');
    expect(result['files']).toBe(stateDigest.size);
    expect(result['bytes']).toBe(stateBytes);
    const reports = result['fileReports'] as { path: string; size: number }[];
    expect(Array.isArray(reports)).toBe(true);
    expect(reports.map((r) => r.path).sort()).toEqual([...stateDigest.keys()].sort());
    for (const r of reports) expect(r.size, r.path).toBe(stateDigest.get(r.path)?.size);
    // Fields added for people and tools; the old ones keep their names.
    // A full snapshot: every chunk lives in a pack it wrote itself.
    expect(result['base']).toBeNull();
    expect(result['storedBytesShared']).toBe(0);
    expect(result['storedBytesNew']).toBeGreaterThan(0);
    expectPackOverheadOnly(result);
    for (const r of result['fileReports'] as { reused: boolean; chunks: number; path: string }[]) {
      if (r.chunks > 0) expect(r.reused, r.path).toBe(false);
    }
  });

  it('--json of chk-2 splits its stored bytes into new and shared with chk-1', async () => {
    const result = jsonObject(await runCli(['inspect', join(jobRoot, 'chk-2'), '--json', ...THREADS]));
    expect(result['base']).toBe('chk-1');
    // Unchanged state: chk-2 wrote no pack, every chunk is in chk-1's packs.
    expect(result['storedBytesShared']).toBeGreaterThan(0);
    expect(result['storedBytesNew']).toBe(0);
    expectPackOverheadOnly(result);
    for (const r of result['fileReports'] as { reused: boolean; chunks: number; path: string }[]) {
      if (r.chunks > 0) expect(r.reused, r.path).toBe(true);
    }
  });

  it('prints a report in text mode (--store/--job, latest by default)', async () => {
    const result = await runCli(['inspect', '--store', store, '--job', JOB, ...THREADS]);
    expectSuccess(result);
    const out = lines(result.stdout);
    expect(out[0]).toMatch(/^chk-2 of \S+$/);
    expect(out[1]).toMatch(/^\s+created\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(UTC[+-]\d\d:\d\d\)$/);
    expect(out).toContainEqual(expect.stringMatching(/^FILE\s+SIZE\s+CHUNKS\s+STORED\s+RATIO\s+STORED BY$/));
    expect(out).toContainEqual(expect.stringMatching(/^\s+logical size\s+\d+\.\d MiB$/));
    expect(out).toContainEqual(expect.stringMatching(/^\s+stored size\s+\d+\.\d MiB \(ratio \d+\.\d\dx\)$/));
    // chk-2 of unchanged state stored nothing anew; every chunk is in packs chk-1's snapshot wrote.
    expect(out).toContainEqual(expect.stringMatching(/^\s+new\s+0 B stored by chk-2's own snapshot$/));
    expect(out).toContainEqual(expect.stringMatching(/^\s+shared\s+\d+\.\d MiB in packs of earlier snapshots \(it builds on chk-1\)$/));
    expect(out).toContainEqual(expect.stringMatching(/^total\s+\d+\.\d MiB\s+\d+\s/));
    for (const path of stateDigest.keys()) expect(out).toContainEqual(expect.stringMatching(new RegExp(`^${path.replace(/\./g, '\\.')}\\s`)));
    // SSTs were reused from chk-1, so their chunks live in packs an earlier snapshot wrote.
    const sst = [...stateDigest.keys()].find((p) => p.endsWith('.sst') && (stateDigest.get(p)?.size ?? 0) > 0);
    expect(sst).toBeDefined();
    expect(out).toContainEqual(expect.stringMatching(new RegExp(`^${(sst ?? '').replace(/\./g, '\\.')}\\s.*earlier$`)));
    const first = await runCli(['inspect', join(jobRoot, 'chk-1'), ...THREADS]);
    expectSuccess(first);
    expect(lines(first.stdout)).toContainEqual(expect.stringMatching(new RegExp(`^${(sst ?? '').replace(/\./g, '\\.')}\\s.*chk-1$`)));
  });
});

describe('errors and exit codes', () => {
  it('exits 1 with one stderr line and no stack trace for a missing state dir', async () => {
    const errStore = await tempDir('cli-err-store');
    const missing = join(await tempDir('cli-missing'), 'nope');
    const result = await runCli(['snapshot', missing, '--store', errStore, '--job', JOB, ...THREADS]);
    expectOneLineFailure(result, 'STATE_DIR_MISSING');
    expect(result.stderr).toContain(missing);
    expect(await readdir(errStore)).toEqual([]);
  });

  it('prints the stack trace with --verbose', async () => {
    const missing = join(await tempDir('cli-missing'), 'nope');
    const result = await runCli(['snapshot', missing, '--store', await tempDir('cli-err-store'), '--job', JOB, '--verbose', ...THREADS]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(lines(result.stderr)[0]).toMatch(/^chunkpoint: STATE_DIR_MISSING: /);
    expect(result.stderr).toMatch(/^\s+at /m);
  });

  it('exits 1 with one line for other failures (unknown job, bad checkpoint path, unknown checkpoint)', async () => {
    const target = join(await tempDir('cli-err-target'), 'target');
    expectOneLineFailure(await runCli(['restore', '--store', store, '--job', 'no-such-job', target, ...THREADS]), 'JOB_NOT_FOUND');
    const noJob = await runCli(['list', '--store', store, '--job', 'no-such-job', ...THREADS]);
    expectOneLineFailure(noJob, 'JOB_NOT_FOUND');
    expect(noJob.stderr).toContain('check --store and --job');
    expect(noJob.stderr).not.toContain('`');
    expectOneLineFailure(await runCli(['inspect', jobRoot, ...THREADS]), 'INVALID_CHECKPOINT_PATH');
    expectOneLineFailure(await runCli(['restore', join(jobRoot, 'chk-9'), target, ...THREADS]), 'CHECKPOINT_NOT_FOUND');
    expectOneLineFailure(await runCli(['inspect', '--store', store, '--job', JOB, '--checkpoint', '9', ...THREADS]), 'CHECKPOINT_NOT_FOUND');
    expectOneLineFailure(await runCli(['snapshot', state.dir, '--store', store, '--job', '../escape', ...THREADS]), 'INVALID_JOB_ID');
    expect(await readdir(join(target, '..'))).toEqual([]);
  });

  it('exits 2 for an unknown option', async () => {
    const errStore = await tempDir('cli-err-store');
    expectUsageError(await runCli(['snapshot', state.dir, '--store', errStore, '--job', JOB, '--bogus']), '--bogus');
    expectUsageError(await runCli(['list', '--store', store, '--job', JOB, '--frobnicate']), '--frobnicate');
    expect(await readdir(errStore)).toEqual([]);
  });

  it('exits 2 for a missing --job', async () => {
    const errStore = await tempDir('cli-err-store');
    expectUsageError(await runCli(['snapshot', state.dir, '--store', errStore]), '--job');
    expectUsageError(await runCli(['list', '--store', store]), '--job');
    expectUsageError(await runCli(['restore', '--store', store, join(await tempDir('cli-err-target'), 't')]), '--job');
    expect(await readdir(errStore)).toEqual([]);
  });

  it('exits 2 for an unknown command, and for no command at all', async () => {
    expectUsageError(await runCli(['frobnicate']), 'frobnicate');
    const none = await runCli([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toMatch(/^usage: chunkpoint /);
  });

  it('exits 2 for missing or extra positional arguments', async () => {
    expectUsageError(await runCli(['snapshot', '--store', store, '--job', JOB]));
    expectUsageError(await runCli(['restore', join(jobRoot, 'chk-1')]));
    expectUsageError(await runCli(['restore', join(jobRoot, 'chk-1'), 'a', 'b']));
    expectUsageError(await runCli(['list', 'extra', '--store', store, '--job', JOB]));
    expectUsageError(await runCli(['restore', '--store', store, '--job', JOB, '--checkpoint', 'nine', 'target']), '--checkpoint');
    expectUsageError(await runCli(['restore', join(jobRoot, 'chk-1'), 'target', '--checkpoint', '1']), '--checkpoint');
  });
});

describe('drop', () => {
  it('removes one checkpoint; its id is never used again; unknown ids exit 1, a missing --checkpoint exits 2', async () => {
    const dropStore = await tempDir('cli-drop-store');
    for (const n of [1, 2]) {
      const r = await runCli(['snapshot', state.dir, '--store', dropStore, '--job', JOB, '--json', ...THREADS]);
      expect(jsonObject(r)['checkpoint']).toBe(`chk-${n}`);
    }
    const dropped = await runCli(['drop', '--store', dropStore, '--job', JOB, '--checkpoint', 'chk-2', ...THREADS]);
    expectSuccess(dropped);
    expect(dropped.stdout).toMatch(/^chk-2 dropped from .*; run 'chunkpoint gc'/);
    const list = jsonObject(await runCli(['list', '--store', dropStore, '--job', JOB, '--json', ...THREADS]));
    expect((list['checkpoints'] as { checkpoint: string }[]).map((c) => c.checkpoint)).toEqual(['chk-1']);
    const latest = join(await tempDir('cli-restore'), 'target');
    expectSuccess(await runCli(['restore', '--store', dropStore, '--job', JOB, latest, ...THREADS]));
    expect(await treeDigest(latest)).toEqual(stateDigest);
    // The newest checkpoint was removed, yet the next one does not take its number.
    const next = jsonObject(await runCli(['snapshot', state.dir, '--store', dropStore, '--job', JOB, '--json', ...THREADS]));
    expect(next['checkpoint']).toBe('chk-3');
    expectOneLineFailure(await runCli(['drop', '--store', dropStore, '--job', JOB, '--checkpoint', '2', ...THREADS]), 'CHECKPOINT_NOT_FOUND');
    expectUsageError(await runCli(['drop', '--store', dropStore, '--job', JOB]), '--checkpoint');
    expectUsageError(await runCli(['drop', '--store', dropStore, '--job', JOB, '--checkpoint', 'latest']), '--checkpoint');
  });
});

describe('help and version', () => {
  const common = ['--threads', '--json', '--no-progress', '--verbose', '--help'];
  const commands: Record<string, string[]> = {
    snapshot: [
      '--store',
      '--job',
      '--task',
      '--task-snapshot',
      '--chunk-size',
      '--pack-size',
      '--lease',
      '--limit-rate',
      '--immutable',
      '--no-fsync',
      '--cache',
      '--cache-max-bytes',
      '--local-copy',
      '--retain',
      '--grace',
      '--claim',
      '--drop-task',
      ...common,
    ],
    commit: ['--store', '--job', '--retain', '--grace', '--claim', '--drop-task', ...common],
    restore: ['--store', '--job', '--checkpoint', '--task', '--overwrite', '--keep-matching', '--preserve-setid', '--cache', '--cache-max-bytes', '--cache-ttl', '--local-copy', '--no-fsync', '--limit-rate', ...common],
    list: ['--store', '--job', ...common],
    inspect: ['--store', '--job', '--checkpoint', ...common],
    verify: ['--store', '--job', '--checkpoint', '--sample', '--sample-seed', '--limit-rate', ...common],
    gc: ['--store', '--job', '--grace', '--retain', '--claim', '--dry-run', ...common],
    drop: ['--store', '--job', '--checkpoint', ...common],
    copy: ['--no-fsync', '--limit-rate', ...common],
    cache: ['--max-bytes', '--ttl', ...common],
    // Registered like every other command: its help is generated from the same kind of option table.
    stress: [
      '--duration',
      '--seed',
      '--tasks',
      '--store',
      '--state-size',
      '--chunk-size',
      '--retain',
      '--grace',
      '--gc-grace',
      '--lease',
      '--drop',
      '--transient',
      '--permanent',
      '--torn',
      '--latency',
      '--kill',
      '--gc',
      '--restores',
      '--corrupt-cache',
      '--damage',
      '--full-cache-dir',
      '--no-faults',
      '--plant',
      '--fsync',
      '--keep',
      ...common,
    ],
  };

  for (const [command, options] of Object.entries(commands)) {
    it(`${command} --help exits 0 and lists every option with its default`, async () => {
      for (const flag of ['--help', '-h']) {
        const result = await runCli([command, flag]);
        expectSuccess(result);
        expect(result.stdout).toMatch(new RegExp(`^usage: chunkpoint ${command} `));
        const optionLines = lines(result.stdout).filter((l) => /^\s+(-h, )?--[a-z]/.test(l));
        // Exactly the expected options, each once, each with its default (or marked required).
        expect(optionLines.map((l) => /--[a-z-]+/.exec(l)?.[0]).sort()).toEqual([...options].sort());
        for (const line of optionLines) expect(line, `${command} --help: no default in '${line}'`).toMatch(/\((default: [^)]+|required)\)$/);
      }
    });
  }

  it('--help lists every command and the common options with their defaults, and exits 0', async () => {
    const result = await runCli(['--help']);
    expectSuccess(result);
    for (const command of Object.keys(commands)) expect(result.stdout).toMatch(new RegExp(`^\\s+${command}\\s`, 'm'));
    for (const option of common) expect(result.stdout).toMatch(new RegExp(`^\\s+(-h, )?${option}\\b.*\\((default: [^)]+|required)\\)$`, 'm'));
  });

  it('usage errors name the problem and end with a hint to the command help', async () => {
    for (const args of [
      ['snapshot', state.dir, '--store', store, '--job', JOB, '--bogus'],
      ['snapshot', state.dir, '--store', store],
      ['restore', join(jobRoot, 'chk-1')],
      ['gc', '--store', store, '--job'],
      ['drop', '--store', store, '--job', JOB],
      ['inspect'],
    ]) {
      const result = await runCli(args);
      expectUsageError(result);
      expect(lines(result.stderr).at(-1)).toBe(`run 'chunkpoint ${args[0] ?? ''} --help' for the options`);
    }
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const result = await runCli(['--version']);
    expectSuccess(result);
    expect(result.stdout).toBe(`${pkg.version}\n`);
  });
});
