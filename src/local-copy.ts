/**
 * Task-local recovery (the point of FLINK-7873, made safe): a snapshot keeps
 * a local copy of the state it snapshotted — immutable files as hard links
 * (free: RocksDB never rewrites an SST once written), the few mutable ones
 * as copies — and a restore on the same machine takes each file from there
 * instead of the store, in O(files), when it can prove the copy still holds
 * the checkpoint's bytes.
 *
 * The proof is the identity recorded when the copy was made: device, inode,
 * size, mtime and ctime. Whatever writes to the file, or links, renames or
 * chmods it, moves its ctime; such a copy is read and every chunk hashed
 * against the checkpoint's content keys before it is trusted (its identity
 * is then recorded again), and a copy that fails is never used. Flink's
 * local recovery trusts its local files unchecked; this does not.
 *
 * Layout: `<dir>/v1/<hash of the job root's location>/<task>/<file key>`
 * plus `<file key>.id` (the identity, JSON), where the file key is a
 * content key over the file's size and chunk keys, so the same file in the
 * next checkpoint has the same name. A snapshot keeps only its own files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rm, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { errnoOf, InvalidInputError } from './errors.js';
import { forEachBounded } from './bounded.js';
import { keyToBytes, type Hasher } from './format/content-key.js';
import type { FileEntry } from './format/manifest.js';
import { TEMP_PREFIX } from './format/names.js';
import { isWithin, resolvedPath } from './local-paths.js';

export interface LocalCopyOptions {
  /** Directory of the task-local copy, on the same volume as the state (so immutable files are hard links, not copies). */
  dir: string;
}

const LAYOUT_VERSION = 'v1';
const IDENTITY_SUFFIX = '.id';
const CONCURRENCY = 8;
/** Far above a recorded identity's few hundred bytes. */
const MAX_IDENTITY_SIZE = 4096;
const COPY_BUFFER = 1024 * 1024;
/** Never follows a link, never blocks on a FIFO (a FIFO opens at once and is refused by fstat). */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** A file that is not (or is no longer) a regular file where one was expected: `code` names the place. */
export class NotRegularFileError extends InvalidInputError {}

/**
 * Opens a regular file for reading without following a link or blocking on
 * a FIFO; a FIFO, device, directory or link there is refused with `refuse`.
 */
async function openRegular(path: string, refuse: () => Error): Promise<{ fh: FileHandle; size: number; mode: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, READ_FLAGS);
  } catch (error) {
    if (errnoOf(error) === 'ELOOP') throw refuse();
    throw error;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw refuse();
    return { fh, size: st.size, mode: st.mode & 0o777 };
  } catch (error) {
    await fh.close();
    throw error;
  }
}

/**
 * Copies a regular file from the descriptor it was checked on, so a file
 * swapped for a FIFO or a link can neither block the copy nor be followed.
 * `exclusive`: the destination must not exist.
 */
async function copyRegular(from: string, to: string, exclusive: boolean, refuse: () => Error): Promise<void> {
  const source = await openRegular(from, refuse);
  try {
    const out = await open(to, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (exclusive ? constants.O_EXCL : constants.O_TRUNC), source.mode);
    try {
      const buf = Buffer.allocUnsafe(Math.min(COPY_BUFFER, Math.max(1, source.size)));
      for (let position = 0; ; ) {
        const { bytesRead } = await source.fh.read(buf, 0, buf.byteLength, position);
        if (bytesRead === 0) break;
        await out.write(buf, 0, bytesRead, position);
        position += bytesRead;
      }
    } finally {
      await out.close();
    }
  } finally {
    await source.fh.close();
  }
}

