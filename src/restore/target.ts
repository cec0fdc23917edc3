/**
 * The restore target: preparing it, staging files privately inside it, and
 * moving them into place only when every chunk of every file has verified.
 * Nothing here follows a link planted in the target.
 */
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readlink, realpath, rename, rm, rmdir, utimes } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { InvalidInputError, errnoOf, targetIoError } from '../errors.js';
import type { FileEntry, TaskManifest } from '../format/manifest.js';
import { forEachBounded } from '../bounded.js';
import { isWithin, resolvedPath } from '../local-paths.js';
import { fsyncDir } from '../store/fs.js';

/** Prefix of the staging directory inside the target; a leftover one marks an interrupted restore. */
export const STAGING_PREFIX = '.chunkpoint-restore-';

/** A directory a restore must neither write into nor clear: the job root it reads, the cache it uses. */
export interface GuardedDir {
  what: 'job root' | 'cache';
  path: string;
}

/**
 * A restore writes into its target and, with overwrite or keep-matching,
 * deletes what the checkpoint does not hold there. A target that is, holds,
 * or lies inside the job root or the cache would destroy the very
 * checkpoints (or cached chunks) it restores from, so it is refused before
 * anything is touched. Paths are compared after resolving links.
 */
export async function refuseGuardedTarget(target: string, guarded: readonly GuardedDir[]): Promise<void> {
  let t: string;
  try {
    t = await resolvedPath(target);
  } catch (error) {
    throw targetIoError('inspecting restore target', target, error);
  }
  for (const g of guarded) {
    // A guarded directory that cannot be resolved (a store made unreachable by a link loop, say) is compared as given:
    // that restore will fail or use the cache on its own terms, not here.
    const d = await resolvedPath(g.path).catch(() => g.path);
    const relation = t === d ? 'is' : isWithin(t, d) ? 'is inside' : isWithin(d, t) ? 'holds' : undefined;
    if (relation === undefined) continue;
    throw new InvalidInputError(
      g.what === 'cache' ? 'TARGET_OVERLAPS_CACHE' : 'TARGET_OVERLAPS_STORE',
      `restore target ${target} ${relation} the ${g.what} ${g.path}; restoring there would ${g.what === 'cache' ? 'overwrite or delete cache entries' : 'overwrite or delete the checkpoints being restored'}; restore into a directory outside it`,
    );
  }
}

export async function prepareTarget(target: string, allowNonEmpty: boolean): Promise<{ target: string; createdRoot: string | undefined }> {
  let st;
  try {
    st = await lstat(target);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw targetIoError('inspecting restore target', target, error);
    let createdRoot: string | undefined;
    try {
      createdRoot = await mkdir(target, { recursive: true });
    } catch (mkdirError) {
      throw targetIoError('creating restore target', target, mkdirError);
    }
    return { target: await realpath(target), createdRoot: createdRoot === undefined ? undefined : await realpath(createdRoot) };
  }
  // A target given as a symlink to a directory is the user's choice; resolve it once, here.
  let real = target;
  if (st.isSymbolicLink()) {
    try {
      real = await realpath(target);
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') throw targetIoError('resolving restore target', target, error);
      const to = await readlink(target).catch(() => '?');
      throw new InvalidInputError('TARGET_DANGLING_LINK', `restore target ${target} is a symbolic link to ${to}, which does not exist; create that directory, or pass another target`);
    }
  }
  if (!(await lstat(real)).isDirectory()) {
    throw new InvalidInputError('TARGET_NOT_DIRECTORY', `restore target ${target} exists and is not a directory; pass a new or empty directory`);
  }
  let entries = await readdir(real);
  // A restore that was killed leaves its private staging directory behind; nothing else
  // uses that name, so it is cleared here rather than making the target look non-empty.
  const leftovers = entries.filter((e) => e.startsWith(STAGING_PREFIX));
  for (const leftover of leftovers) {
    const path = join(real, leftover);
    try {
      if ((await lstat(path)).isDirectory()) await rm(path, { recursive: true, force: true });
    } catch (error) {
      throw targetIoError('removing the leftover of an interrupted restore', path, error);
    }
  }
  if (leftovers.length > 0) entries = await readdir(real);
  if (entries.length > 0 && !allowNonEmpty) {
    throw new InvalidInputError(
      'TARGET_NOT_EMPTY',
      `restore target ${target} is not empty (${entries.length} entries); pass an empty directory, --keep-matching to restore in place, or --overwrite to replace its contents`,
    );
  }
  return { target: real, createdRoot: undefined };
}

