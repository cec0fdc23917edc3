/**
 * The damage actor: one byte of an older retained checkpoint's `_metadata`
 * flipped, as bit rot in the store would. That checkpoint is no longer
 * restorable; list must mark it damaged and every other intact, gc must
 * refuse beside it, and the next commit must succeed with retention keeping
 * it without counting it. Then the actor drops it, as an operator would.
 */
import { metadataKey } from '../../src/format/names.js';
import type { Auditor } from '../auditor.js';
import type { StressRun } from '../run.js';

/** Damages an older listed checkpoint than `newest` (the tasks' base stays readable), if there is one the harness can check. */
export async function damageOlder(run: StressRun, auditor: Auditor, listed: readonly number[], newest: number): Promise<void> {
  const older = run.ledger.restorable(listed).filter((id) => id !== newest);
  if (older.length === 0) return;
  const victim = run.pick(older);
  const key = metadataKey(victim);
  const data = await run.clean.get(key);
  const at = Math.floor(run.random() * data.byteLength);
  data[at] = (data[at] ?? 0) ^ 0xff;
  await run.clean.put(key, [data]);
  run.ledger.damage(victim);
  run.counters.checkpointsDamaged++;
  await run.log('damaged', { checkpoint: victim, offset: at });
  await auditor.listShowsDamage(victim, listed);
}

/** Once a commit has lived with the damaged checkpoint (retention must have kept it), an explicit drop removes it. */
export async function dropDamaged(run: StressRun, auditor: Auditor, listed: readonly number[]): Promise<void> {
  const damaged = run.ledger.damaged;
  if (damaged === undefined) return;
  auditor.damagedKept(damaged, listed);
  await run.cp.drop(run.at, damaged);
  await run.log('dropped-damaged', { checkpoint: damaged });
  run.ledger.damaged = undefined;
}
