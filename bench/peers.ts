/**
 * The peers chunkpoint is compared with, run as their users run them:
 * `tar | lz4 -1` (an archive, no dedupe, no fsync) and borg with LZ4 and no
 * encryption (a deduplicating repository that fsyncs its segments).
 */
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { installed, measure, type Measured } from './measure.js';

export const INSTALL_HINT = 'apt-get install -y borgbackup lz4 restic';

export interface PeerAvailability {
  tarLz4: boolean;
  borg: boolean;
  restic: boolean;
}

export async function findPeers(): Promise<PeerAvailability> {
  const [tar, lz4, borg, restic] = await Promise.all([installed('tar'), installed('lz4'), installed('borg'), installed('restic')]);
  return { tarLz4: tar && lz4, borg, restic };
}

/** `tar -cf - <dir> | lz4 -1 > <archive>`: the pipeline's exit status is lz4's, so a missing output also fails. */
export async function tarLz4Create(stateDir: string, archive: string): Promise<Measured> {
  return measure('sh', ['-c', 'tar -cf - -C "$1" "$2" | lz4 -1 -q - "$3" && test -s "$3"', 'sh', dirname(stateDir), basename(stateDir), archive]);
}

export async function tarLz4Extract(archive: string, targetDir: string): Promise<Measured> {
  await rm(targetDir, { recursive: true, force: true });
  await mkdir(targetDir, { recursive: true });
  return measure('sh', ['-c', 'lz4 -dc -q "$1" | tar -xf - -C "$2"', 'sh', archive, targetDir]);
}

/**
 * One borg repository with its own config and cache directories (BORG_BASE_DIR),
 * so runs never see the user's borg state and never prompt.
 */
export class BorgRepo {
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly repo: string,
    home: string,
  ) {
    this.env = {
      ...process.env,
      BORG_BASE_DIR: home,
      BORG_PASSPHRASE: '',
      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
      BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
      BORG_DISPLAY_PASSPHRASE: 'no',
    };
  }

  async init(): Promise<void> {
    await rm(this.repo, { recursive: true, force: true });
    await measure('borg', ['init', '--encryption=none', this.repo], { env: this.env });
  }

  /** Archives the directory under its base name, run from its parent so archive paths are relative. */
  async create(archive: string, stateDir: string): Promise<Measured> {
    return measure('borg', ['create', '--compression', 'lz4', `${this.repo}::${archive}`, basename(stateDir)], { cwd: dirname(stateDir), env: this.env });
  }

  /** Extracts an archive into `targetDir` (as `<targetDir>/<base name of the archived dir>`). */
  async extract(archive: string, targetDir: string): Promise<Measured> {
    await rm(targetDir, { recursive: true, force: true });
    await mkdir(targetDir, { recursive: true });
    return measure('borg', ['extract', `${this.repo}::${archive}`], { cwd: targetDir, env: this.env });
  }
}

export function borgExtractedDir(targetDir: string, stateDir: string): string {
  return join(targetDir, basename(stateDir));
}

/**
 * One restic repository on S3 (restic's own S3 backend), repository format 2
 * with its default compression (zstd, auto), and a cache directory of its
 * own: restic as its users run it against an object store.
 */
export class ResticRepo {
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly repo: string,
    cacheDir: string,
  ) {
    this.env = { ...process.env, RESTIC_PASSWORD: 'chunkpoint-bench', RESTIC_CACHE_DIR: cacheDir, RESTIC_PROGRESS_FPS: '0.016' };
  }

  async init(): Promise<void> {
    await measure('restic', ['-r', this.repo, 'init', '--repository-version', '2'], { env: this.env });
  }

  /** Backs up the directory by its path, so a later backup of the same path finds its parent snapshot (restic's incremental). */
  async backup(stateDir: string): Promise<Measured> {
    return measure('restic', ['-r', this.repo, 'backup', '--quiet', stateDir], { env: this.env });
  }

  /** Restores the latest snapshot into `targetDir` (as `<targetDir>/<absolute path of the backed-up dir>`). */
  async restore(targetDir: string): Promise<Measured> {
    await rm(targetDir, { recursive: true, force: true });
    await mkdir(targetDir, { recursive: true });
    return measure('restic', ['-r', this.repo, 'restore', 'latest', '--target', targetDir], { env: this.env });
  }
}

export function resticRestoredDir(targetDir: string, stateDir: string): string {
  return join(targetDir, stateDir);
}
