/**
 * Relocation: copy a job root between any two stores (directory → S3,
 * S3 → directory, S3 → S3, directory → directory). Handles are relative to
 * the job root, so every checkpoint restores from the copy (FLINK-24149).
 *
 * Only what the source's committed checkpoints reference is copied — their
 * packs, manifests and metadata — so orphans and leftovers of crashed
 * snapshots at the source neither travel nor block the copy. Order is what
 * makes a copy safe to read while it runs, and to resume:
 * 1. Refuse, before writing anything, a destination holding a checkpoint the
 *    source has in another form (another job's history), and a source whose
 *    checkpoints reference packs it does not hold.
 * 2. Copy the packs (workers: bytes go store to store inside a worker
 *    thread, every blob and trailer verified on the way), skipping those
 *    already there at the same size, then publish them in one durable batch;
 *    then the manifests, verified against the checksum their checkpoint
 *    records.
 * 3. Write each checkpoint's `_metadata` last, oldest first, put-if-absent:
 *    a reader of the destination never sees a checkpoint whose data is not
 *    all there, and an interrupted copy run again continues where it stopped.
 * A destination holding checkpoints of the same job that the source has since
 * removed (by retention, or a drop in the middle: the source's fence records
 * it) is updated, not refused.
 */
import { loadCheckpointBytes, loadManifest, readJobState } from './checkpoint.js';
import { ConflictError, CorruptDataError, InvalidInputError, checkAborted } from './errors.js';
import { decodeMetadata, type CheckpointMetadata } from './format/metadata.js';
import { checkpointDirName, metadataKey } from './format/names.js';
import { forEachBounded } from './bounded.js';
import type { StagedObject, Store } from './store/store.js';
import type { Runtime } from './runtime.js';

export interface CopyProgress {
  /** Bytes of the objects and `_metadata` handled so far (copied, or found already there). */
  bytesDone: number;
  bytesTotal: number;
  /** Ends at `result.bytesCopied`. */
  bytesCopied: number;
  objectsDone: number;
  objectsTotal: number;
  objectsCopied: number;
}

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
  /** Packs verified on the way (header, every blob, trailer). */
  packsVerified: number;
  durationMs: number;
  /** Copied MB (10^6) per second. */
  throughputMBps: number;
}

