/**
 * The local files an S3 writer builds a pack in before it goes up as one
 * PUT: memory stays one buffer per writer whatever the pack size, the PUT
 * knows its length up front, and a failed PUT is resent from the file.
 *
 * All threads of a process spool into one directory named by its pid, so
 * the process can remove it when it exits, and a later process can remove
 * the directories of processes that are gone (killed mid-snapshot, with up
 * to a pack in each file).
 */
import { rmSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { errnoOf } from '../../errors.js';

const SPOOL_PREFIX = 'chunkpoint-spool-';
const SPOOL_PATH = join(tmpdir(), `${SPOOL_PREFIX}${process.pid}`);
if (isMainThread) process.once('exit', () => rmSync(SPOOL_PATH, { recursive: true, force: true }));

let spoolRoot: Promise<string> | undefined;

/** A new private spool file for the object `key`; the caller removes it once the object is up or abandoned. */
export async function createSpoolFile(key: string): Promise<{ path: string; handle: FileHandle }> {
  const path = join(await spoolDir(), `${Math.random().toString(36).slice(2)}-${key.replace(/\//g, '_')}`);
  return { path, handle: await open(path, 'wx', 0o600) };
}

/**
 * This process's private spool directory. The name is predictable, and the
 * temp directory is everyone's: a directory someone else made there (or a
 * link) is never used; a private mkdtemp one is, and is left behind.
 */
function spoolDir(): Promise<string> {
  spoolRoot ??= (async () => {
    await mkdir(SPOOL_PATH, { mode: 0o700 }).catch((error: unknown) => {
      if (errnoOf(error) !== 'EEXIST') throw error;
    });
    const st = await lstat(SPOOL_PATH);
    const mine = st.isDirectory() && (process.getuid === undefined || st.uid === process.getuid()) && (st.mode & 0o077) === 0;
    void removeDeadSpools();
    return mine ? SPOOL_PATH : mkdtemp(join(tmpdir(), SPOOL_PREFIX));
  })();
  return spoolRoot;
}

async function removeDeadSpools(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = /^chunkpoint-spool-(\d+)$/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || alive(Number(pid))) continue;
    const path = join(tmpdir(), name);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory() === true && (process.getuid === undefined || st.uid === process.getuid())) await rm(path, { recursive: true, force: true }).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoOf(error) !== 'ESRCH';
  }
}
