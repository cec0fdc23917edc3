/**
 * The gc actor: garbage collection of the job while tasks snapshot into it,
 * through the faulty store, with the short grace period the run is given
 * (none by default), so that only the tasks' session leases keep it away
 * from what they are writing.
 */
import { collectGarbage } from '../../src/gc.js';
import type { Auditor } from '../auditor.js';
import type { StressRun } from '../run.js';

export async function collectBeside(run: StressRun, auditor: Auditor): Promise<void> {
  try {
    const r = await collectGarbage({ hasher: run.hasher }, { store: run.faultyStore(), jobId: run.job }, { graceMs: run.options.gcGraceMs });
    run.counters.gcRuns++;
    await run.log('gc', { packsRemoved: r.packsRemoved, manifestsRemoved: r.manifestsRemoved, sessionsRemoved: r.sessionsRemoved, incompleteRemoved: r.incompleteRemoved, liveKept: r.liveKept, youngKept: r.youngKept });
  } catch (error) {
    await auditor.gcFailed(error);
  }
}
