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
import { loadCheckpoint, loadManifest } from '../src/checkpoint.js';
import { ChunkpointError } from '../src/errors.js';
import { loadHasher } from '../src/format/content-key.js';
import type { TaskEntry } from '../src/format/metadata.js';
import type { ChunkRef, FileEntry, TaskManifest } from '../src/format/manifest.js';
import { jobRootSpecFromDir, openStore } from '../src/store/open.js';
import { generateState, mutateState } from '../sim/rocks-state.js';

/** Repository root (tests run from dist/test). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(REPO_ROOT, 'bin', 'chunkpoint');

const created: string[] = [];

export async function tempDir(label = 'test'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `chunkpoint-${label}-`));
  created.push(dir);
  return dir;
}

/**
 * Runs `work` with environment variable `name` set to `value` (unset when
 * undefined), then restores it. Worker threads copy the environment when they
 * start, so a Chunkpoint whose threads start inside `work` keeps the setting.
 */
export async function withEnv<T>(name: string, value: string | undefined, work: () => Promise<T>): Promise<T> {
  const saved = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return await work();
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
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
  const { records } = await generateState(dir, bytes, { seed, writeBufferSize: 2 * 1024 * 1024 });
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
export function runCli(args: string[], options: { timeoutMs?: number; uid?: number; gid?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const ids = { ...(options.uid === undefined ? {} : { uid: options.uid }), ...(options.gid === undefined ? {} : { gid: options.gid }) };
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...ids });
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

/** Bytes before the JSON part of every chunkpoint envelope (`_metadata`, manifests, sessions). */
export const ENVELOPE_HEADER = 24;

/** The JSON part of an envelope, read without chunkpoint's decoder (an independent view of what is stored). */
export function envelopeJson<T>(data: Buffer): T {
  const length = data.readUInt32LE(12);
  return JSON.parse(data.subarray(ENVELOPE_HEADER, ENVELOPE_HEADER + length).toString('utf8')) as T;
}

/** What `_metadata` says about one task, as stored (packs as [key, size] pairs). */
export interface StoredTaskEntry {
  task: string;
  session: string;
  manifest: { key: string; size: number; checksum: string };
  packs: [string, number][];
  files: number;
  bytes: number;
  chunks: number;
}

/** The stored `_metadata` JSON of `chk-<id>` in a directory job root. */
export async function storedMetadata(jobRoot: string, id: number): Promise<{ checkpointId: number; base: number | null; jobId: string; tasks: StoredTaskEntry[] }> {
  return envelopeJson(await readFile(join(jobRoot, `chk-${id}`, '_metadata')));
}

/** Ids of the committed checkpoints of a directory job root: a `_metadata` and no tombstone (read from the directory, not through chunkpoint). */
export async function committedIds(jobRoot: string): Promise<number[]> {
  const ids: number[] = [];
  for (const name of await readdir(jobRoot).catch(() => [] as string[])) {
    const m = /^chk-(\d+)$/.exec(name);
    if (m?.[1] === undefined) continue;
    const entries = await readdir(join(jobRoot, name)).catch(() => [] as string[]);
    if (entries.includes('_metadata') && !entries.includes('_removed')) ids.push(Number(m[1]));
  }
  return ids.sort((a, b) => a - b);
}

/** Store keys of every pack and manifest the committed checkpoints of a directory job root reference, from their `_metadata`. */
export async function referencedObjects(jobRoot: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const id of await committedIds(jobRoot)) {
    for (const t of (await storedMetadata(jobRoot, id)).tasks) {
      out.add(t.manifest.key);
      for (const [key] of t.packs) out.add(key);
    }
  }
  return out;
}

/** Every file under a directory job root's `shared/` and `taskowned/` (packs, manifests, and any leftover), as store keys. */
export async function storedObjects(jobRoot: string): Promise<string[]> {
  const out: string[] = [];
  for (const area of ['shared', 'taskowned']) out.push(...(await listFiles(join(jobRoot, area))).map((p) => `${area}/${p}`));
  return out.sort();
}

/** The pack files of a directory job root, as store keys. */
export async function storedPacks(jobRoot: string): Promise<string[]> {
  return (await storedObjects(jobRoot)).filter((k) => k.endsWith('.pack'));
}

/** Absolute path of a store key in a directory job root. */
export function objectPath(jobRoot: string, key: string): string {
  return join(jobRoot, ...key.split('/'));
}

/** Store key of the pack a chunk lives in. */
export function packOf(chunk: ChunkRef): string {
  return `${chunk.handle.area}/${chunk.handle.name}`;
}

/** The task manifests of `chk-<id>` in a directory job root, decoded and checked by chunkpoint (files and chunk handles). */
export async function checkpointManifests(jobRoot: string, id: number): Promise<{ entry: TaskEntry; manifest: TaskManifest }[]> {
  const hasher = await loadHasher();
  const store = openStore(jobRootSpecFromDir(jobRoot));
  const metadata = await loadCheckpoint(store, id, hasher);
  const out: { entry: TaskEntry; manifest: TaskManifest }[] = [];
  for (const entry of metadata.tasks) out.push({ entry, manifest: (await loadManifest(store, entry, hasher)).manifest });
  return out;
}

/** Every file of `chk-<id>` (all tasks), with its chunks. */
export async function checkpointFiles(jobRoot: string, id: number): Promise<(FileEntry & { task: string })[]> {
  return (await checkpointManifests(jobRoot, id)).flatMap(({ manifest }) => manifest.files.map((f) => ({ ...f, task: manifest.task })));
}
