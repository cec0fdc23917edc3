/**
 * Storing a snapshot task's pending chunks: runs of chunks are grouped into
 * pack batches of about one pack each (chunks of a file together and in order,
 * small files sharing a batch), each one `writePack` request on the worker pool, and their results put
 * back into the file entries. The packs are published in one batch at the
 * end, so a pack's name becomes visible only once its bytes are durable.
 */
import { BLOB_HEADER_SIZE } from '../format/blob.js';
import type { CacheIndex } from '../cache.js';
import { checkAborted } from '../errors.js';
import type { ChunkRef, PackRef } from '../format/manifest.js';
import type { Area } from '../format/names.js';
import { forEachBounded } from '../bounded.js';
import type { WorkerPool } from '../pool.js';
import type { FileRun, WorkerStages, WritePackResult } from '../protocol.js';
import type { StagedObject, Store } from '../store/store.js';
import type { ChunkWork, PendingRun } from './plan.js';

export interface WriteContext {
  pool: WorkerPool;
  store: Store;
  task: string;
  session: string;
  packSize: number;
  durable: boolean;
  signal: AbortSignal;
  /** The dedupe table and the chunks its entries stand for. */
  dedupe: { table: SharedArrayBuffer; chunks: readonly ChunkRef[] } | undefined;
  cache: CacheIndex | undefined;
  /** Called as each batch completes, for progress. */
  onBatch(batch: PackBatch, result: WritePackResult): void;
}

export interface PackBatch {
  area: Area;
  parts: { run: PendingRun; chunks: ChunkWork[] }[];
  rawBytes: number;
}

export interface WriteOutcome {
  /** Packs written, published. */
  packs: PackRef[];
  bytesRead: number;
  bytesWritten: number;
  rawBytesNew: number;
  chunksNew: number;
  /** Of `chunksNew`, those of rewritten base packs. */
  chunksRewritten: number;
  chunksDeduped: number;
  bytesCached: number;
  /** Worker time per stage, summed over batches, and the coordinator's wall time publishing the packs. */
  stages: WorkerStages;
  publishMs: number;
}

/** Groups pending runs into batches of at most `packSize` raw bytes, per area, in order; a large file spans consecutive batches. */
export function packBatches(pending: readonly PendingRun[], packSize: number): PackBatch[] {
  const batches: PackBatch[] = [];
  for (const area of ['shared', 'taskowned'] as const) {
    let batch: PackBatch | undefined;
    for (const run of pending) {
      if (run.area !== area) continue;
      let part: { run: PendingRun; chunks: ChunkWork[] } | undefined;
      for (const chunk of run.chunks) {
        if (batch === undefined || (batch.rawBytes > 0 && batch.rawBytes + chunk.length > packSize)) {
          batch = { area, parts: [], rawBytes: 0 };
          batches.push(batch);
          part = undefined;
        }
        if (part === undefined) {
          part = { run, chunks: [] };
          batch.parts.push(part);
        }
        part.chunks.push(chunk);
        batch.rawBytes += chunk.length;
      }
    }
  }
  return batches;
}

export async function writePending(ctx: WriteContext, batches: readonly PackBatch[]): Promise<WriteOutcome> {
  const out: WriteOutcome = { packs: [], bytesRead: 0, bytesWritten: 0, rawBytesNew: 0, chunksNew: 0, chunksRewritten: 0, chunksDeduped: 0, bytesCached: 0, stages: { readMs: 0, hashMs: 0, compressMs: 0, writeMs: 0 }, publishMs: 0 };
  const staged: StagedObject[] = [];
  try {
    // Pack batches are CPU-bound (hash, compress) and large: one per request slot of the pool, none queued.
    await forEachBounded(batches, ctx.pool.threads * ctx.pool.requestsPerThread, async (batch) => {
      checkAborted(ctx.signal);
      const runs: FileRun[] = batch.parts.map(({ run, chunks }) => ({ file: run.file.absPath, relPath: run.file.relPath, expect: { size: run.file.size, mtimeMs: run.file.mtimeMs }, chunks }));
      // Room for the task-local copy is held before a worker may insert; the largest an entry can be.
      const grant = await ctx.cache?.grant(batch.rawBytes + batch.parts.reduce((n, p) => n + p.chunks.length, 0) * (BLOB_HEADER_SIZE + 1024) + Math.ceil(batch.rawBytes / 255));
      let result: WritePackResult | undefined;
      try {
        result = await ctx.pool.run(
          {
            op: 'writePack',
            store: ctx.store.spec,
            area: batch.area,
            task: ctx.task,
            session: ctx.session,
            runs,
            packSize: ctx.packSize,
            durable: ctx.durable,
            ...(ctx.dedupe === undefined ? {} : { dedupe: ctx.dedupe.table }),
            ...(grant === undefined ? {} : { cache: grant.use }),
          },
          ctx.signal,
        );
      } finally {
        grant?.settle(result?.inserted);
      }
      for (const p of result.packs) {
        staged.push(p.staged);
        out.packs.push({ key: p.staged.key, size: p.staged.size });
      }
      let i = 0;
      for (const { run, chunks } of batch.parts) {
        for (const work of chunks) {
          const written = result.chunks[i++];
          if (written === undefined) throw new Error(`internal: worker returned ${result.chunks.length} chunks for a batch of more`);
          let ref: ChunkRef | undefined;
          if ('reused' in written) {
            ref = ctx.dedupe?.chunks[written.reused];
            out.chunksDeduped++;
          } else {
            const pack = result.packs[written.pack];
            if (pack !== undefined) {
              const slash = pack.staged.key.indexOf('/');
              ref = { key: written.key, rawLength: written.rawLength, handle: { area: batch.area, name: pack.staged.key.slice(slash + 1), offset: written.offset, length: written.length } };
            }
            if (written.repeat === true) out.chunksDeduped++;
            else {
              out.chunksNew++;
              if (run.rewrite === true) out.chunksRewritten++;
            }
          }
          if (ref === undefined || ref.key !== written.key || ref.rawLength !== written.rawLength) throw new Error(`internal: chunk ${work.index} of ${run.file.relPath} came back unplaced`);
          run.entry.chunks[work.index] = ref;
        }
      }
      out.bytesCached += result.inserted.reduce((sum, e) => sum + e.size, 0);
      out.bytesRead += result.bytesRead;
      out.bytesWritten += result.bytesWritten;
      out.rawBytesNew += result.rawBytesNew;
      for (const k of ['readMs', 'hashMs', 'compressMs', 'writeMs'] as const) out.stages[k] += result.stages[k];
      ctx.onBatch(batch, result);
    });
    checkAborted(ctx.signal);
    // One batch: every pack's bytes and name become durable before any manifest can reference them.
    const publishing = performance.now();
    await ctx.store.publish(staged, { durable: ctx.durable });
    out.publishMs = performance.now() - publishing;
  } catch (error) {
    // Nothing can reference these packs: remove them now rather than leave them to gc.
    const leftovers = staged.flatMap((s) => (s.token === '' ? [s.key] : [s.token, s.key]));
    if (leftovers.length > 0) await ctx.store.delete(leftovers).catch(() => undefined);
    throw error;
  }
  return out;
}
