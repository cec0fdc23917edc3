/**
 * Running one benchmark phase as its own process, so its wall time includes
 * everything a user would wait for and its peak RSS is its own (GNU time's
 * %M), and settling the machine between phases.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { access, lstat, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const GNU_TIME = '/usr/bin/time';

export interface Measured {
  wallMs: number;
  /** Peak resident set of the process (and the children it waited for); undefined without GNU time. */
  maxRssBytes: number | undefined;
  /** User + system CPU time of the process (and the children it waited for); undefined without GNU time. */
  cpuMs: number | undefined;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kills the command (and everything it started) after this long; default 20 minutes. */
  timeoutMs?: number;
}

/** No phase of the bench takes minutes on a working machine; one that hangs (a peer waiting on a full server) must not hang the bench. */
const DEFAULT_TIMEOUT_MS = 20 * 60_000;

let timeAvailable: boolean | undefined;

async function hasGnuTime(): Promise<boolean> {
  timeAvailable ??= await access(GNU_TIME).then(
    () => true,
    () => false,
  );
  return timeAvailable;
}

/** Runs a command to completion; a non-zero exit is an error carrying its stderr. */
export async function measure(command: string, args: readonly string[], options: RunOptions = {}): Promise<Measured> {
  const useTime = await hasGnuTime();
  // -o keeps GNU time's line out of the command's own stderr.
  const rssFile = join(tmpdir(), `chunkpoint-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const [file, argv] = useTime ? [GNU_TIME, ['-o', rssFile, '-f', '%M %U %S', command, ...args]] : [command, [...args]];
  const started = performance.now();
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    // Its own process group, so a timeout kills the command under GNU time too.
    const child = spawn(file, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      const stderrText = Buffer.concat(err).toString();
      resolve({ code: exitCode, stdout: Buffer.concat(out).toString(), stderr: timedOut ? `${stderrText}\n(killed: still running after ${Math.round(timeoutMs / 1000)} s)` : stderrText });
    });
  });
  const wallMs = performance.now() - started;
  let maxRssBytes: number | undefined;
  let cpuMs: number | undefined;
  if (useTime) {
    const text = await readFile(rssFile, 'utf8').catch(() => '');
    await rm(rssFile, { force: true });
    const [kib, user, sys] = (text.trim().split('\n').at(-1) ?? '').split(' ').map(Number);
    if (kib !== undefined && Number.isFinite(kib) && kib > 0) maxRssBytes = kib * 1024;
    if (user !== undefined && sys !== undefined && Number.isFinite(user + sys)) cpuMs = (user + sys) * 1000;
  }
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim().slice(-2000)}`);
  return { wallMs, maxRssBytes, cpuMs, stdout, stderr };
}

/** Whether a program is on the PATH. */
export async function installed(program: string): Promise<boolean> {
  try {
    await exec('sh', ['-c', 'command -v "$1"', 'sh', program]);
    return true;
  } catch {
    return false;
  }
}

export type CacheState = 'dropped' | 'warm';

/** What the bench asks for: inputs read from disk (`cold`) or from memory (`warm`, how the anchors' figures were taken). */
export type PageCacheMode = 'cold' | 'warm';

/**
 * Flushes dirty pages (so one phase's unsynced writes are not paid for by the
 * next), then prepares the page cache for the phase that reads `inputs`:
 * `cold` empties it (root on Linux only) so every byte comes from the disk;
 * `warm` reads every input file once, so the phase measures the tool and not
 * the disk. Returns the state the phase starts in ('warm' when a drop was
 * asked for and not allowed).
 */
export async function settle(mode: PageCacheMode = 'cold', inputs: readonly string[] = []): Promise<CacheState> {
  await exec('sync');
  if (mode === 'warm') {
    for (const input of inputs) await readTree(input);
    return 'warm';
  }
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3\n');
    return 'dropped';
  } catch {
    return 'warm';
  }
}

const READ_BUFFER = Buffer.allocUnsafe(1024 * 1024);

/** Reads every regular file under `path` (a file or a directory) and throws the bytes away. */
async function readTree(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st === undefined) return;
  if (st.isDirectory()) {
    for (const name of await readdir(path)) await readTree(join(path, name));
    return;
  }
  if (!st.isFile()) return;
  const fh = await open(path);
  try {
    for (let position = 0; ; position += READ_BUFFER.byteLength) {
      const { bytesRead } = await fh.read(READ_BUFFER, 0, READ_BUFFER.byteLength, position);
      if (bytesRead === 0) break;
    }
  } finally {
    await fh.close();
  }
}

/** The machine before a phase: its 1-minute load average, and whether it was at most `maxLoad` (a quiet machine). */
export interface Quiet {
  load: number;
  quiet: boolean;
  waitedMs: number;
}

/**
 * Waits (up to `maxWaitMs`) until the 1-minute load average is under
 * `maxLoad`, so a phase does not pay for the one before it; says how quiet it
 * got. Figures taken on a busy machine are noise, and the report marks them.
 */
export async function waitQuiet(maxLoad: number, maxWaitMs: number): Promise<Quiet> {
  const started = performance.now();
  for (;;) {
    const load = loadavg()[0] ?? 0;
    if (load < maxLoad) return { load, quiet: true, waitedMs: performance.now() - started };
    if (performance.now() - started >= maxWaitMs) return { load, quiet: false, waitedMs: performance.now() - started };
    await sleep(2000);
  }
}

/** CPU time counters of /proc/stat (user nice system idle iowait irq softirq steal ...), or undefined off Linux. */
export function cpuTimes(): number[] | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
  return text.split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number);
}

/** Share of CPU time the hypervisor gave to others (steal) between two readings. */
export function stealShare(start: number[], end: number[]): number {
  const total = end.reduce((sum, v, i) => sum + v - (start[i] ?? 0), 0);
  const steal = (end[7] ?? 0) - (start[7] ?? 0);
  return total > 0 ? steal / total : 0;
}
