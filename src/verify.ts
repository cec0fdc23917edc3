/**
 * Scrubbing a committed checkpoint (RocksDB's VerifyBackup, restic's
 * `check --read-data-subset`). Two levels:
 *
 * - Always, for every task: the manifest is read and checked, and one
 *   listing shows whether every pack the checkpoint references is in the
 *   store at the size it recorded (a pack deleted or truncated behind
 *   chunkpoint's back is found without reading any data).
 * - Every blob, or a seeded sample of them, is then read (coalesced pack
 *   reads on the worker pool) and checked as a restore would check it.
 *
 * Unlike a restore it does not stop at the first problem: the report lists
 * every missing or damaged pack and blob with the files that use it.
 */
import { loadManifest } from './checkpoint.js';
import { CorruptDataError, InvalidInputError, checkAborted, type CodeOfKind } from './errors.js';
import type { CheckpointMetadata } from './format/metadata.js';
import type { TaskManifest } from './format/manifest.js';
import { checkpointDirName } from './format/names.js';
import { forEachBounded } from './bounded.js';
import { planReads, type PlannedBlob } from './restore/plan.js';
import { isNotFound } from './store/not-found.js';
import type { Store } from './store/store.js';
import type { Runtime } from './runtime.js';

export interface VerifyProgress {
  /** Stored bytes of the pack spans checked so far. Ends at `bytesTotal`. */
  bytesDone: number;
  /** Stored bytes of the pack spans to read. */
  bytesTotal: number;
  /** Stored bytes fetched and checked. Ends at `result.bytesChecked`. */
  bytesChecked: number;
  blobsDone: number;
  blobsTotal: number;
  problems: number;
}

export interface VerifyOptions {
  /** Fraction of the distinct blobs to read, in (0, 1] (default 1: all). Packs are always checked for presence and size. */
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
  /** CHUNK_CORRUPT, CHUNK_MISSING, PACK_MISSING, PACK_SIZE, MANIFEST_…, … */
  code: CodeOfKind<'corrupt_data'>;
  /** What is damaged: `<pack key>` or `<pack key>@<offset>` or a manifest key, relative to the job root. */
  object: string;
  message: string;
  /** Files and chunk indexes that need it (the first 20). */
  usedBy: ChunkUse[];
  /** How many chunks need it in all. */
  uses: number;
}

