/**
 * Everything one stress run shares, in one object handed to every part of
 * the harness (task fleet, actors, auditor, scenario loop): the options and
 * the one seeded PRNG, where the run lives (work directory, log, store, job),
 * the store as it really is and the store as the run's operations see it
 * (with faults), the counters, the figures and the ledger.
 *
 * Every random choice of the run comes from `random`, drawn in program
 * order, so a seed replays the same sequence of decisions; only timing,
 * and so the exact interleavings, can differ between replays.
 */
import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import { Chunkpoint, type JobLocator } from '../src/chunkpoint.js';
import { committedCheckpointIds } from '../src/checkpoint.js';
import { loadHasher, type Hasher } from '../src/format/content-key.js';
import { prng } from '../src/random.js';
import { jobRootSpec, openStore } from '../src/store/open.js';
import { isS3Url } from '../src/store/s3/location.js';
import type { StoreSpec } from '../src/store/spec.js';
import type { Store } from '../src/store/store.js';
import { FAULT_REPORT_CHANNEL, withFaults, type FaultCounts, type FaultReport, type FaultSpec } from './faulty-store.js';
import { Ledger } from './ledger.js';
import type { StressOptions } from './options.js';
import { zeroCounters, zeroFigures, type Counters, type Figures } from './report.js';

export class StressRun {
  readonly random: () => number;
  readonly counters: Counters = zeroCounters();
  readonly figures: Figures = zeroFigures();
  readonly ledger = new Ledger();
  /** The round in flight: every log line and a violation carry it. */
  round = 0;
  /** Faults injected in this process (commits and gc); the task processes report theirs. */
  readonly ownFaults: FaultCounts = { transient: 0, permanent: 0, torn: 0 };
  private faultSeeds = 0;
  private readonly channel: BroadcastChannel;

  private constructor(
    readonly options: StressOptions,
    readonly started: number,
    readonly workDir: string,
    readonly storeLocation: string,
    readonly job: string,
    private readonly cleanSpec: StoreSpec,
    /** The job root without faults: the truth the invariants are checked against. */
    readonly clean: Store,
    readonly hasher: Hasher,
    /** The public API, as an embedding application uses it: restores, verifies, list, drop. */
    readonly cp: Chunkpoint,
  ) {
    this.random = prng(options.seed);
    this.channel = new BroadcastChannel(FAULT_REPORT_CHANNEL);
    this.channel.onmessage = (event: unknown) => {
      this.ownFaults[(event as { data: FaultReport }).data.kind]++;
    };
    this.channel.unref();
  }

  static async open(options: StressOptions): Promise<StressRun> {
    const started = performance.now();
    const workDir = await mkdtemp(join(tmpdir(), `chunkpoint-stress-${options.seed}-`));
    const storeLocation = options.store ?? join(workDir, 'store');
    const job = `stress-${options.seed}-${Date.now().toString(36)}`;
    const cleanSpec = jobRootSpec(storeLocation, job);
    const run = new StressRun(options, started, workDir, storeLocation, job, cleanSpec, openStore(cleanSpec), await loadHasher(), new Chunkpoint({ threads: options.threads }));
    await run.log('start', { options, store: storeLocation, job, jobRoot: run.jobRoot });
    await mkdir(run.restoresDir, { recursive: true });
    await mkdir(join(workDir, 'state'), { recursive: true });
    return run;
  }

  /** Where task `name` keeps its RocksDB state, across kills. */
  stateDir(name: string): string {
    return join(this.workDir, 'state', name);
  }

  /** Where restores land (and stay, as stale targets for later restores). */
  get restoresDir(): string {
    return join(this.workDir, 'restores');
  }

  get logPath(): string {
    return join(this.workDir, 'stress.log');
  }

  get jobRoot(): string {
    return this.cleanSpec.type === 'fs' ? this.cleanSpec.root : `s3://${this.cleanSpec.bucket}/${this.cleanSpec.prefix}`;
  }

  /** The job as the public API names it. */
  get at(): JobLocator {
    return { store: this.storeLocation, job: this.job };
  }

  elapsedMs(): number {
    return performance.now() - this.started;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)] as T;
  }

  /** One JSON line in stress.log: the evidence a failed run leaves. */
  async log(event: string, data: Record<string, unknown> = {}): Promise<void> {
    await appendFile(this.logPath, `${JSON.stringify({ t: Math.round(this.elapsedMs()), round: this.round, event, ...data })}\n`);
  }

  /** The faults of one more store instance: each gets its own seed derived from the run's, so faults replay too. */
  faultSpec(): FaultSpec | undefined {
    const o = this.options;
    if (o.transient === 0 && o.permanent === 0 && o.torn === 0 && o.maxLatencyMs === 0) return undefined;
    const spec: FaultSpec = {
      seed: (o.seed ^ Math.imul(++this.faultSeeds, 0x27d4eb2f)) >>> 0,
      transient: { '*': o.transient },
      permanent: { put: o.permanent, write: o.permanent, publish: o.permanent, get: o.permanent, delete: o.permanent, list: o.permanent },
      maxLatencyMs: o.maxLatencyMs,
      report: true,
    };
    if (o.torn > 0 && !isS3Url(this.storeLocation)) spec.torn = o.torn;
    return spec;
  }

  /** The job root as the run's commits and gc see it: with faults, and with the retries that hide the transient ones. */
  faultyStore(): Store {
    const faults = this.faultSpec();
    return openStore({ ...(faults === undefined ? this.cleanSpec : withFaults(this.cleanSpec, faults)), retry: { baseDelayMs: 5, maxDelayMs: 200 } });
  }

  /** The checkpoints the store lists, read without faults. */
  async listed(): Promise<number[]> {
    return committedCheckpointIds(this.clean);
  }

  /** Fault counts of the whole run: this process's and the task processes' (`tasks`). */
  countFaults(tasks: FaultCounts): void {
    this.counters.faultsTransient = tasks.transient + this.ownFaults.transient;
    this.counters.faultsPermanent = tasks.permanent + this.ownFaults.permanent;
    this.counters.faultsTorn = tasks.torn + this.ownFaults.torn;
  }

  async close(): Promise<void> {
    this.channel.close();
    await this.cp.close();
  }

  /** A run that passed leaves nothing behind: its job root goes (whatever the store), then its work directory. */
  async discard(): Promise<void> {
    const keys: string[] = [];
    for (const prefix of ['shared/', 'taskowned/', 'sessions/', 'chk-']) {
      for await (const o of this.clean.list(prefix)) keys.push(o.key);
      for await (const o of this.clean.listIncomplete(prefix)) keys.push(o.key);
    }
    for (let i = 0; i < keys.length; i += 1000) await this.clean.delete(keys.slice(i, i + 1000));
    if (this.cleanSpec.type === 'fs') await rm(this.cleanSpec.root, { recursive: true, force: true });
    await rm(this.workDir, { recursive: true, force: true });
  }
}
