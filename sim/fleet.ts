/**
 * The task fleet: the task processes (sim/task.ts is their side), started
 * with child_process.fork so that a SIGKILL is a real crash. The fleet sends
 * each its rounds, kills the ones a round's plan says at a moment inside the
 * phase the plan names, starts a killed task again on its state directory
 * (RocksDB recovers from its WAL), and stops them all at the end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FaultCounts } from './faulty-store.js';
import { parseFromTask, unhandled, type FromTask, type InjectedFaults, type ToTask } from './messages.js';
import type { StressRun } from './run.js';
import { ViolationError } from './violation.js';

const TASK_ENTRY = fileURLToPath(new URL('./task.js', import.meta.url));
export const ROUND_TIMEOUT_MS = 300_000;

type Exit = { type: 'exit'; signal: string | null; code: number | null };

/** How a task's round ended. */
export type RoundEnd = Extract<FromTask, { type: 'snapshot' | 'failed' }> | Exit | { type: 'timeout' };

/** A SIGKILL planned for one task's round: this long into the phase named. */
export interface KillPlan {
  phase: 'mutating' | 'snapshotting';
  delayMs: number;
}

interface TaskProcess {
  name: string;
  stateDir: string;
  child: ChildProcess;
  /** The round in flight and how it ends. */
  waiter: ((message: FromTask | Exit) => void) | undefined;
  exited: Promise<void>;
  /** Faults this process reported last (its counts are cumulative). */
  faults: InjectedFaults;
}

export class TaskFleet {
  private readonly tasks: TaskProcess[] = [];
  /** Faults reported by processes that were killed since. */
  private readonly pastFaults: InjectedFaults = { transient: 0, permanent: 0, torn: 0 };
  /** A task sent something that is not the protocol; reported as a violation once its round is over. */
  private protocolError: string | undefined;
  // How long each phase of a task's round takes here, so kills land inside it.
  private typicalMutateMs = 500;
  private typicalSnapshotMs = 1000;

  constructor(private readonly run: StressRun) {}

  async start(): Promise<void> {
    for (let i = 0; i < this.run.options.tasks; i++) this.tasks.push(await this.spawn(`t${i}`, i, this.run.stateDir(`t${i}`)));
  }

  name(index: number): string {
    return (this.tasks[index] as TaskProcess).name;
  }

  /** How long a task's round typically takes here: actors that strike at a random moment of a round draw from this. */
  get typicalRoundMs(): number {
    return this.typicalMutateMs + this.typicalSnapshotMs;
  }

  /** Per task, whether and when it is killed this round (the first round never kills: it creates the state). */
  planKills(round: number): (KillPlan | undefined)[] {
    const { random, options } = this.run;
    return this.tasks.map(() =>
      round > 0 && random() < options.kill
        ? random() < 0.5
          ? { phase: 'mutating' as const, delayMs: Math.floor(random() * this.typicalMutateMs) }
          : { phase: 'snapshotting' as const, delayMs: Math.floor(random() * this.typicalSnapshotMs) }
        : undefined,
    );
  }

  /** Every task's round `n`, with the kills planned; how each ended, in task order. */
  playRound(n: number, kills: readonly (KillPlan | undefined)[]): Promise<RoundEnd[]> {
    return Promise.all(this.tasks.map((t, i) => this.playTask(t, n, kills[i])));
  }

  /** After a round's end: a task that broke the protocol is a violation. */
  checkProtocol(): void {
    if (this.protocolError !== undefined) throw new ViolationError('protocol', this.protocolError);
  }

  /** Killed (or killed just after answering): count, and start the task again on its state directory. */
  async replaceKilled(kills: readonly (KillPlan | undefined)[]): Promise<void> {
    for (const [i, t] of this.tasks.entries()) {
      if (t.child.exitCode === null && t.child.signalCode === null) continue;
      if (t.child.signalCode !== 'SIGKILL') throw new ViolationError('task-process', `task process ${t.name} exited unexpectedly (code ${t.child.exitCode}, signal ${t.child.signalCode}); see ${this.run.logPath}`);
      await t.exited;
      this.run.counters.kills++;
      for (const k of ['transient', 'permanent', 'torn'] as const) this.pastFaults[k] += t.faults[k];
      await this.run.log('killed', { task: t.name, pid: t.child.pid, plan: kills[i] });
      this.tasks[i] = await this.spawn(t.name, i, t.stateDir);
    }
  }

