/**
 * The restore target: preparing it, staging files privately inside it, and
 * swapping them into place only when every chunk of every file has verified.
 * Nothing here follows a link planted in the target.
 */
import { constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, readlink, realpath, rename, rm, rmdir, utimes } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { InvalidInputError, apiName, errnoOf, targetIoError } from '../errors.js';
import type { FileEntry, TaskManifest } from '../format/manifest.js';
import { forEachBounded } from '../bounded.js';
import { isWithin, resolvedPath } from '../local-paths.js';
import { fsyncDir } from '../store/fs.js';
import { linkOrCopy } from '../local-copy.js';

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

/**
 * Makes or checks the target directory. Every file system call here is on
 * the target, so every failure is a target error (TARGET_…, naming the path
 * and the fix), never UNEXPECTED or a store error.
 */
export async function prepareTarget(target: string, allowNonEmpty: boolean): Promise<{ target: string; createdRoot: string | undefined }> {
  let st;
  try {
    st = await lstat(target);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw targetIoError('inspecting restore target', target, error);
    const createdRoot = await onTarget('creating restore target', target, () => mkdir(target, { recursive: true }));
    return {
      target: await onTarget('resolving restore target', target, () => realpath(target)),
      createdRoot: createdRoot === undefined ? undefined : await onTarget('resolving restore target', createdRoot, () => realpath(createdRoot)),
    };
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
  if (!(await onTarget('inspecting restore target', real, () => lstat(real))).isDirectory()) {
    throw new InvalidInputError('TARGET_NOT_DIRECTORY', `restore target ${target} exists and is not a directory; pass a new or empty directory`);
  }
  let entries = await onTarget('listing restore target', real, () => readdir(real));
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
  if (leftovers.length > 0) entries = await onTarget('listing restore target', real, () => readdir(real));
  if (entries.length > 0 && !allowNonEmpty) {
    const replaced = entries.filter((e) => e.startsWith(REPLACED_PREFIX));
    const why = replaced.length > 0 ? `; ${replaced.map((e) => join(real, e)).join(', ')} holds what an interrupted restore was replacing: move out what you need first` : '';
    throw new InvalidInputError(
      'TARGET_NOT_EMPTY',
      `restore target ${target} is not empty (${entries.length} entries)${why}; pass an empty directory, ${apiName('keepMatching')} to restore in place, or ${apiName('overwrite')} to replace its contents`,
    );
  }
  return { target: real, createdRoot: undefined };
}

/** Runs one file system call on the target; its failure is a target error. */
async function onTarget<T>(op: string, where: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw targetIoError(op, where, error);
  }
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

/**
 * Creates every directory the checkpoint's files need, refusing to follow
 * anything planted there. Directories get their final mode now: the
 * staging root is owner-only, so nobody reaches them before the swap.
 */
export async function stageDirectories(staging: string, files: readonly FileEntry[]): Promise<void> {
  const dirs = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/');
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
  }
  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
    await mkdir(join(staging, ...dir.split('/')), { mode: 0o755 });
  }
}

/** An empty, pre-sized file for each of `files`, for workers to write chunks into. */
export async function stageFiles(staging: string, files: readonly FileEntry[]): Promise<void> {
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
  // Only what differs: a file linked from a task-local copy usually has both right already, and
  // leaving it alone keeps that copy's ctime, so the next restore can trust it without reading it.
  const st = await lstat(path);
  if ((st.mode & 0o7777) !== file.mode) await chmod(path, file.mode);
  // Seconds as a number keep the sub-millisecond part a Date would drop: the next snapshot
  // must find the restored file's mtime equal to the one it recorded, or it reads everything again.
  const seconds = file.mtimeMs / 1000;
  if (st.mtimeMs !== file.mtimeMs) await utimes(path, seconds, seconds);
}

/**
 * Makes the target hold exactly the checkpoint, all or nothing: the staged
 * tree is completed first (empty directories, kept files linked in), then
 * the target's old entries are moved aside into a private directory and the
 * new ones moved in (renames within one directory), and the old ones are
 * deleted only then. A failure before the last step puts every entry back,
 * so the target is left as it was; a crash leaves the old entries in a
 * `.chunkpoint-replaced-*` directory, which no restore deletes unasked.
 * Returns the directory of old entries when deleting it failed (the restore
 * itself succeeded; the caller warns).
 */
export async function swapIntoPlace(staging: string, target: string, state: Pick<TaskManifest, 'files' | 'directories'>, kept: ReadonlySet<string>, durable: boolean): Promise<string | undefined> {
  for (const dir of state.directories) await mkdir(stagedPath(staging, dir), { recursive: true, mode: 0o755 });
  for (const path of kept) {
    const from = join(target, ...path.split('/'));
    await linkOrCopy(from, stagedPath(staging, path), () => new InvalidInputError('TARGET_SPECIAL_FILE', `target file ${from}, kept because it verified, was replaced by something that is not a regular file during the restore; restore again`));
  }

  const stagingName = basename(staging);
  const replaced = join(target, `${REPLACED_PREFIX}${randomBytes(6).toString('hex')}`);
  const old = (await readdir(target)).filter((e) => e !== stagingName);
  const incoming = await readdir(staging);
  const movedOut: string[] = [];
  const movedIn: string[] = [];
  if (old.length > 0) await mkdir(replaced, { mode: 0o700 });
  try {
    for (const name of old) {
      await rename(join(target, name), join(replaced, name));
      movedOut.push(name);
    }
    for (const name of incoming) {
      await rename(join(staging, name), join(target, name));
      movedIn.push(name);
    }
  } catch (error) {
    const undone = await undoSwap(staging, target, replaced, movedIn, movedOut);
    throw targetIoError(
      undone ? 'moving the restored files into place (the target is left as it was)' : `moving the restored files into place (its previous entries could not all be put back: they are in ${replaced})`,
      target,
      error,
    );
  }
  // Kept files are the old inodes, linked: their attributes are set only now that the swap holds.
  for (const path of kept) {
    const file = state.files.find((f) => f.path === path);
    if (file !== undefined) await applyAttributes(join(target, ...path.split('/')), file);
  }
  if (durable) {
    const dirs = new Set(state.directories);
    for (const file of state.files) {
      const parts = file.path.split('/');
      for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
    }
    for (const dir of ['', ...dirs]) await fsyncDir(dir === '' ? target : join(target, ...dir.split('/')));
  }
  await rm(staging, { recursive: true, force: true });
  if (old.length === 0) return undefined;
  try {
    await rm(replaced, { recursive: true, force: true });
    return undefined;
  } catch {
    return replaced;
  }
}

/** Prefix of the directory that holds a target's previous entries while a restore swaps the new ones in. */
export const REPLACED_PREFIX = '.chunkpoint-replaced-';

async function undoSwap(staging: string, target: string, replaced: string, movedIn: readonly string[], movedOut: readonly string[]): Promise<boolean> {
  let ok = true;
  for (const name of [...movedIn].reverse()) await rename(join(target, name), join(staging, name)).catch(() => (ok = false));
  for (const name of [...movedOut].reverse()) await rename(join(replaced, name), join(target, name)).catch(() => (ok = false));
  if (ok) await rmdir(replaced).catch(() => undefined);
  return ok;
}
