/**
 * Shared test fixtures: temporary directories, real RocksDB state, digests of
 * directory trees, and a way to run the real CLI.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, lstat, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { ChunkpointError } from '../src/errors.js';
import { generateState, mutateState } from '../scripts/rocks-state.js';

/** Repository root (tests run from dist/test). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(REPO_ROOT, 'bin', 'chunkpoint');

const created: string[] = [];

export async function tempDir(label = 'test'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `chunkpoint-${label}-`));
  created.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  await Promise.all(created.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export interface RocksState {
  dir: string;
  records: number;
}

/**
 * A real RocksDB state directory of about `bytes`, written with small
 * memtables so that even a few MiB make several SST files.
 */
export async function rocksState(bytes = 12 * 1024 * 1024, seed = 1): Promise<RocksState> {
  const dir = join(await tempDir('state'), 'db');
  const { records } = await generateState(dir, bytes, { seed, writeBufferSize: 2 * 1024 * 1024, maxFileSize: 2 * 1024 * 1024 });
  return { dir, records };
}

/** Appends new records and rewrites a key range (new SSTs and SSTs replaced by compaction). */
export async function mutateRocksState(state: RocksState, seed: number): Promise<void> {
  const { records } = await mutateState(state.dir, {
    seed,
    records: state.records,
    appendFraction: 0.1,
    rewriteFraction: 0.05,
    writeBufferSize: 2 * 1024 * 1024,
    maxFileSize: 2 * 1024 * 1024,
  });
  state.records = records;
}

export interface FileInfo {
  size: number;
  sha256: string;
}

/** Every regular file under `dir` by relative path, with size and SHA-256 (an independent hash from chunkpoint's). */
export async function treeDigest(dir: string): Promise<Map<string, FileInfo>> {
  const out = new Map<string, FileInfo>();
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(rel === '' ? dir : join(dir, rel), { withFileTypes: true });
    for (const entry of entries) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(relPath);
      else {
        const data = await readFile(join(dir, relPath));
        out.set(relPath, { size: data.byteLength, sha256: createHash('sha256').update(data).digest('hex') });
      }
    }
  };
  await walk('');
  return out;
}

/** Copies a directory tree (e.g. a job root to a new place). */
export async function copyTree(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, preserveTimestamps: true });
}

export async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    await lstat(dir);
  } catch {
    return true;
  }
  return (await readdir(dir)).length === 0;
}

/** All files below `dir`, relative paths (for asserting what a store holds). */
export async function listFiles(dir: string): Promise<string[]> {
  if (await isEmptyOrMissing(dir)) return [];
  return [...(await treeDigest(dir)).keys()].sort();
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `bin/chunkpoint` in a child process. */
export function runCli(args: string[], options: { timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`chunkpoint ${args.join(' ')} did not exit within ${options.timeoutMs ?? 120_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Awaits `promise`, which must reject with a ChunkpointError, and returns that error. */
export async function refusal(promise: Promise<unknown>): Promise<ChunkpointError> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (error) {
    expect(error, `expected a ChunkpointError, got ${String(error)}`).toBeInstanceOf(ChunkpointError);
    return error as ChunkpointError;
  }
  return expect.fail(`expected a rejection, but it resolved with ${JSON.stringify(outcome)}`);
}
