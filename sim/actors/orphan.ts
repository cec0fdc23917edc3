/**
 * The orphan scenario: the newest checkpoint disappears while tasks build
 * on it, so the packs they write against it become orphans gc may take.
 * Their commit must then refuse (or commit on the older base); no data may
 * be lost.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { StressRun } from '../run.js';

/** Drops the newest checkpoint at a random moment within `roundMs`: before the tasks read their base, or while they build on it. */
export async function dropNewestDuringRound(run: StressRun, roundMs: number): Promise<void> {
  await sleep(Math.floor(run.random() * roundMs));
  const listed = await run.listed();
  const newest = listed.at(-1);
  // The oldest stays: a job with no checkpoint left has no base to lose.
  if (newest === undefined || listed.length < 2) return;
  await run.cp.drop(run.at, newest);
  run.ledger.dropNewest(newest);
  run.counters.drops++;
  await run.log('dropped', { checkpoint: newest });
}
