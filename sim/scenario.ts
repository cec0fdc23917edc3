/**
 * The stress scenario: P task processes change real RocksDB state and
 * snapshot it into one job each round; this process commits their task
 * snapshots with retention, and meanwhile runs gc and restores of retained
 * checkpoints, under injected faults and SIGKILLs. Every decision comes from
 * one seeded PRNG, so a run's sequence of choices replays from its seed
 * (timings, and so the exact interleavings, do not).
 *
 * Invariants (a violation stops the run; the auditor checks them all):
 * - every restore of a retained checkpoint, from any cache state into any
 *   target, is byte-identical to the state the task snapshotted;
 * - a committed checkpoint stays listed until retention removes it, and
 *   verifies in full;
 * - failures are explained by injected faults (or are a documented refusal);
 * - at the end, after a gc with no grace period, the store holds exactly the
 *   blobs the retained checkpoints reference and no temp files.
 *
 * This module is the loop: rounds, what runs beside them, the commit that
 * ends each, the clock, the final checks and the report. The parts it
 * drives share one StressRun (sim/run.ts): the task fleet (sim/fleet.ts),
 * the actors (sim/actors/) and the auditor (sim/auditor.ts).
 */
import { nextCheckpointId, readJobState } from '../src/checkpoint.js';
import type { TaskSnapshot } from '../src/format/metadata.js';
import { commitTasks } from '../src/snapshot/index.js';
import { collectBeside } from './actors/gc.js';
import { damageOlder, dropDamaged } from './actors/damage.js';
import { dropNewestDuringRound } from './actors/orphan.js';
import { Plants } from './actors/plants.js';
import { Auditor } from './auditor.js';
import { TaskFleet } from './fleet.js';
import type { StateDigest } from './messages.js';
import type { StressOptions } from './options.js';
import { stressResult, type StressEvents, type StressResult } from './report.js';
import { loadRocksDb } from './rocks-state.js';
import { StressRun } from './run.js';
import { ViolationError, type Violation } from './violation.js';

