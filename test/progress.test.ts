/**
 * The progress bar, seen the way an operator sees it: the real CLI under a
 * real pseudo-terminal (util-linux `script`), where stderr is a TTY. With
 * --json (or off a terminal, which the other CLI tests cover: their stderr
 * must be empty) no bar is drawn.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, removeTempDirs, rocksState, tempDir, type RocksState } from './support.js';

let state: RocksState;
let store: string;
const JOB = 'pty-job';

beforeAll(async () => {
  state = await rocksState(4 * 1024 * 1024, 3);
  store = await tempDir('pty-store');
});

afterAll(async () => {
  await removeTempDirs();
});

function quote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Runs the CLI with a pseudo-terminal as stdin, stdout and stderr; returns what the terminal received. */
function inPty(args: string[]): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    // -q quiet, -f flush, -e the command's exit status, -c the command; the typescript file is discarded.
    const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, COLUMNS: '160', LINES: '40' } });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** A frame of the bar: label, bar, percentage, sizes, rate, ETA and a count. */
const BAR = /(snapshot|restore|verify|copy)\s+\[[#-]{24}\] +\d{1,3}% \| \d+(\.\d)? (B|KiB|MiB) \/ \d+(\.\d)? (B|KiB|MiB) \| (\d+(\.\d)? (B|KiB|MiB|GiB)|--) \/s \| ETA \S+ \| \d+\/\d+ (files|blobs|objects)/;

describe('progress bar under a pseudo-terminal', () => {
  it('snapshot, restore, verify, copy and gc draw one; the final frame is at 100%', async () => {
    const runs: [string, string[]][] = [
      ['snapshot', ['snapshot', state.dir, '--store', store, '--job', JOB, '--threads', '2']],
      ['restore', ['restore', '--store', store, '--job', JOB, join(await tempDir('pty-restore'), 't'), '--threads', '2']],
      ['verify', ['verify', '--store', store, '--job', JOB, '--threads', '2']],
      ['copy', ['copy', join(store, JOB), join(await tempDir('pty-copy'), JOB), '--threads', '2']],
    ];
    for (const [label, args] of runs) {
      const { code, output } = await inPty(args);
      expect(code, output).toBe(0);
      const frames = output.split(/\r|\n/).filter((l) => l.includes(`${label} `) && l.includes('['));
      expect(frames.length, `${label}: no progress bar in\n${output}`).toBeGreaterThan(0);
      for (const frame of frames) expect(frame).toMatch(BAR);
      expect(frames.at(-1)).toMatch(/\] 100% \|/);
      // The summary still follows on stdout.
      expect(output).toMatch(label === 'verify' ? /no problems found/ : label === 'copy' ? /^copied /m : new RegExp(`^chk-1 (committed|restored)`, 'm'));
    }
    const gc = await inPty(['gc', '--store', store, '--job', JOB]);
    expect(gc.code, gc.output).toBe(0);
    expect(gc.output).toMatch(/gc\s+\d+ objects scanned, \d+ to remove \(\d+(\.\d)? (B|KiB|MiB)\) \| \d+s/);
  });

  it('--json and --no-progress draw none', async () => {
    const json = await inPty(['snapshot', state.dir, '--store', store, '--job', JOB, '--threads', '2', '--json']);
    expect(json.code, json.output).toBe(0);
    // The terminal received exactly one JSON line: no bar, no escape sequences.
    const text = json.output.replace(/\r\n/g, '\n');
    expect(text).not.toContain('\x1b');
    expect(text).not.toContain('[#');
    expect(() => JSON.parse(text) as unknown).not.toThrow();
    const quiet = await inPty(['restore', '--store', store, '--job', JOB, join(await tempDir('pty-restore'), 't'), '--threads', '2', '--no-progress']);
    expect(quiet.code, quiet.output).toBe(0);
    expect(quiet.output).not.toMatch(BAR);
    expect(quiet.output).toMatch(/^chk-2 restored into /m);
  });
});