/** Removes the directories this restore created, deepest first, and only while they are empty. */
export async function removeCreatedDirs(target: string, createdRoot: string): Promise<void> {
  let dir = target;
  for (;;) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
    if (dir === createdRoot || !dir.startsWith(createdRoot + sep)) return;
    dir = dirname(dir);
  }
}

/** Every parent of `relPath` under `root` must be a real directory, not a link out of it. */
export async function isPlainFile(root: string, relPath: string): Promise<{ size: number } | undefined> {
  const parts = relPath.split('/');
  let path = root;
  for (const [i, part] of parts.entries()) {
    path = join(path, part);
    let st;
    try {
      st = await lstat(path);
    } catch {
      return undefined;
    }
    if (i < parts.length - 1 ? !st.isDirectory() : !st.isFile()) return undefined;
    if (i === parts.length - 1) return { size: st.size };
  }
  return undefined;
}

/** Creates every needed directory and an empty, pre-sized file for every file, refusing to follow anything planted there. */
export async function stageLayout(staging: string, files: readonly FileEntry[]): Promise<void> {
  const dirs = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/');
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
  }
  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
    await mkdir(join(staging, ...dir.split('/')), { mode: 0o700 });
  }
  for (const file of files) {
    const fh = await open(join(staging, ...file.path.split('/')), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      if (file.size > 0) await fh.truncate(file.size);
    } finally {
      await fh.close();
    }
  }
}

/**
 * Makes every staged file durable (when asked) and gives it the checkpoint's
 * mode and mtime. A file already being synced (`syncing`, started the moment
 * its last chunk landed) is not synced again. Files go in parallel: one
 * fsync at a time cost a journal commit and a cache flush each, most of a
 * second for a few dozen files.
 */
export async function finishFiles(staging: string, files: readonly FileEntry[], durable: boolean, syncing: ReadonlyMap<string, Promise<void>> = new Map()): Promise<void> {
  await forEachBounded(files, FINISH_CONCURRENCY, async (file) => {
    const path = stagedPath(staging, file.path);
    if (durable) await (syncing.get(path) ?? syncFile(path));
    await applyAttributes(path, file);
  });
}

/** Where a file of the checkpoint is staged. */
export function stagedPath(staging: string, path: string): string {
  return join(staging, ...path.split('/'));
}

/** fsync of one staged file. */
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const FINISH_CONCURRENCY = 8;

async function applyAttributes(path: string, file: FileEntry): Promise<void> {
  await chmod(path, file.mode);
  // Seconds as a number keep the sub-millisecond part a Date would drop: the next snapshot
  // must find the restored file's mtime equal to the one it recorded, or it reads everything again.
  const seconds = file.mtimeMs / 1000;
  await utimes(path, seconds, seconds);
}

/**
 * Makes the target hold exactly the checkpoint: when `clean`, first removes
 * what the checkpoint does not have (links are removed, never followed), then
 * creates directories and renames staged files into place.
 */
export async function moveIntoPlace(staging: string, target: string, state: Pick<TaskManifest, 'files' | 'directories'>, kept: ReadonlySet<string>, clean: boolean, durable: boolean): Promise<void> {
  const files = new Set(state.files.map((f) => f.path));
  const dirs = new Set(state.directories);
  for (const file of state.files) {
    const parts = file.path.split('/');
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
  }
  if (clean) {
    const stagingRel = relative(target, staging);
    const sweep = async (rel: string): Promise<void> => {
      for (const entry of await readdir(rel === '' ? target : join(target, ...rel.split('/')), { withFileTypes: true })) {
        const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
        if (relPath === stagingRel) continue;
        const abs = join(target, ...relPath.split('/'));
        if (entry.isDirectory() && dirs.has(relPath)) await sweep(relPath);
        else if (entry.isFile() && kept.has(relPath)) continue;
        else await rm(abs, { recursive: true, force: true });
      }
    };
    await sweep('');
  }
  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
    try {
      await mkdir(join(target, ...dir.split('/')), { mode: 0o755 });
    } catch (error) {
      if (errnoOf(error) !== 'EEXIST') throw error;
    }
  }
  for (const path of files) {
    if (kept.has(path)) continue;
    await rename(join(staging, ...path.split('/')), join(target, ...path.split('/')));
  }
  for (const file of state.files) if (kept.has(file.path)) await applyAttributes(join(target, ...file.path.split('/')), file);
  await rm(staging, { recursive: true, force: true });
  if (durable) {
    for (const dir of ['', ...dirs]) await fsyncDir(dir === '' ? target : join(target, ...dir.split('/')));
  }
}
