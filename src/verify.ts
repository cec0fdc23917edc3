/**
 * Scrubbing a committed checkpoint (RocksDB's VerifyBackup, restic's
 * `check --read-data-subset`): every distinct blob it references, or a
 * sample of them, is fetched by a worker and checked as a restore would
 * check it. Unlike a restore it does not stop at the first problem: the
 * report lists every missing or corrupt blob with the files that use it.
 */
import { InvalidInputError } from './errors.js';
import { checkpointDirName, handleKey, type Handle } from './handle.js';
import type { CheckpointMetadata } from './metadata.js';
import { forEachBounded, type WorkerPool } from './pool.js';
import type { Store } from './store/store.js';
import type { ProgressSink, VerifyProgress } from './events.js';

export interface VerifyOptions {
  /** Fraction of the distinct blobs to check, in (0, 1] (default 1: all). */
  sample?: number;
  /** Picks the sample; the same seed picks the same blobs (default: random, reported). */
  sampleSeed?: number;
  signal?: AbortSignal;
}

export interface ChunkUse {
  task: string;
  path: string;
  chunk: number;
}

export interface VerifyProblem {
  /** CHUNK_MISSING or CHUNK_CORRUPT. */
  code: string;
  /** Store key of the blob, relative to the job root. */
  blob: string;
  message: string;
  /** Files and chunk indexes that need this blob (the first 20). */
  usedBy: ChunkUse[];
  /** How many chunks need it in all. */
  uses: number;
}

export interface VerifyResult {
  checkpointId: number;
  checkpoint: string;
  location: string;
  /** Distinct blobs the checkpoint references. */
  blobs: number;
  blobsChecked: number;
  /** Stored bytes fetched and checked. */
  bytesChecked: number;
  sample: number;
  /** Seed of the sample (only when sampling). */
  sampleSeed?: number;
  problems: VerifyProblem[];
  /** No problem found in what was checked. */
  ok: boolean;
  durationMs: number;
}

const MAX_USES_LISTED = 20;

export async function verifyCheckpoint(
  pool: WorkerPool,
  store: Store,
  metadata: CheckpointMetadata,
  options: VerifyOptions = {},
  progress?: ProgressSink<VerifyProgress & { checkpoint: string }>,
): Promise<VerifyResult> {
  const started = performance.now();
  const sample = options.sample ?? 1;
  if (!(sample > 0 && sample <= 1)) throw new InvalidInputError('INVALID_SAMPLE', `sample ${sample} is not a fraction in (0, 1]; use e.g. 0.1 to check a tenth of the blobs`);
  const seed = options.sampleSeed ?? Math.floor(Math.random() * 2 ** 32);

  interface Blob {
    handle: Handle;
    key: string;
    rawLength: number;
    usedBy: ChunkUse[];
    uses: number;
  }
  const blobs = new Map<string, Blob>();
  for (const task of metadata.tasks) {
    for (const file of task.files) {
      for (const [index, chunk] of file.chunks.entries()) {
        const key = handleKey(chunk.handle);
        let blob = blobs.get(key);
        if (blob === undefined) {
          blob = { handle: chunk.handle, key: chunk.key, rawLength: chunk.rawLength, usedBy: [], uses: 0 };
          blobs.set(key, blob);
        }
        blob.uses++;
        if (blob.usedBy.length < MAX_USES_LISTED) blob.usedBy.push({ task: task.task, path: file.path, chunk: index });
      }
    }
  }
  const chosen = sample === 1 ? [...blobs] : [...blobs].filter(([, b]) => sampled(b.key, seed, sample));

  let bytesChecked = 0;
  let bytesDone = 0;
  let blobsDone = 0;
  const bytesTotal = chosen.reduce((sum, [, b]) => sum + b.handle.length, 0);
  const problems: VerifyProblem[] = [];
  const figures = (): VerifyProgress & { checkpoint: string } => ({
    checkpoint: checkpointDirName(metadata.checkpointId),
    bytesDone,
    bytesTotal,
    bytesChecked,
    blobsDone,
    blobsTotal: chosen.length,
    problems: problems.length,
  });
  progress?.update(figures, true);
  await forEachBounded(chosen, pool.queueDepth, async ([objectKey, blob]) => {
    options.signal?.throwIfAborted();
    const result = await pool.run({ op: 'checkBlob', store: store.spec, handle: blob.handle, key: blob.key, rawLength: blob.rawLength }, options.signal);
    bytesChecked += result.bytesFetched;
    if (result.problem !== undefined) problems.push({ ...result.problem, blob: objectKey, usedBy: blob.usedBy, uses: blob.uses });
    bytesDone += blob.handle.length;
    blobsDone++;
    progress?.update(figures);
  });
  progress?.update(figures, true);
  problems.sort((a, b) => a.blob.localeCompare(b.blob));
  return {
    checkpointId: metadata.checkpointId,
    checkpoint: checkpointDirName(metadata.checkpointId),
    location: store.location,
    blobs: blobs.size,
    blobsChecked: chosen.length,
    bytesChecked,
    sample,
    ...(sample === 1 ? {} : { sampleSeed: seed }),
    problems,
    ok: problems.length === 0,
    durationMs: Math.round(performance.now() - started),
  };
}

/** Seeded, uniform choice by content key: a bijective scramble of its first 32 bits against the threshold. */
function sampled(key: string, seed: number, fraction: number): boolean {
  const x = Math.imul((Number.parseInt(key.slice(0, 8), 16) ^ seed) >>> 0, 0x9e3779b1) >>> 0;
  return x / 2 ** 32 < fraction;
}