export async function runStress(options: StressOptions, events: StressEvents = {}): Promise<StressResult> {
  // Fail before starting anything when RocksDB is missing.
  await loadRocksDb();
  const run = await StressRun.open(options);
  const scenario = new Scenario(run, events);
  const ticker = setInterval(() => scenario.progress(), 500);
  ticker.unref();
  let violation: Violation | undefined;
  try {
    await scenario.play();
  } catch (error) {
    if (error instanceof ViolationError) violation = { invariant: error.invariant, message: error.message, round: run.round };
    else violation = { invariant: 'harness', message: `the harness itself failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, round: run.round };
    await run.log('violation', { ...violation });
    await scenario.abandon();
  } finally {
    clearInterval(ticker);
    await run.close();
  }
  scenario.countFaults();
  const keep = violation !== undefined || options.keep;
  const result = stressResult(
    { seed: options.seed, store: run.storeLocation, job: run.job, jobRoot: run.jobRoot, workDir: run.workDir, log: run.logPath, durationMs: Math.round(run.elapsedMs()) },
    run.counters,
    run.figures,
    violation,
    keep,
  );
  await run.log('end', { ok: result.ok, counters: run.counters });
  if (!keep) await run.discard();
  return result;
}

class Scenario {
  private readonly fleet: TaskFleet;
  private readonly auditor: Auditor;
  private readonly plants: Plants;
  /** When the soak ends: counted from the first committed checkpoint, as restores need one. */
  private deadline = Number.POSITIVE_INFINITY;

  constructor(
    private readonly run: StressRun,
    private readonly events: StressEvents,
  ) {
    this.fleet = new TaskFleet(run);
    this.auditor = new Auditor(run);
    this.plants = new Plants(run);
  }

  countFaults(): void {
    this.run.countFaults(this.fleet.faults());
  }

  progress(): void {
    this.countFaults();
    this.events.progress?.(this.run.counters, this.run.elapsedMs());
  }

  /** After a violation: nothing of the run may go on. */
  async abandon(): Promise<void> {
    await this.fleet.kill();
  }

  async play(): Promise<void> {
    const { run } = this;
    await this.fleet.start();
    // Round 0 creates every task's state; later rounds change it. A run always makes at least one attempt.
    for (run.round = 0; run.round === 0 || performance.now() < this.deadline; run.round++) {
      await this.round();
      if (this.deadline === Number.POSITIVE_INFINITY && run.counters.checkpointsCommitted > 0) this.deadline = performance.now() + run.options.durationMs;
      if (run.counters.checkpointsCommitted === 0 && run.round >= 9) throw new ViolationError('progress', `no checkpoint committed in ${run.round + 1} rounds; see ${run.logPath} (fault rates too high for this store?)`);
      this.progress();
    }
    await this.fleet.stop();
    if (run.ledger.damaged !== undefined) await dropDamaged(run, this.auditor, await run.listed());
    await this.auditor.final();
  }

  /** One round: every task snapshots (some are killed), gc, drops and restores run beside them, then the round's commit. */
  private async round(): Promise<void> {
    const { run, fleet } = this;
    const n = run.round;
    run.counters.rounds++;
    const roundStart = performance.now();
    const kills = fleet.planKills(n);
    const ends = fleet.playRound(n, kills);
    // Only a drop during this round can explain a refusal of this round's commit.
    run.ledger.droppedThisRound = undefined;
    const [results] = await Promise.all([ends, this.beside(n)]);
    fleet.checkProtocol();

    const parts: TaskSnapshot[] = [];
    const digests = new Map<string, StateDigest>();
    for (const [i, end] of results.entries()) {
      const task = fleet.name(i);
      if (end.type === 'snapshot') {
        parts.push(end.snapshot);
        digests.set(task, end.digest);
        run.counters.bytesSnapshotted += end.bytes;
        run.counters.bytesWritten += end.snapshot.figures.bytesWritten;
      } else await this.auditor.taskEnded(task, end);
    }
    await fleet.replaceKilled(kills);

    if (parts.length === run.options.tasks) await this.commit(parts, digests, roundStart);
    else {
      run.counters.roundsNotCommitted++;
      await run.log('not-committed', { snapshots: parts.length, tasks: run.options.tasks });
    }
  }

  /** Meanwhile, against the same job: the newest checkpoint dropped, gc, and restores of retained checkpoints. */
  private async beside(n: number): Promise<void> {
    const { run } = this;
    const { random, options } = run;
    if (n > 0 && random() < options.drop) await dropNewestDuringRound(run, this.fleet.typicalRoundMs);
    if (n > 0 && random() < options.gc) await collectBeside(run, this.auditor);
    const restores = Math.floor(random() * (2 * options.restores + 1));
    for (let i = 0; i < restores && n > 0; i++) {
      await this.auditor.restore();
      this.progress();
    }
    if (n > 0 && random() < options.gc / 2) await collectBeside(run, this.auditor);
  }

  /** A checkpoint holds every task: only a round where each delivered a snapshot is committed. */
  private async commit(parts: TaskSnapshot[], digests: Map<string, StateDigest>, roundStart: number): Promise<void> {
    const { run, auditor } = this;
    const { counters, options } = run;
    const expected = parts[0]?.checkpointId ?? nextCheckpointId(await readJobState(run.clean));
    let committed: number | undefined;
    if (await this.plants.commitWithoutLeaseCheck(parts, expected)) committed = expected;
    else {
      try {
        await this.plants.loseFreshPack(parts);
        const r = await commitTasks({ hasher: run.hasher }, { store: run.faultyStore(), jobId: run.job }, parts, { retain: options.retain, graceMs: options.graceMs, durable: options.durable });
        committed = r.checkpointId;
        // The blobs were counted with the task snapshots; this adds the _metadata.
        counters.bytesWritten += r.bytesWritten - parts.reduce((sum, p) => sum + p.figures.bytesWritten, 0);
        await run.log('committed', { checkpoint: r.checkpoint, removed: r.checkpointsRemoved });
      } catch (error) {
        committed = await auditor.commitFailed(error, parts, expected);
      }
    }
    run.figures.snapshotMs += performance.now() - roundStart;
    if (committed === undefined) return;
    auditor.committedAs(committed, expected);
    counters.checkpointsCommitted++;
    run.ledger.commit(committed, digests, options.retain);
    const listed = await run.listed();
    auditor.retention(listed);
    run.ledger.forgetUnlisted(listed);
    await this.plants.afterCommit(committed, listed);
    await auditor.verifyRetained(committed, listed);
    if (run.ledger.damaged !== undefined) await dropDamaged(run, auditor, listed);
    else if (run.random() < options.damage) await damageOlder(run, auditor, listed, committed);
  }
}
