/**
 * Relocation: copy a job root between any two stores (directory → S3,
 * S3 → directory, S3 → S3, directory → directory). Handles are relative to
 * the job root, so every checkpoint restores from the copy (FLINK-24149).
 *
 * Order is what makes a copy safe to read while it runs, and to resume:
 * 1. Refuse, before writing anything, a destination whose committed
 *    checkpoints are not byte-identical copies of the source's (another
 *    job's history), and a source whose checkpoints reference missing blobs.
 * 2. Copy every object of `shared/` and `taskowned/` (workers: bytes go store
 *    to store inside a worker thread, each blob verified — header, length,
 *    content key — on the way), skipping objects already there with the same
 *    size, then make their names durable.
 * 3. Write each checkpoint's `_metadata` last, oldest first, put-if-absent:
 *    a reader of the destination never sees a checkpoint whose blobs are not
 *    all there, and an interrupted copy run again continues where it stopped.
 */
import { committedCheckpointIds, loadCheckpointBytes } from './checkpoint.js';
import type { Hasher } from './content-key.js';
import { ConflictError, CorruptDataError, InvalidInputError } from './errors.js';
import { checkpointDirName, handleKey, metadataKey } from './handle.js';
import { allFiles } from './metadata.js';
import { forEachBounded, type WorkerPool } from './pool.js';
import type { ObjectInfo, Store } from './store/store.js';
import type { CopyProgress, ProgressSink } from './events.js';

export interface CopyOptions {
  /** fsync what is written to a directory destination (default true). */
  durable?: boolean;
  signal?: AbortSignal;
}

export interface CopyResult {
  from: string;
  to: string;
  /** Checkpoints written to the destination by this copy. */
  checkpointsCopied: string[];
  /** Checkpoints the destination already held, identical. */
  checkpointsPresent: string[];
  objectsCopied: number;
  bytesCopied: number;
  /** Objects already at the destination with the same size (not read). */
  objectsSkipped: number;
  bytesSkipped: number;
  /** Copied objects verified as blobs on the way. */
  blobsVerified: number;
  durationMs: number;
  /** Copied MB (10^6) per second. */
  throughputMBps: number;
}

const AREA_PREFIXES = ['shared/', 'taskowned/'];