export async function copyJobRoot(
  { pool, hasher, progress }: Runtime<CopyProgress & { to: string }>,
  from: Store,
  to: Store,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const started = performance.now();
  const durable = options.durable ?? true;
  if (from.location === to.location) {
    throw new InvalidInputError('COPY_SAME_LOCATION', `cannot copy ${from.location} onto itself; name another job root as the destination`);
  }
  if (!(await from.exists())) throw new InvalidInputError('JOB_NOT_FOUND', `nothing to copy: no job root at ${from.location}; check the source location`);
  const { ids, fence } = await readJobState(from);
  if (ids.length === 0) throw new InvalidInputError('NO_CHECKPOINTS', `${from.location} has no committed checkpoint to copy`);
  // Every source checkpoint, fully validated, before anything is written.
  const source = new Map<number, { metadata: CheckpointMetadata; encoded: Buffer }>();
  for (const id of ids) source.set(id, await loadCheckpointBytes(from, id, hasher));
  const jobIds = new Set([...source.values()].map((s) => s.metadata.jobId));

  const present: number[] = [];
  if (await to.exists()) {
    const oldest = Math.min(...ids);
    for (const id of (await readJobState(to)).ids) {
      const mine = source.get(id);
      const theirs = await to.get(metadataKey(id));
      if (mine?.encoded.equals(theirs) === true) {
        present.push(id);
        continue;
      }
      // History of the same job the source no longer has — copied before retention removed the oldest, or
      // before a drop removed one in the middle — is kept. The source's own record says it removed that id:
      // an id below its oldest, or at or below its fence (ids are never reused, so every such id the source
      // lacks was removed there). An id above both is a checkpoint the source never had: another history.
      let older = false;
      if (mine === undefined && (id < oldest || id <= fence)) {
        try {
          older = jobIds.has(decodeMetadata(theirs, hasher, `${to.location}/${metadataKey(id)}`, id).jobId);
        } catch {
          older = false;
        }
      }
      if (older) continue;
      throw new ConflictError(
        'COPY_CONFLICT',
        `${to.location} already holds ${checkpointDirName(id)}, which ${mine === undefined ? 'the source does not have' : 'differs from the source'}: it is another job's history. Nothing was copied; copy into a new job root (e.g. another job id)`,
        { details: { checkpointId: id, to: to.location } },
      );
    }
  }

  // What the checkpoints reference, and only that.
  const packs = new Map<string, number>();
  const manifests = new Map<string, { id: number; task: CheckpointMetadata['tasks'][number] }>();
  for (const [id, { metadata }] of source) {
    for (const task of metadata.tasks) {
      for (const p of task.packs) packs.set(p.key, p.size);
      manifests.set(task.manifest.key, { id, task });
    }
  }
  const sourceObjects = await listAreas(from);
  for (const [key, size] of [...packs, ...[...manifests].map(([key, m]) => [key, m.task.manifest.size] as const)]) {
    const found = sourceObjects.get(key);
    if (found !== size) {
      throw new CorruptDataError('SOURCE_DAMAGED', `${from.location}/${key}, which a committed checkpoint references, is ${found === undefined ? 'missing' : `${found} bytes, not ${size}`}; nothing was copied. Copy only intact job roots (run verify on the source)`, {
        details: { key },
      });
    }
  }
  const existing = await listAreas(to);

  let objectsCopied = 0;
  let bytesCopied = 0;
  let objectsSkipped = 0;
  let bytesSkipped = 0;
  let packsVerified = 0;
  const packTodo = [...packs].filter(([key, size]) => {
    if (existing.get(key) !== size) return true;
    objectsSkipped++;
    bytesSkipped += size;
    return false;
  });
  const manifestTodo = [...manifests].filter(([key, m]) => {
    if (existing.get(key) !== m.task.manifest.size) return true;
    objectsSkipped++;
    bytesSkipped += m.task.manifest.size;
    return false;
  });
  // Totals count what this run has to handle: objects not already there, and the metadata of checkpoints to copy.
  const metadataToCopy = ids.filter((id) => !present.includes(id));
  const objectsTotal = packTodo.length + manifestTodo.length + metadataToCopy.length;
  const bytesTotal =
    packTodo.reduce((sum, [, size]) => sum + size, 0) + manifestTodo.reduce((sum, [, m]) => sum + m.task.manifest.size, 0) + metadataToCopy.reduce((sum, id) => sum + (source.get(id)?.encoded.byteLength ?? 0), 0);
  let bytesDone = 0;
  let objectsDone = 0;
  const figures = (): CopyProgress & { to: string } => ({ to: to.location, bytesDone, bytesTotal, bytesCopied, objectsDone, objectsTotal, objectsCopied });
  progress?.update(figures, true);

  const staged: StagedObject[] = [];
  try {
    await forEachBounded(packTodo, pool.ioConcurrency, async ([key, size]) => {
      checkAborted(options.signal);
      const result = await pool.run({ op: 'copyObject', from: from.spec, to: to.spec, key, size, durable }, options.signal);
      if (result.verified) packsVerified++;
      if (result.staged !== undefined) staged.push(result.staged);
      objectsCopied++;
      bytesCopied += result.bytesCopied;
      bytesDone += size;
      objectsDone++;
      progress?.update(figures);
    });
    checkAborted(options.signal);
    await to.publish(staged, { durable });
  } catch (error) {
    const leftovers = staged.flatMap((s) => (s.token === '' ? [] : [s.token]));
    if (leftovers.length > 0) await to.delete(leftovers).catch(() => undefined);
    throw error;
  }
  for (const [key, { task }] of manifestTodo) {
    checkAborted(options.signal);
    const { encoded } = await loadManifest(from, task, hasher);
    await to.put(key, [encoded], { ifAbsent: true, durable });
    objectsCopied++;
    bytesCopied += encoded.byteLength;
    bytesDone += encoded.byteLength;
    objectsDone++;
    progress?.update(figures);
  }

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
    packsVerified,
    durationMs: Math.round(durationMs),
    throughputMBps: Math.round((bytesCopied / 1e6 / (durationMs / 1000)) * 100) / 100,
  };
}

async function listAreas(store: Store): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const prefix of ['shared/', 'taskowned/']) for await (const object of store.list(prefix)) out.set(object.key, object.size);
  return out;
}
