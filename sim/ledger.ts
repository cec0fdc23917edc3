/**
 * The harness's own record of the job, kept apart from the store it checks:
 * which checkpoints it committed, which of them retention must still keep,
 * and, per checkpoint, the digest of every task's state as the task
 * snapshotted it. The auditor holds the store against this record; the
 * actors that drop or damage checkpoints update it as they do.
 */
import type { StateDigest } from './messages.js';

export class Ledger {
  /** Per checkpoint the harness can still restore and check: each task's digest. */
  private readonly digests = new Map<number, Map<string, StateDigest>>();
  /** Every checkpoint committed and not dropped by the harness (retention may have removed it since). */
  private readonly committed = new Set<number>();
  /** Committed checkpoints that should be listed: not yet removed by retention, dropped or damaged by the harness. */
  private readonly alive = new Set<number>();
  /** An older checkpoint whose metadata the harness damaged: kept by retention, refused by gc, dropped after the next commit. */
  damaged: number | undefined;
  /** The newest checkpoint, dropped in this round while tasks built on it: what explains a refused commit. */
  droppedThisRound: number | undefined;

  /** Whether the harness has seen checkpoint `id` committed (a failed commit may have written it all the same). */
  has(id: number): boolean {
    return this.committed.has(id);
  }

  /** Checkpoint `id` was committed holding these task states; retention keeps the newest `retain` alive ones. */
  commit(id: number, digests: Map<string, StateDigest>, retain: number): void {
    this.committed.add(id);
    this.alive.add(id);
    this.digests.set(id, digests);
    // Drops remove some; retention never brings any back.
    for (const old of [...this.alive].sort((a, b) => b - a).slice(retain)) this.alive.delete(old);
  }

  /** The checkpoints retention must have kept, oldest first. */
  mustBeListed(): number[] {
    return [...this.alive].sort((a, b) => a - b);
  }

  /** Retention removed whatever is no longer listed: nothing of it is restorable any more. */
  forgetUnlisted(listed: readonly number[]): void {
    for (const id of [...this.digests.keys()]) if (!listed.includes(id)) this.digests.delete(id);
  }

  /** Of the listed checkpoints, those whose restores the harness can check. */
  restorable(listed: readonly number[]): number[] {
    return listed.filter((id) => this.digests.has(id));
  }

  isRestorable(id: number): boolean {
    return this.digests.has(id);
  }

  /** Each task's digest in checkpoint `id`, if the harness can still check it. */
  tasksOf(id: number): Map<string, StateDigest> | undefined {
    return this.digests.get(id);
  }

  /** The harness dropped the newest checkpoint while the tasks were building on it. */
  dropNewest(id: number): void {
    if (id === this.damaged) this.damaged = undefined;
    this.droppedThisRound = id;
    this.digests.delete(id);
    this.committed.delete(id);
    this.alive.delete(id);
  }

  /** The harness damaged checkpoint `id`: not restorable, and retention must keep it without counting it. */
  damage(id: number): void {
    this.damaged = id;
    this.digests.delete(id);
    this.alive.delete(id);
  }
}