export interface VerifyResult {
  checkpointId: number;
  checkpoint: string;
  location: string;
  /** Packs the checkpoint references, and how many were found whole (present, right size). */
  packs: number;
  packsPresent: number;
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

interface Blob extends PlannedBlob {
  usedBy: ChunkUse[];
  uses: number;
}

export async function verifyCheckpoint(
  { pool, hasher, progress }: Runtime<VerifyProgress & { checkpoint: string }>,
  store: Store,
  metadata: CheckpointMetadata,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const started = performance.now();
  const sample = options.sample ?? 1;
  if (!(sample > 0 && sample <= 1)) throw new InvalidInputError('INVALID_SAMPLE', `sample ${sample} is not a fraction in (0, 1]; use e.g. 0.1 to check a tenth of the blobs`);
  const seed = options.sampleSeed ?? Math.floor(Math.random() * 2 ** 32);
  const problems: VerifyProblem[] = [];

  const manifests: TaskManifest[] = [];
  for (const task of metadata.tasks) {
    try {
      manifests.push((await loadManifest(store, task, hasher)).manifest);
    } catch (error) {
      if (!(error instanceof CorruptDataError)) throw error;
      problems.push({ code: error.code, object: task.manifest.key, message: error.message, usedBy: [], uses: 0 });
    }
  }

  // Presence and size of every pack: one listing.
  const stored = new Map<string, number>();
  for (const prefix of ['shared/', 'taskowned/']) for await (const o of store.list(prefix)) stored.set(o.key, o.size);
  const expected = new Map(metadata.tasks.flatMap((t) => t.packs.map((p) => [p.key, p.size] as const)));
  const whole = new Set<string>();
  const blobs = new Map<string, Blob>();
  for (const m of manifests) {
    for (const file of m.files) {
      for (const [index, chunk] of file.chunks.entries()) {
        const pack = `${chunk.handle.area}/${chunk.handle.name}`;
        const id = `${pack}@${chunk.handle.offset}`;
        let blob = blobs.get(id);
        if (blob === undefined) {
          blob = { at: chunk.handle.offset, length: chunk.handle.length, key: chunk.key, rawLength: chunk.rawLength, targets: [], where: `chunk ${index} of ${file.path}`, handle: chunk.handle, usedBy: [], uses: 0 };
          blobs.set(id, blob);
        }
        blob.uses++;
        if (blob.usedBy.length < MAX_USES_LISTED) blob.usedBy.push({ task: m.task, path: file.path, chunk: index });
      }
    }
  }
  const usersOf = (pack: string): { usedBy: ChunkUse[]; uses: number } => {
    const usedBy: ChunkUse[] = [];
    let uses = 0;
    for (const [id, b] of blobs) {
      if (!id.startsWith(`${pack}@`)) continue;
      uses += b.uses;
      for (const u of b.usedBy) if (usedBy.length < MAX_USES_LISTED) usedBy.push(u);
    }
    return { usedBy, uses };
  };
  for (const [key, size] of expected) {
    const found = stored.get(key);
    if (found === size) {
      whole.add(key);
      continue;
    }
    if (found === undefined) {
      problems.push({ ...(await whyAbsent(store, key)), object: key, ...usersOf(key) });
      continue;
    }
    const message = `pack ${key} is ${found} bytes in ${store.location}, not the ${size} the checkpoint recorded (truncated, overwritten or replaced)`;
    problems.push({ code: 'PACK_SIZE', object: key, message, ...usersOf(key) });
  }

  // Blob contents: all, or a seeded sample, of those in packs that are there at all.
  const readable = [...blobs.values()].filter((b) => stored.has(`${b.handle.area}/${b.handle.name}`));
  const chosen = sample === 1 ? readable : readable.filter((b) => sampled(b.key, seed, sample));
  const plan = planReads(chosen, () => false);
  const byAt = new Map<string, Blob>(chosen.map((b) => [`${b.handle.area}/${b.handle.name}@${b.at}`, b]));
  let bytesChecked = 0;
  let bytesDone = 0;
  let blobsDone = 0;
  const bytesTotal = plan.spans.reduce((sum, s) => sum + s.length, 0);
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
  await forEachBounded(plan.spans, pool.ioConcurrency, async (span) => {
    checkAborted(options.signal);
    const result = await pool.run(
      { op: 'checkSpan', store: store.spec, key: span.key, offset: span.offset, length: span.length, blobs: span.blobs.map(({ at, length, key, rawLength }) => ({ at, length, key, rawLength })) },
      options.signal,
    );
    bytesChecked += result.bytesFetched;
    for (const p of result.problems) {
      const blob = byAt.get(`${span.key}@${p.at}`);
      problems.push({ code: p.code, object: `${span.key}@${p.at}`, message: blob === undefined ? p.message : `${blob.where}: ${p.message}`, usedBy: blob?.usedBy ?? [], uses: blob?.uses ?? 0 });
    }
    bytesDone += span.length;
    blobsDone += span.blobs.length;
    progress?.update(figures);
  });
  progress?.update(figures, true);
  problems.sort((a, b) => a.object.localeCompare(b.object));
  return {
    checkpointId: metadata.checkpointId,
    checkpoint: checkpointDirName(metadata.checkpointId),
    location: store.location,
    packs: expected.size,
    packsPresent: whole.size,
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

/**
 * A pack the listing does not show is missing, or is something a store
 * never lists: a link, a FIFO, a directory, a file behind a linked
 * directory. Asking for one byte lets the store say which (it refuses all
 * of those without following or blocking).
 */
async function whyAbsent(store: Store, key: string): Promise<{ code: CodeOfKind<'corrupt_data'>; message: string }> {
  try {
    await store.get(key, { offset: 0, length: 1 });
  } catch (error) {
    // A missing object is a CorruptDataError too; here it is the PACK_MISSING below, not a problem of its own.
    if (error instanceof CorruptDataError && !isNotFound(error)) return { code: error.code, message: error.message };
    if (!isNotFound(error)) throw error;
  }
  return { code: 'PACK_MISSING', message: `pack ${key} is missing from ${store.location}` };
}
