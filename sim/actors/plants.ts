/**
 * Planted violations (`--plant`), to see the auditor catch what it exists
 * to catch. Each plant strikes once per run, as a store or a buggy commit
 * would: a pack of a committed checkpoint deleted, the same for a pack only
 * an older retained checkpoint references, a fresh pack lost before its
 * commit, and a commit that skips the lease check.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { commitCheckpoint, loadCheckpoint } from '../../src/checkpoint.js';
import { FORMAT_VERSION } from '../../src/format/envelope.js';
import { KEY_ALGORITHM } from '../../src/format/manifest.js';
import type { TaskSnapshot } from '../../src/format/metadata.js';
import { collectGarbage } from '../../src/gc.js';
import { leaseMargin } from '../../src/lease.js';
import type { StressRun } from '../run.js';

export class Plants {
  private planted = false;

  constructor(private readonly run: StressRun) {}

  /**
   * skip-lease-check: waits out the round's leases, lets gc (no grace) take
   * what those sessions wrote, then commits the task snapshots as checkpoint
   * `id` itself, without the commit's lease check. True when it did.
   */
  async commitWithoutLeaseCheck(parts: readonly TaskSnapshot[], id: number): Promise<boolean> {
    const { run } = this;
    if (run.options.plant !== 'skip-lease-check' || this.planted || run.counters.checkpointsCommitted < 1) return false;
    this.planted = true;
    const expires = Math.max(...parts.map((p) => Date.parse(p.expiresAt)));
    await sleep(Math.max(0, expires + leaseMargin(run.options.leaseMs) - Date.now() + 200));
    const gc = await collectGarbage({ hasher: run.hasher }, { store: run.clean, jobId: run.job }, { graceMs: 0 });
    await run.log('planted', { kind: 'skip-lease-check', packsCollected: gc.packsRemoved });
    await commitCheckpoint(
      run.clean,
      {
        formatVersion: FORMAT_VERSION,
        checkpointId: id,
        jobId: run.job,
        createdAt: new Date().toISOString(),
        keyAlgorithm: KEY_ALGORITHM,
        base: parts[0]?.base ?? null,
        tasks: parts.map((t) => ({ task: t.task, session: t.session, manifest: t.manifest, packs: t.packs, files: t.figures.files, bytes: t.figures.bytes, chunks: t.figures.chunks })),
        snapshot: { bytesRead: 0, bytesWritten: 0, filesReused: 0, chunksNew: 0, chunksDeduped: 0, durationMs: 0 },
      },
      run.hasher,
      false,
    );
    return true;
  }

  /** lose-fresh-pack: deletes a pack the round's tasks just wrote, before their commit. */
  async loseFreshPack(parts: readonly TaskSnapshot[]): Promise<void> {
    const { run } = this;
    if (run.options.plant !== 'lose-fresh-pack' || this.planted || run.counters.checkpointsCommitted < 1) return;
    const fresh = parts.flatMap((p) => p.packs.map((k) => k.key));
    if (fresh.length === 0) return;
    this.planted = true;
    const pack = run.pick(fresh);
    await run.clean.delete([pack]);
    await run.log('planted', { kind: 'lose-fresh-pack', pack });
  }

  /** drop-pack and drop-old-pack, right after checkpoint `committed` was committed (`listed` is the listing after it). */
  async afterCommit(committed: number, listed: readonly number[]): Promise<void> {
    const { run } = this;
    if (run.options.plant === 'drop-pack' && !this.planted && run.counters.checkpointsCommitted >= 2) {
      this.planted = true;
      const m = await loadCheckpoint(run.clean, committed, run.hasher);
      const pack = run.pick(m.tasks.flatMap((t) => t.packs.map((p) => p.key)));
      await run.clean.delete([pack]);
      await run.log('planted', { kind: 'drop-pack', checkpoint: committed, pack });
    }
    if (run.options.plant === 'drop-old-pack' && !this.planted) {
      // Only an older checkpoint's: the newest still verifies, so only the check of every retained checkpoint finds it.
      const newest = new Set((await loadCheckpoint(run.clean, committed, run.hasher)).tasks.flatMap((t) => t.packs.map((p) => p.key)));
      const older: string[] = [];
      for (const id of listed) {
        if (id === committed || !run.ledger.isRestorable(id)) continue;
        for (const t of (await loadCheckpoint(run.clean, id, run.hasher)).tasks) for (const p of t.packs) if (!newest.has(p.key)) older.push(p.key);
      }
      if (older.length > 0) {
        this.planted = true;
        const pack = run.pick(older);
        await run.clean.delete([pack]);
        await run.log('planted', { kind: 'drop-old-pack', pack });
      }
    }
  }
}
