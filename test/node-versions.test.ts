/**
 * chunkpoint on the Node versions it supports (README, package.json engines),
 * checked as users meet the failures: the built CLI and library in child
 * processes, on a copy of chunkpoint laid out as an installed package
 * (<app>/node_modules/chunkpoint, its dependencies beside it).
 *
 * - A native addon that cannot load (never built, or built for another Node)
 *   fails at startup with one line naming it and the command that fixes it,
 *   and that command does fix it.
 * - `chunkpoint stress` where the RocksDB binding (a devDependency) is absent
 *   says which package to install.
 * - With CHUNKPOINT_TEST_OTHER_NODE naming a Node binary of another ABI (CI
 *   sets it to the other Node it tests), this checkout's lz4, built for the
 *   Node running the suite, is loaded by that Node: the real wrong-ABI case.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, removeTempDirs, tempDir, treeDigest } from './support.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` with this Node's directory first on PATH (so `npm` runs on it), collecting its output. */
function run(command: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}` };
    const child = spawn(command, args, { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Loads the library at `root` in a child process under `node`; prints the load error's name, code and message as JSON. */
function loadLibrary(node: string, root: string): Promise<Run> {
  const script = `import(${JSON.stringify(join(root, 'dist', 'src', 'index.js'))}).then(
    () => console.log(JSON.stringify({ loaded: true })),
    (e) => console.log(JSON.stringify({ loaded: false, name: e.name, code: e.code, message: e.message })))`;
  return run(node, ['--input-type=module', '-e', script]);
}

interface Installed {
  app: string;
  /** The copied package root: <app>/node_modules/chunkpoint. */
  root: string;
  cli: string;
}

/**
 * chunkpoint as `npm install chunkpoint` leaves it in an app: the package's
 * files copied, every dependency a link to this checkout's copy except
 * `lz4` (copied, so it can be left unbuilt and rebuilt) and the packages in
 * `without` (absent, as devDependencies are in an installed package).
 */
async function installedCopy(options: { lz4: 'built' | 'unbuilt'; without: string[] }): Promise<Installed> {
  const app = await tempDir('installed');
  await writeFile(join(app, 'package.json'), `${JSON.stringify({ name: 'app', private: true, allowScripts: { lz4: true } }, null, 2)}\n`);
  const modules = join(app, 'node_modules');
  const root = join(modules, 'chunkpoint');
  await mkdir(join(root, 'dist'), { recursive: true });
  await cp(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
  await cp(join(REPO_ROOT, 'bin'), join(root, 'bin'), { recursive: true });
  // What package.json ships of dist/, so a tree missing from `files` fails here as it would for users.
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { files: string[] };
  for (const part of pkg.files.filter((f) => f.startsWith('dist/'))) await cp(join(REPO_ROOT, part), join(root, part), { recursive: true });
  const source = join(REPO_ROOT, 'node_modules');
  for (const name of await readdir(source)) {
    if (name === 'lz4' || name === '.bin' || name.startsWith('.package-lock') || options.without.includes(name)) continue;
    await symlink(join(source, name), join(modules, name));
  }
  // An unbuilt lz4 is the package as npm unpacks it before (or without) its install script: no build/Release.
  await cp(join(source, 'lz4'), join(modules, 'lz4'), {
    recursive: true,
    filter: (from) => options.lz4 === 'built' || !from.startsWith(join(source, 'lz4', 'build', 'Release')),
  });
  return { app, root, cli: join(root, 'bin', 'chunkpoint') };
}

async function smallState(): Promise<string> {
  const dir = join(await tempDir('state'), 'db');
  await mkdir(dir);
  await writeFile(join(dir, '000001.sst'), Buffer.alloc(200_000, 'chunkpoint on every supported Node '));
  await writeFile(join(dir, 'CURRENT'), 'MANIFEST-000001\n');
  return dir;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The one line chunkpoint prints for an lz4 that does not load, with `why` (a pattern) from the loader. */
function nativeModuleLine(node: { version: string; abi: string }, why: string, app: string): RegExp {
  return new RegExp(
    `^chunkpoint: NATIVE_MODULE: the native module 'lz4' does not load in Node ${escape(node.version)} \\(modules ABI ${node.abi}\\): ${why}; ` +
      `rebuild it for this Node: cd ${escape(app)} && npm rebuild lz4\\n$`,
  );
}

const THIS_NODE = { version: process.version, abi: process.versions.modules };

describe('a native module that cannot load', () => {
  let installed: Installed;
  let state: string;

  beforeAll(async () => {
    installed = await installedCopy({ lz4: 'unbuilt', without: ['rocksdb-native'] });
    state = await smallState();
  });

  afterAll(removeTempDirs);

  it('lz4 never built (install scripts skipped): the CLI prints one line naming lz4 and the fix, before doing anything', async () => {
    const store = join(await tempDir('store'), 'store');
    const r = await run(process.execPath, [installed.cli, 'snapshot', state, '--store', store, '--job', 'j']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(nativeModuleLine(THIS_NODE, "Cannot find module 'lz4/build/Release/lz4\\.node'", installed.app));
    // Nothing was created: the failure came at startup, not from inside a worker mid-snapshot.
    expect((await readdir(dirname(store))).length).toBe(0);
  });

  it('the library fails to load with an InternalError NATIVE_MODULE carrying the same line', async () => {
    const r = await loadLibrary(process.execPath, installed.root);
    const outcome = JSON.parse(r.stdout) as { loaded: boolean; name?: string; code?: string; message?: string };
    expect(outcome).toMatchObject({ loaded: false, name: 'InternalError', code: 'NATIVE_MODULE' });
    expect(`chunkpoint: NATIVE_MODULE: ${outcome.message}\n`).toMatch(nativeModuleLine(THIS_NODE, "Cannot find module 'lz4/build/Release/lz4\\.node'", installed.app));
  });

  it('the command the line names fixes it: after it, a snapshot and restore round-trip', async () => {
    const rebuilt = await run('npm', ['rebuild', 'lz4'], { cwd: installed.app, timeoutMs: 300_000 });
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    const store = join(await tempDir('store'), 'store');
    const snap = await run(process.execPath, [installed.cli, 'snapshot', state, '--store', store, '--job', 'j', '--json']);
    expect(snap.code, snap.stderr).toBe(0);
    expect((JSON.parse(snap.stdout) as { compressionRatio: number }).compressionRatio).toBeGreaterThan(10);
    const target = join(await tempDir('restore'), 'out');
    const restore = await run(process.execPath, [installed.cli, 'restore', '--store', store, '--job', 'j', target]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await treeDigest(target)).toEqual(await treeDigest(state));
  });
});

describe('chunkpoint stress in an installed chunkpoint (no devDependencies)', () => {
  afterAll(removeTempDirs);

  it('says in one line which package to install for RocksDB', async () => {
    const installed = await installedCopy({ lz4: 'built', without: ['rocksdb-native'] });
    const r = await run(process.execPath, [installed.cli, 'stress', '--duration', '10s', '--tasks', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^chunkpoint: ROCKSDB_MISSING: chunkpoint stress writes real RocksDB state and needs the 'rocksdb-native' package, which could not be loaded \([^\n]*\); install it next to chunkpoint: npm install rocksdb-native\n$/,
    );
  });
});

const OTHER_NODE = process.env['CHUNKPOINT_TEST_OTHER_NODE'];

describe.skipIf(OTHER_NODE === undefined || OTHER_NODE === '')('lz4 built for this Node, run by another Node (CHUNKPOINT_TEST_OTHER_NODE)', () => {
  const other = OTHER_NODE ?? '';
  let otherNode: { version: string; abi: string };

  beforeAll(async () => {
    const r = await run(other, ['-p', 'JSON.stringify({ version: process.version, abi: process.versions.modules })']);
    expect(r.code, `CHUNKPOINT_TEST_OTHER_NODE=${other} does not run: ${r.stderr}`).toBe(0);
    otherNode = JSON.parse(r.stdout) as { version: string; abi: string };
    expect(otherNode.abi, `CHUNKPOINT_TEST_OTHER_NODE must be a Node of another ABI than this one (${process.version})`).not.toBe(THIS_NODE.abi);
  });

  afterAll(removeTempDirs);

  it('the CLI prints one line naming lz4, that Node and the rebuild command', async () => {
    const state = await smallState();
    const store = join(await tempDir('store'), 'store');
    const r = await run(other, [join(REPO_ROOT, 'bin', 'chunkpoint'), 'snapshot', state, '--store', store, '--job', 'j']);
    expect(r.code).toBe(1);
    // Node says "Module did not self-register" or "was compiled against a different Node.js version", depending on the addon.
    expect(r.stderr).toMatch(nativeModuleLine(otherNode, `[^\\n]*(did not self-register|different Node\\.js version)[^\\n]*`, REPO_ROOT.replace(/\/$/, '')));
  });

  it('the library fails to load with InternalError NATIVE_MODULE', async () => {
    const r = await loadLibrary(other, REPO_ROOT);
    expect(JSON.parse(r.stdout)).toMatchObject({ loaded: false, name: 'InternalError', code: 'NATIVE_MODULE' });
  });
});