/** What proves a local copy unchanged: all of it must be as recorded. */
interface Identity {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

/** Where one task of one job root keeps its local copy. */
export function localCopyDir(options: LocalCopyOptions, jobRootLocation: string, task: string): string {
  const id = createHash('sha256').update(jobRootLocation).digest('hex').slice(0, 32);
  return join(resolve(options.dir), LAYOUT_VERSION, id, task);
}

/** A file's content identity in the checkpoint: size and chunk keys, hashed. */
export function fileKey(hasher: Hasher, file: Pick<FileEntry, 'size' | 'chunks'>): string {
  const buf = Buffer.alloc(8 + file.chunks.length * 16);
  buf.writeBigUInt64LE(BigInt(file.size), 0);
  file.chunks.forEach((c, i) => keyToBytes(c.key).copy(buf, 8 + i * 16));
  return hasher.contentKey(buf);
}

async function identityOf(path: string): Promise<Identity | undefined> {
  const st = await lstat(path, { bigint: true }).catch(() => undefined);
  if (st === undefined || !st.isFile()) return undefined;
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

function sameIdentity(a: Identity | undefined, b: Identity | undefined): boolean {
  return a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** The identity recorded beside a copy; none when it is missing, unreadable, or not a regular file (a FIFO there must not block). */
async function recordedIdentity(path: string): Promise<Identity | undefined> {
  try {
    const { fh, size } = await openRegular(path + IDENTITY_SUFFIX, () => new Error('not a regular file'));
    let text: string;
    try {
      if (size > MAX_IDENTITY_SIZE) return undefined;
      const buf = Buffer.alloc(size);
      const { bytesRead } = await fh.read(buf, 0, size, 0);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
    const value = JSON.parse(text) as Partial<Identity>;
    const fields = ['dev', 'ino', 'size', 'mtimeNs', 'ctimeNs'] as const;
    return fields.every((f) => typeof value[f] === 'string') ? (value as Identity) : undefined;
  } catch {
    return undefined;
  }
}

/** Records the copy's identity as it is now: only after its content was put there by us, or verified. */
export async function rememberIdentity(path: string): Promise<void> {
  const identity = await identityOf(path);
  if (identity === undefined) return;
  const tmp = join(resolve(path, '..'), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
  await writeFile(tmp, JSON.stringify(identity), { mode: 0o600 });
  await rename(tmp, path + IDENTITY_SUFFIX);
}

/** The local copy must not be snapshotted as state, nor be swapped away by a restore into its parent. */
export async function refuseLocalCopyInside(options: LocalCopyOptions, dir: string, what: 'state directory' | 'restore target'): Promise<void> {
  const [copy, other] = await Promise.all([resolvedPath(resolve(options.dir)).catch(() => resolve(options.dir)), resolvedPath(dir).catch(() => dir)]);
  if (copy === other || isWithin(copy, other) || isWithin(other, copy)) {
    throw new InvalidInputError(
      what === 'state directory' ? 'LOCAL_COPY_INSIDE_STATE' : 'TARGET_OVERLAPS_LOCAL_COPY',
      `the local copy ${options.dir} and the ${what} ${dir} overlap; keep the local copy in a directory of its own beside the state (same volume, so files are linked, not copied)`,
    );
  }
}

/**
 * After a snapshot: makes the task's local copy hold exactly the files just
 * snapshotted (links for immutable files, copies for the rest), each checked
 * to be the version the snapshot read (size and mtime as recorded; a copy's
 * source unchanged across the copy). Never fails the snapshot: what cannot
 * be kept is said in the returned warnings.
 */
export async function keepLocalCopy(
  hasher: Hasher,
  options: LocalCopyOptions,
  jobRootLocation: string,
  task: string,
  files: ReadonlyArray<{ entry: FileEntry; absPath: string }>,
): Promise<{ files: number; bytes: number; warnings: string[] }> {
  const dir = localCopyDir(options, jobRootLocation, task);
  const warnings: string[] = [];
  const out = { files: 0, bytes: 0, warnings };
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    warnings.push(`the local copy ${options.dir} cannot be created (${errnoOf(error) ?? String(error)}); no task-local copy was kept`);
    return out;
  }
  const keep = new Set<string>();
  let failed = 0;
  let firstFailure = '';
  await forEachBounded(
    files.filter((f) => f.entry.chunks.length > 0),
    CONCURRENCY,
    async ({ entry, absPath }) => {
      const key = fileKey(hasher, entry);
      const dest = join(dir, key);
      keep.add(key);
      try {
        if (sameIdentity(await identityOf(dest), await recordedIdentity(dest))) {
          out.files++;
          out.bytes += entry.size;
          return;
        }
        await rm(dest, { force: true });
        const special = (): Error =>
          new NotRegularFileError('STATE_SPECIAL_FILE', `state file ${absPath} was replaced by something that is not a regular file after the snapshot read it`);
        if (entry.immutable) {
          await linkOrCopy(absPath, dest, special);
          const st = await lstat(dest);
          if (!st.isFile()) throw special();
          if (st.size !== entry.size || st.mtimeMs !== entry.mtimeMs) throw new Error(`it changed after the snapshot read it`);
        } else {
          const before = await lstat(absPath);
          if (!before.isFile()) throw special();
          await copyRegular(absPath, dest, false, special);
          const after = await lstat(absPath);
          if (before.size !== entry.size || before.mtimeMs !== entry.mtimeMs || after.size !== entry.size || after.mtimeMs !== entry.mtimeMs) throw new Error(`it changed after the snapshot read it`);
          // The checkpoint's mtime, so a restore that links the copy in has nothing to change on it.
          await utimes(dest, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
        }
        await rememberIdentity(dest);
        out.files++;
        out.bytes += entry.size;
      } catch (error) {
        keep.delete(key);
        await rm(dest, { force: true }).catch(() => undefined);
        failed++;
        firstFailure ||= `${entry.path}: ${error instanceof Error ? error.message : String(error)}`;
      }
    },
  );
  if (failed > 0) warnings.push(`${failed} file(s) were not kept in the local copy ${options.dir} (first: ${firstFailure}); a restore fetches them from the store`);
  // Only this snapshot's files stay: the local copy serves the latest checkpoint.
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const base = name.endsWith(IDENTITY_SUFFIX) ? name.slice(0, -IDENTITY_SUFFIX.length) : name;
    if (!keep.has(base)) await rm(join(dir, name), { force: true }).catch(() => undefined);
  }
  return out;
}

/** A local copy of one checkpoint file: trusted by identity, or to be verified by reading. */
export interface LocalCandidate {
  file: FileEntry;
  path: string;
  trusted: boolean;
  /** The copy's identity when it was found: what is staged must be this very file. */
  identity: Identity;
}

/** The local copies a restore may use for `files`: regular files of the right size, trusted when their identity is as recorded. */
export async function findLocalCopies(hasher: Hasher, options: LocalCopyOptions, jobRootLocation: string, task: string, files: readonly FileEntry[]): Promise<LocalCandidate[]> {
  const dir = localCopyDir(options, jobRootLocation, task);
  const out: LocalCandidate[] = [];
  await forEachBounded(
    files.filter((f) => f.chunks.length > 0),
    CONCURRENCY,
    async (file) => {
      const path = join(dir, fileKey(hasher, file));
      const identity = await identityOf(path);
      if (identity === undefined || identity.size !== String(file.size)) return;
      out.push({ file, path, trusted: sameIdentity(identity, await recordedIdentity(path)), identity });
    },
  );
  return out;
}

/**
 * Puts a trusted local copy into a restore's staged tree: an immutable file
 * as a link where it can, a mutable one as a copy. Returns the copy's identity from before the link when it linked: the
 * link, and the swap's rename after it, move the copy's ctime, and
 * `refreshIdentity` records the new one once the restore is done.
 * Returns null, staging nothing, when the copy is no longer the very
 * regular file that was found (replaced, by a FIFO or a link say): the
 * restore fetches that file instead. Nothing here follows a link or blocks.
 */
export async function stageLocalCopy(candidate: LocalCandidate, staged: string): Promise<LinkedCopy | undefined | null> {
  const found = candidate.identity;
  const unusable = (): Error => new NotRegularFileError('LOCAL_COPY_SPECIAL_FILE', `local copy ${candidate.path} is no longer the regular file that was found`);
  try {
    // A mutable file is copied: linked, the database's next append to the restored file would change the local copy too.
    if (!candidate.file.immutable) {
      await copyRegular(candidate.path, staged, true, unusable);
    } else {
      const before = await identityOf(candidate.path);
      if (before === undefined || before.dev !== found.dev || before.ino !== found.ino) return null;
      if ((await linkOrCopy(candidate.path, staged, unusable)) === 'linked') {
        const st = await lstat(staged, { bigint: true });
        // The link is of whatever the name held at that moment: it must still be the file that was found.
        if (!st.isFile() || String(st.dev) !== found.dev || String(st.ino) !== found.ino || String(st.size) !== found.size || String(st.mtimeNs) !== found.mtimeNs) {
          await rm(staged, { force: true });
          return null;
        }
        return { path: candidate.path, before };
      }
    }
    const st = await lstat(staged);
    if (!st.isFile() || st.size !== candidate.file.size) {
      await rm(staged, { force: true });
      return null;
    }
    return undefined;
  } catch (error) {
    if (!(error instanceof NotRegularFileError)) throw error;
    await rm(staged, { force: true }).catch(() => undefined);
    return null;
  }
}

/** A local copy a restore linked into its target, and its identity from before. */
export interface LinkedCopy {
  path: string;
  before: Identity;
}

/**
 * Records a linked copy's identity after the restore, when only its ctime
 * moved (what the restore's own link and rename do): the next restore then
 * trusts it without reading it. Anything else changed, and the recorded
 * identity stays, so the next restore reads it first.
 */
export async function refreshIdentity(linked: LinkedCopy): Promise<void> {
  const now = await identityOf(linked.path);
  const { before } = linked;
  if (now !== undefined && now.dev === before.dev && now.ino === before.ino && now.size === before.size && now.mtimeNs === before.mtimeNs) await rememberIdentity(linked.path);
}

/**
 * A local file joins the staged tree as a hard link (same volume: free); a
 * copy where links are refused or cross volumes, from a checked descriptor
 * (`refuse` names what is wrong when `from` is not a regular file).
 */
export async function linkOrCopy(from: string, to: string, refuse: () => Error): Promise<'linked' | 'copied'> {
  try {
    await link(from, to);
    return 'linked';
  } catch (error) {
    const errno = errnoOf(error);
    if (errno !== 'EPERM' && errno !== 'EMLINK' && errno !== 'ENOTSUP' && errno !== 'EOPNOTSUPP' && errno !== 'EXDEV') throw error;
    await copyRegular(from, to, true, refuse);
    return 'copied';
  }
}
