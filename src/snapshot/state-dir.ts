/**
 * Listing the state directory: every regular file and directory, with the
 * facts the reuse plan decides on (size, mtime, mode, immutability). Nothing
 * is followed; a name that would not survive the round trip to the metadata
 * and back (not UTF-8, or unsafe as a relative path) is refused here, before
 * anything is stored.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ChunkpointError, InvalidInputError, errnoOf, stateIoError } from '../errors.js';
import { printable, unsafeNameReason } from '../format/names.js';

export interface StateFile {
  relPath: string;
  absPath: string;
  size: number;
  mode: number;
  mtimeMs: number;
  immutable: boolean;
}

export const DEFAULT_IMMUTABLE = ['*.sst', '*.blob'];

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function listStateDir(root: string, isImmutable: (relPath: string) => boolean): Promise<{ files: StateFile[]; directories: string[] }> {
  try {
    // The root itself may be a link to the state (the caller named it); entries inside may not.
    const st = await stat(root);
    if (!st.isDirectory()) {
      throw new InvalidInputError('STATE_DIR_NOT_DIRECTORY', `state directory ${root} is not a directory; pass the directory that holds the state files`);
    }
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') throw new InvalidInputError('STATE_DIR_MISSING', `state directory ${root} does not exist; check the path`, { cause: error });
    throw stateIoError('reading state directory', root, error);
  }
  const files: StateFile[] = [];
  const directories: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const abs = rel === '' ? root : join(root, rel);
    const raw = await readdir(abs, { encoding: 'buffer' });
    const names = raw.map((bytes) => {
      try {
        return utf8.decode(bytes);
      } catch {
        const shown = `${rel === '' ? '' : `${rel}/`}${bytes.toString('latin1')}`;
        throw new InvalidInputError('STATE_UNSAFE_NAME', `state file '${printable(shown)}' in ${root} has a name that is not UTF-8 (bytes ${bytes.toString('hex')}), which a checkpoint cannot record exactly; rename it`);
      }
    });
    for (const name of names.sort()) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const reason = unsafeNameReason(relPath);
      if (reason !== undefined) {
        throw new InvalidInputError('STATE_UNSAFE_NAME', `state file '${printable(relPath)}' in ${root} cannot be snapshotted because ${reason}; rename it`);
      }
      const absPath = join(abs, name);
      const st = await lstat(absPath);
      if (st.isDirectory()) {
        directories.push(relPath);
        await walk(relPath);
      } else if (st.isFile()) {
        files.push({ relPath, absPath, size: st.size, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, immutable: isImmutable(relPath) });
      } else if (st.isSymbolicLink()) {
        throw new InvalidInputError('STATE_SYMLINK', `state directory entry ${relPath} is a symbolic link; chunkpoint does not follow links (snapshot a RocksDB checkpoint directory, which has none)`);
      } else {
        throw new InvalidInputError('STATE_SPECIAL_FILE', `state directory entry ${relPath} is not a regular file or directory; remove it or snapshot another directory`);
      }
    }
  };
  try {
    await walk('');
  } catch (error) {
    if (error instanceof ChunkpointError) throw error;
    throw stateIoError('listing state directory', root, error);
  }
  return { files, directories };
}

export function immutableMatcher(spec: readonly string[] | ((relPath: string) => boolean)): (relPath: string) => boolean {
  if (typeof spec === 'function') return spec;
  const patterns = spec.map((glob) => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`));
  return (relPath) => {
    const base = relPath.slice(relPath.lastIndexOf('/') + 1);
    return patterns.some((re) => re.test(base));
  };
}