  /** The faults every task process injected so far, the killed ones' included. */
  faults(): FaultCounts {
    const sum = { ...this.pastFaults };
    for (const t of this.tasks) for (const k of ['transient', 'permanent', 'torn'] as const) sum[k] += t.faults[k];
    return sum;
  }

  /** The end of the run: each task finishes its round in flight, then exits; one that hangs is killed. */
  async stop(): Promise<void> {
    for (const t of this.tasks) t.child.send({ type: 'stop' } satisfies ToTask);
    await Promise.all(
      this.tasks.map(async (t) => {
        const timer = setTimeout(() => t.child.kill('SIGKILL'), 60_000);
        await t.exited;
        clearTimeout(timer);
      }),
    );
  }

  async kill(): Promise<void> {
    for (const t of this.tasks) t.child.kill('SIGKILL');
    await Promise.all(this.tasks.map((t) => t.exited));
  }

  private async spawn(name: string, index: number, stateDir: string): Promise<TaskProcess> {
    const { run } = this;
    const child = fork(TASK_ENTRY, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'json' });
    const output = (d: Buffer): void => void appendFile(run.logPath, `${JSON.stringify({ task: name, pid: child.pid, output: d.toString('utf8') })}\n`).catch(() => undefined);
    // A send to a process that just died surfaces at its exit; the error itself is only logged.
    child.on('error', (error) => output(Buffer.from(`child process error: ${error.message}`)));
    child.stdout?.on('data', output);
    child.stderr?.on('data', output);
    const t: TaskProcess = {
      name,
      stateDir,
      child,
      waiter: undefined,
      faults: { transient: 0, permanent: 0, torn: 0 },
      exited: new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          t.waiter?.({ type: 'exit', signal, code });
          resolve();
        }),
      ),
    };
    child.on('message', (raw: unknown) => {
      let message: FromTask;
      try {
        message = parseFromTask(raw);
      } catch (error) {
        this.protocolError = error instanceof Error ? error.message : String(error);
        child.kill('SIGKILL');
        return;
      }
      if (message.type === 'snapshot' || message.type === 'failed') t.faults = message.faults;
      t.waiter?.(message);
    });
    const ready = new Promise<void>((resolve, reject) => {
      t.waiter = (m) => {
        if (m.type === 'ready') resolve();
        else reject(new ViolationError('task-start', `task process ${name} did not start: ${JSON.stringify(m)}`));
      };
    });
    const o = run.options;
    const init: ToTask = {
      type: 'init',
      task: name,
      stateDir,
      store: run.storeLocation,
      job: run.job,
      seed: (o.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0,
      stateBytes: o.stateBytes,
      chunkSize: o.chunkSize,
      threads: o.threads,
      durable: o.durable,
      leaseMs: o.leaseMs,
    };
    const faults = run.faultSpec();
    if (faults !== undefined) init.faults = faults;
    child.send(init);
    await ready;
    t.waiter = undefined;
    return t;
  }

  /** Sends round `n` to a task and resolves with how it ended; kills it at the planned moment. */
  private playTask(t: TaskProcess, n: number, kill: KillPlan | undefined): Promise<RoundEnd> {
    return new Promise((resolve) => {
      let killTimer: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        t.waiter = undefined;
        clearTimeout(killTimer);
        resolve({ type: 'timeout' });
      }, ROUND_TIMEOUT_MS);
      const arm = (): void => {
        if (kill === undefined) return;
        killTimer = setTimeout(() => {
          if (t.child.exitCode === null && t.child.signalCode === null) t.child.kill('SIGKILL');
        }, kill.delayMs);
      };
      const sent = performance.now();
      let snapshotting = sent;
      t.waiter = (m) => {
        switch (m.type) {
          case 'snapshotting':
            snapshotting = performance.now();
            this.typicalMutateMs = 0.7 * this.typicalMutateMs + 0.3 * (snapshotting - sent);
            if (kill?.phase === 'snapshotting') arm();
            return;
          case 'ready':
            return;
          case 'snapshot':
          case 'failed':
          case 'exit':
            if (m.type === 'snapshot') this.typicalSnapshotMs = 0.7 * this.typicalSnapshotMs + 0.3 * (performance.now() - snapshotting);
            // A kill planned for later than the task took is dropped: rounds end with their tasks alive or dead, not in between.
            clearTimeout(timer);
            clearTimeout(killTimer);
            t.waiter = undefined;
            resolve(m);
            return;
          default:
            unhandled(m);
        }
      };
      if (kill?.phase === 'mutating') arm();
      t.child.send({ type: 'round', round: n } satisfies ToTask);
    });
  }
}
