/**
 * Restore coordinator (main thread). Validates the checkpoint's metadata,
 * stages every file in a private directory inside the target, lets workers
 * fetch, verify and write the chunks, and moves the files into place only
 * when every chunk of every file has verified. On any failure the staging
 * directory is removed and the target is left as it was.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, utimes } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadCheckpoint, type LocatedCheckpoint } from './checkpoint.js';
import type { Hasher } from './content-key.js';
import { ChunkpointError, InvalidInputError, errnoOf, storeIoError } from './errors.js';
import { checkpointDirName } from './handle.js';
import type { CheckpointMetadata } from './metadata.js';
import { forEachBounded, type WorkerPool } from './pool.js';
import { fsyncDir } from './store/fs.js';

/** Prefix of the staging directory inside the target; a leftover one marks an interrupted restore. */
export const STAGING_PREFIX = '.chunkpoint-restore-';

export interface RestoreOptions {
  /**
   * Allow a non-empty target: its contents are replaced by the checkpoint's
   * (entries not in the checkpoint are deleted). Without it a non-empty target
   * is refused.
   */
  overwrite?: boolean;
  /** fsync restored files and directories before reporting success (default true). */
  durable?: boolean;
  signal?: AbortSignal;
}

export interface RestoreResult {
  checkpointId: number;
  checkpoint: string;
  files: number;
  /** Logical bytes restored. */
  bytes: number;
  chunks: number;
  /** Stored bytes fetched from the store. */
  bytesFromRemote: number;
  durationMs: number;
  throughputMBps: number;
}

export async function restore(pool: WorkerPool, hasher: Hasher, located: LocatedCheckpoint, targetDir: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  const started = performance.now();
  const durable = options.durable ?? true;
  const { store, checkpointId } = located;
  // Metadata is fully validated (names, sizes, handles) before the target is touched.
  const metadata = await loadCheckpoint(store, checkpointId, hasher);
  options.signal?.throwIfAborted();

  const { target, created } = await prepareTarget(resolve(targetDir), options.overwrite === true);
  const staging = join(target, `${STAGING_PREFIX}${randomBytes(6).toString('hex')}`);
  let bytesFromRemote = 0;
  let chunks = 0;
  try {
    await mkdir(staging, { mode: 0o700 });
    await stageLayout(staging, metadata);

    function* tasks(): Generator<{ path: string; index: number; fileOffset: number }> {
      for (const file of metadata.files) {
        let fileOffset = 0;
        for (let index = 0; index < file.chunks.length; index++) {
          yield { path: file.path, index, fileOffset };
          fileOffset += (file.chunks[index] as { rawLength: number }).rawLength;
        }
      }
    }
    const byPath = new Map(metadata.files.map((f) => [f.path, f]));
    await forEachBounded(tasks(), pool.threads * 2, async (t) => {
      options.signal?.throwIfAborted();
      const chunk = byPath.get(t.path)?.chunks[t.index];
      if (chunk === undefined) throw new Error(`internal: no chunk ${t.index} for ${t.path}`);
      const result = await pool.run(
        {
          op: 'restoreChunk',
          store: store.spec,
          handle: chunk.handle,
          key: chunk.key,
          rawLength: chunk.rawLength,
          target: join(staging, ...t.path.split('/')),
          fileOffset: t.fileOffset,
          relPath: t.path,
          chunkIndex: t.index,
        },
        options.signal,
      );
      bytesFromRemote += result.bytesFetched;
      chunks++;
    });
    options.signal?.throwIfAborted();

    await finishFiles(staging, metadata, durable);
    await moveIntoPlace(staging, target, options.overwrite === true, durable);
  } catch (error) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    if (created) await rmdir(target).catch(() => undefined);
    if (error instanceof ChunkpointError) throw error;
    throw storeIoError('restoring into', target, error);
  }

  const durationMs = performance.now() - started;
  const bytes = metadata.files.reduce((sum, f) => sum + f.size, 0);
  return {
    checkpointId,
    checkpoint: checkpointDirName(checkpointId),
    files: metadata.files.length,
    bytes,
    chunks,
    bytesFromRemote,
    durationMs: Math.round(durationMs),
    throughputMBps: Math.round((bytes / 1e6 / (durationMs / 1000)) * 100) / 100,
  };
}

async function prepareTarget(target: string, overwrite: boolean): Promise<{ target: string; created: boolean }> {
  let st;
  try {
    st = await lstat(target);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw storeIoError('inspecting restore target', target, error);
    try {
      await mkdir(target, { recursive: true });
    } catch (mkdirError) {
      throw storeIoError('creating restore target', target, mkdirError);
    }
    return { target: await realpath(target), created: true };
  }
  // A target given as a symlink to a directory is the user's choice; resolve it once, here.
  const real = st.isSymbolicLink() ? await realpath(target) : target;
  if (!(await lstat(real)).isDirectory()) {
    throw new InvalidInputError('TARGET_NOT_DIRECTORY', `restore target ${target} exists and is not a directory; pass a new or empty directory`);
  }
  const entries = await readdir(real);
  if (entries.length > 0 && !overwrite) {
    throw new InvalidInputError(
      'TARGET_NOT_EMPTY',
      `restore target ${target} is not empty (${entries.length} entries); pass an empty directory, or --overwrite to replace its contents with the checkpoint`,
    );
  }
  return { target: real, created: false };
}

/** Creates every directory and an empty, pre-sized file for every file, refusing to follow anything planted there. */
async function stageLayout(staging: string, metadata: CheckpointMetadata): Promise<void> {
  const dirs = new Set<string>(metadata.directories);
  for (const file of metadata.files) {
    const parts = file.path.split('/');
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
  }
  for (const dir of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
    await mkdir(join(staging, ...dir.split('/')), { mode: 0o700 });
  }
  for (const file of metadata.files) {
    const fh = await open(join(staging, ...file.path.split('/')), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      if (file.size > 0) await fh.truncate(file.size);
    } finally {
      await fh.close();
    }
  }
}

async function finishFiles(staging: string, metadata: CheckpointMetadata, durable: boolean): Promise<void> {
  for (const file of metadata.files) {
    const path = join(staging, ...file.path.split('/'));
    if (durable) {
      const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    await chmod(path, file.mode);
    const mtime = new Date(file.mtimeMs);
    await utimes(path, mtime, mtime);
  }
  for (const dir of metadata.directories) await chmod(join(staging, ...dir.split('/')), 0o755);
}

async function moveIntoPlace(staging: string, target: string, overwrite: boolean, durable: boolean): Promise<void> {
  const stagingName = staging.slice(dirname(staging).length + 1);
  if (overwrite) {
    for (const name of await readdir(target)) {
      // rm() removes a symlink itself, never what it points to.
      if (name !== stagingName) await rm(join(target, name), { recursive: true, force: true });
    }
  }
  for (const name of await readdir(staging)) {
    await rename(join(staging, name), join(target, name));
  }
  await rmdir(staging);
  if (durable) await fsyncDir(target);
}