export async function copyJobRoot(
  pool: WorkerPool,
  hasher: Hasher,
  from: Store,
  to: Store,
  options: CopyOptions = {},
  progress?: ProgressSink<CopyProgress & { to: string }>,
): Promise<CopyResult> {
  const started = performance.now();
  const durable = options.durable ?? true;
  if (from.location === to.location) {
    throw new InvalidInputError('COPY_SAME_LOCATION', `cannot copy ${from.location} onto itself; name another job root as the destination`);
  }
  if (!(await from.exists())) {
    throw new InvalidInputError('JOB_NOT_FOUND', `nothing to copy: no job root at ${from.location}; check the source location`);
  }
  const ids = await committedCheckpointIds(from);
  if (ids.length === 0) {
    throw new InvalidInputError('NO_CHECKPOINTS', `${from.location} has no committed checkpoint to copy`);
  }
  // Every source checkpoint, fully validated, before anything is written.
  const source = new Map<number, { encoded: Buffer; referenced: Set<string> }>();
  for (const id of ids) {
    const { metadata, encoded } = await loadCheckpointBytes(from, id, hasher);
    const referenced = new Set<string>();
    for (const f of allFiles(metadata)) for (const c of f.chunks) referenced.add(handleKey(c.handle));
    source.set(id, { encoded, referenced });
  }

  const present: number[] = [];
  if (await to.exists()) {
    for (const id of await committedCheckpointIds(to)) {
      const mine = source.get(id);
      const theirs = await to.get(metadataKey(id));
      if (mine === undefined || !mine.encoded.equals(theirs)) {
        throw new ConflictError(
          'COPY_CONFLICT',
          `${to.location} already holds ${checkpointDirName(id)}, which ${mine === undefined ? 'the source does not have' : 'differs from the source'}: it is another job's history. Nothing was copied; copy into a new job root (e.g. another job id)`,
          { details: { checkpointId: id, to: to.location } },
        );
      }
      present.push(id);
    }
  }

  const sourceObjects = await listAreas(from);
  const sourceKeys = new Set(sourceObjects.map((o) => o.key));
  for (const [id, { referenced }] of source) {
    for (const key of referenced) {
      if (!sourceKeys.has(key)) {
        throw new CorruptDataError('CHUNK_MISSING', `${from.location}/${checkpointDirName(id)} references ${key}, which the source does not hold; nothing was copied. Copy only intact job roots (restore the checkpoint to find out which files it affects)`, {
          details: { checkpointId: id, key },
        });
      }
    }
  }
  const existing = new Map((await listAreas(to)).map((o) => [o.key, o.size]));

  let objectsCopied = 0;
  let bytesCopied = 0;
  let objectsSkipped = 0;
  let bytesSkipped = 0;
  let blobsVerified = 0;
  const written: string[] = [];
  const todo = sourceObjects.filter((o) => {
    if (existing.get(o.key) !== o.size) return true;
    objectsSkipped++;
    bytesSkipped += o.size;
    return false;
  });
  // Totals count what this run has to handle: objects not already there, and the metadata of checkpoints to copy.
  const metadataToCopy = ids.filter((id) => !present.includes(id));
  const objectsTotal = todo.length + metadataToCopy.length;
  const bytesTotal = todo.reduce((sum, o) => sum + o.size, 0) + metadataToCopy.reduce((sum, id) => sum + (source.get(id)?.encoded.byteLength ?? 0), 0);
  let bytesDone = 0;
  let objectsDone = 0;
  const figures = (): CopyProgress & { to: string } => ({ to: to.location, bytesDone, bytesTotal, bytesCopied, objectsDone, objectsTotal, objectsCopied });
  progress?.update(figures, true);
  await forEachBounded(todo, pool.queueDepth, async (object) => {
    options.signal?.throwIfAborted();
    const result = await pool.run({ op: 'copyObject', from: from.spec, to: to.spec, key: object.key, size: object.size, durable }, options.signal);
    if (result.verified) blobsVerified++;
    if (result.bytesCopied > 0) {
      objectsCopied++;
      bytesCopied += result.bytesCopied;
      written.push(object.key);
    } else {
      objectsSkipped++;
      bytesSkipped += object.size;
    }
    bytesDone += object.size;
    objectsDone++;
    progress?.update(figures);
  });
  options.signal?.throwIfAborted();
  if (durable && written.length > 0) await to.syncNames(written);

  const copied: number[] = [];
  for (const id of ids) {
    if (present.includes(id)) continue;
    const { encoded } = source.get(id) as { encoded: Buffer };
    const put = await to.put(metadataKey(id), [encoded], { ifAbsent: true, durable });
    if (put === 'exists' && !(await to.get(metadataKey(id))).equals(encoded)) {
      throw new ConflictError('COPY_CONFLICT', `${checkpointDirName(id)} was written to ${to.location} by someone else while this copy ran; the copies of earlier checkpoints are complete`, {
        details: { checkpointId: id, to: to.location },
      });
    }
    if (put === 'exists') present.push(id);
    else copied.push(id);
    bytesCopied += put === 'exists' ? 0 : encoded.byteLength;
    bytesDone += encoded.byteLength;
    objectsDone++;
    progress?.update(figures);
  }
  progress?.update(figures, true);

  const durationMs = performance.now() - started;
  return {
    from: from.location,
    to: to.location,
    checkpointsCopied: copied.map(checkpointDirName),
    checkpointsPresent: present.sort((a, b) => a - b).map(checkpointDirName),
    objectsCopied,
    bytesCopied,
    objectsSkipped,
    bytesSkipped,
    blobsVerified,
    durationMs: Math.round(durationMs),
    throughputMBps: Math.round((bytesCopied / 1e6 / (durationMs / 1000)) * 100) / 100,
  };
}

async function listAreas(store: Store): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for (const prefix of AREA_PREFIXES) for await (const object of store.list(prefix)) out.push(object);
  return out;
}
