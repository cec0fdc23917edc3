/**
 * The stress coordinator: P task processes change real RocksDB state and
 * snapshot it into one job each round; this process commits their task
 * snapshots with retention, and meanwhile runs gc and restores of retained
 * checkpoints, under injected faults and SIGKILLs. Every decision comes from
 * one seeded PRNG, so a run's sequence of choices replays from its seed
 * (timings, and so the exact interleavings, do not).
 *
 * Invariants (a violation stops the run):
 * - every restore of a retained checkpoint, from any cache state into any
 *   target, is byte-identical to the state the task snapshotted;
 * - a committed checkpoint stays listed until retention removes it, and
 *   verifies in full;
 * - failures are explained by injected faults (or are a documented refusal);
 * - at the end, after a gc with no grace period, the store holds exactly the
 *   blobs the retained checkpoints reference and no temp files.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { blobEntryPath } from '../src/cache.js';
import { Chunkpoint } from '../src/chunkpoint.js';
import { commitCheckpoint, committedCheckpointIds, loadCheckpoint, loadManifest, nextCheckpointId, readJobState } from '../src/checkpoint.js';
import { loadHasher } from '../src/format/content-key.js';
import { toChunkpointError } from '../src/errors.js';
import { collectGarbage } from '../src/gc.js';
import type { TaskSnapshot } from '../src/format/metadata.js';
import { prng } from '../src/random.js';
import { leaseMargin } from '../src/lease.js';
import { FORMAT_VERSION } from '../src/format/envelope.js';
import { KEY_ALGORITHM } from '../src/format/manifest.js';
import { metadataKey } from '../src/format/names.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { commitTasks } from '../src/snapshot/index.js';
import { FAULT_REPORT_CHANNEL, injectedFault, withFaults, type FaultReport, type FaultSpec } from './faulty-store.js';
import { jobRootSpec, openStore } from '../src/store/open.js';
import { isS3Url } from '../src/store/s3/location.js';
import type { Store } from '../src/store/store.js';
import { digestDiff, stateDigest } from './digest.js';
import { parseFromTask, unhandled, type FromTask, type InjectedFaults, type StateDigest, type ToTask } from './messages.js';
import { loadRocksDb } from './rocks-state.js';
import type { StressOptions } from './options.js';

export interface Counters {
  rounds: number;
  checkpointsCommitted: number;
  /** Commits that reported a failure although the checkpoint was written (e.g. a fault during retention). */
  committedDespiteError: number;
  roundsNotCommitted: number;
  taskSnapshotsFailed: number;
  commitsFailed: number;
  restoresVerified: number;
  restoresColdCache: number;
  restoresWarmCache: number;
  restoresNoCache: number;
  restoresCorruptedCache: number;
  restoresStaleTarget: number;
  cacheEntriesDropped: number;
  verifies: number;
  gcRuns: number;
  gcFailed: number;
  /** Newest checkpoints dropped while tasks snapshotted. */
  drops: number;
  /** Commits refused as documented (a lease that really ran out, a base the harness dropped). */
  commitsRefused: number;
  kills: number;
  faultsTransient: number;
  faultsPermanent: number;
  faultsTorn: number;
  cacheCorruptions: number;
  /** Older checkpoints whose metadata the harness damaged, and gc runs refused (as documented) while one was there. */
  checkpointsDamaged: number;
  gcRefused: number;
  /** Restores whose cache sat on a full volume. */
  restoresFullCache: number;
  bytesSnapshotted: number;
  bytesWritten: number;
  bytesRead: number;
  /** Restored bytes (whatever their source). */
  bytesRestored: number;
}

export interface Violation {
  invariant: string;
  message: string;
  round: number;
}

export interface StressResult {
  seed: number;
  ok: boolean;
  store: string;
  job: string;
  jobRoot: string;
  workDir: string;
  log: string;
  durationMs: number;
  counters: Counters;
  snapshotMBps: number;
  restoreMBps: number;
  /** At the end, after gc: bytes of the packs in the store, of the chunks the kept checkpoints use, and their ratio. */
  storedBytes: number;
  liveBytes: number;
  spaceAmplification: number;
  violation?: Violation;
  /** Kept on a violation (or with `keep`): where the evidence is. */
  evidenceKept: boolean;
}

export interface StressEvents {
  /** Called after every round and restore with the counters so far. */
  progress?(counters: Counters, elapsedMs: number): void;
}

class ViolationError extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(message);
  }
}

interface TaskProcess {
  name: string;
  stateDir: string;
  child: ChildProcess;
  /** The round in flight and how it ends. */
  waiter: ((message: FromTask | { type: 'exit'; signal: string | null; code: number | null }) => void) | undefined;
  exited: Promise<void>;
  /** Faults this process reported last (its counts are cumulative). */
  faults: InjectedFaults;
}

const TASK_ENTRY = fileURLToPath(new URL('./task.js', import.meta.url));
const ROUND_TIMEOUT_MS = 300_000;

function zeroCounters(): Counters {
  return {
    rounds: 0,
    checkpointsCommitted: 0,
    committedDespiteError: 0,
    roundsNotCommitted: 0,
    taskSnapshotsFailed: 0,
    commitsFailed: 0,
    restoresVerified: 0,
    restoresColdCache: 0,
    restoresWarmCache: 0,
    restoresNoCache: 0,
    restoresCorruptedCache: 0,
    restoresStaleTarget: 0,
    cacheEntriesDropped: 0,
    verifies: 0,
    gcRuns: 0,
    gcFailed: 0,
    drops: 0,
    commitsRefused: 0,
    kills: 0,
    faultsTransient: 0,
    faultsPermanent: 0,
    faultsTorn: 0,
    cacheCorruptions: 0,
    checkpointsDamaged: 0,
    gcRefused: 0,
    restoresFullCache: 0,
    bytesSnapshotted: 0,
    bytesWritten: 0,
    bytesRead: 0,
    bytesRestored: 0,
  };
}

function describe(error: unknown): string {
  const e = toChunkpointError(error);
  return `${e.code}: ${e.message}`;
}

export async function runStress(options: StressOptions, events: StressEvents = {}): Promise<StressResult> {
  // Fail before starting anything when RocksDB is missing.
  await loadRocksDb();
  const started = performance.now();
  const random = prng(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const workDir = await mkdtemp(join(tmpdir(), `chunkpoint-stress-${options.seed}-`));
  const log = join(workDir, 'stress.log');
  const storeLocation = options.store ?? join(workDir, 'store');
  const job = `stress-${options.seed}-${Date.now().toString(36)}`;
  const cleanSpec = jobRootSpec(storeLocation, job);
  const jobRoot = cleanSpec.type === 'fs' ? cleanSpec.root : `s3://${cleanSpec.bucket}/${cleanSpec.prefix}`;
  const counters = zeroCounters();
  let round = 0;
  const write = async (event: string, data: Record<string, unknown> = {}): Promise<void> => {
    await appendFile(log, `${JSON.stringify({ t: Math.round(performance.now() - started), round, event, ...data })}\n`);
  };
  await write('start', { options, store: storeLocation, job, jobRoot });

  // Fault specs: each store instance gets its own seed derived from the run's, so faults replay too.
  let faultSeeds = 0;
  const faultSpec = (): FaultSpec | undefined => {
    if (options.transient === 0 && options.permanent === 0 && options.torn === 0 && options.maxLatencyMs === 0) return undefined;
    const spec: FaultSpec = {
      seed: (options.seed ^ Math.imul(++faultSeeds, 0x27d4eb2f)) >>> 0,
      transient: { '*': options.transient },
      permanent: { put: options.permanent, write: options.permanent, publish: options.permanent, get: options.permanent, delete: options.permanent, list: options.permanent },
      maxLatencyMs: options.maxLatencyMs,
      report: true,
    };
    if (options.torn > 0 && !isS3Url(storeLocation)) spec.torn = options.torn;
    return spec;
  };
  const faultyStore = (): Store => {
    const faults = faultSpec();
    return openStore({ ...(faults === undefined ? cleanSpec : withFaults(cleanSpec, faults)), retry: { baseDelayMs: 5, maxDelayMs: 200 } });
  };
  // The truth: the same job root without faults, for the invariant checks.
  const clean = openStore(cleanSpec);
  const hasher = await loadHasher();
  const cp = new Chunkpoint({ threads: options.threads });

  // Faults injected in this process (commits and gc); task processes report theirs.
  const channel = new BroadcastChannel(FAULT_REPORT_CHANNEL);
  const ownFaults: InjectedFaults = { transient: 0, permanent: 0, torn: 0 };
  channel.onmessage = (event: unknown) => {
    ownFaults[(event as { data: FaultReport }).data.kind]++;
  };
  channel.unref();
  const pastProcessFaults: InjectedFaults = { transient: 0, permanent: 0, torn: 0 };
  const tasks: TaskProcess[] = [];
  const updateFaults = (): void => {
    const sum = { ...pastProcessFaults };
    for (const t of tasks) for (const k of ['transient', 'permanent', 'torn'] as const) sum[k] += t.faults[k];
    counters.faultsTransient = sum.transient + ownFaults.transient;
    counters.faultsPermanent = sum.permanent + ownFaults.permanent;
    counters.faultsTorn = sum.torn + ownFaults.torn;
  };
  const progress = (): void => {
    updateFaults();
    events.progress?.(counters, performance.now() - started);
  };
  const ticker = setInterval(progress, 500);
  ticker.unref();

  // --- task processes ---
  const spawnTask = async (name: string, index: number, stateDir: string): Promise<TaskProcess> => {
    const child = fork(TASK_ENTRY, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'json' });
    const output = (d: Buffer): void => void appendFile(log, `${JSON.stringify({ task: name, pid: child.pid, output: d.toString('utf8') })}\n`).catch(() => undefined);
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
        protocolError = error instanceof Error ? error.message : String(error);
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
    const init: ToTask = {
      type: 'init',
      task: name,
      stateDir,
      store: storeLocation,
      job,
      seed: (options.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0,
      stateBytes: options.stateBytes,
      chunkSize: options.chunkSize,
      threads: options.threads,
      durable: options.durable,
      leaseMs: options.leaseMs,
    };
    const faults = faultSpec();
    if (faults !== undefined) init.faults = faults;
    child.send(init);
    await ready;
    t.waiter = undefined;
    return t;
  };
  let protocolError: string | undefined;

  // --- what the harness knows: per committed checkpoint, each task's digest ---
  const digests = new Map<number, Map<string, StateDigest>>();
  const committedOrder: number[] = [];
  /** The checkpoints that should be listed: committed, not yet removed by retention or dropped by the harness. */
  const alive = new Set<number>();
  let planted = false;
  const lastTarget = new Map<string, string>();
  let restoreCount = 0;
  let restoreMs = 0;
  let snapshotMs = 0;
  const warmCache = join(workDir, 'cache-warm');
  let violation: Violation | undefined;
  let storedBytes = 0;
  let liveBytes = 0;

  const retained = async (): Promise<number[]> => committedCheckpointIds(clean);
  let droppedThisRound: number | undefined;
  /** An older checkpoint whose metadata the harness damaged: kept by retention, refused by gc, dropped after the next commit. */
  let damaged: number | undefined;

  /** The orphan scenario: the newest checkpoint disappears while tasks build on it; its packs become orphans gc may take. */
  const dropNewest = async (): Promise<void> => {
    const ids = await retained();
    const newest = ids.at(-1);
    if (newest === undefined || ids.length < 2) return;
    await cp.drop({ store: storeLocation, job }, newest);
    if (newest === damaged) damaged = undefined;
    droppedThisRound = newest;
    digests.delete(newest);
    committedOrder.splice(committedOrder.indexOf(newest), 1);
    alive.delete(newest);
    counters.drops++;
    await write('dropped', { checkpoint: newest });
  };

  /**
   * Damages one byte of an older retained checkpoint's `_metadata` (not the
   * newest: the tasks' base stays readable). From now on that checkpoint is
   * not restorable; it must be listed as damaged beside the others.
   */
  const damageOlder = async (ids: readonly number[], newest: number): Promise<void> => {
    const older = ids.filter((id) => id !== newest && digests.has(id));
    if (older.length === 0) return;
    const victim = pick(older);
    const key = metadataKey(victim);
    const data = await clean.get(key);
    const at = Math.floor(random() * data.byteLength);
    data[at] = (data[at] ?? 0) ^ 0xff;
    await clean.put(key, [data]);
    damaged = victim;
    digests.delete(victim);
    alive.delete(victim);
    counters.checkpointsDamaged++;
    await write('damaged', { checkpoint: victim, offset: at });
    const listed = await cp.list({ store: storeLocation, job });
    const marked = listed.find((c) => c.checkpointId === victim);
    if (marked?.damaged === undefined) throw new ViolationError('list', `chk-${victim}, whose metadata was damaged, is not listed as damaged`);
    const others = listed.filter((c) => c.checkpointId !== victim);
    if (others.some((c) => c.damaged !== undefined) || others.length !== ids.length - 1) {
      throw new ViolationError('list', `with chk-${victim} damaged, list does not show every other checkpoint intact: ${listed.map((c) => `${c.checkpoint}${c.damaged === undefined ? '' : ' (damaged)'}`).join(', ')}`);
    }
  };

  /** After a commit that had to live with the damaged checkpoint: retention must have kept it; an explicit drop removes it. */
  const dropDamaged = async (ids: readonly number[]): Promise<void> => {
    if (damaged === undefined) return;
    if (!ids.includes(damaged)) throw new ViolationError('retention', `chk-${damaged}, whose metadata is damaged, was removed by retention; only an explicit drop may remove it`);
    await cp.drop({ store: storeLocation, job }, damaged);
    await write('dropped-damaged', { checkpoint: damaged });
    damaged = undefined;
  };

  // The victim is an entry the coming restore will read: a random entry of a
  // cache holding every checkpoint's blobs would almost never be touched.
  const corruptCacheEntry = async (dir: string, id: number, task: string): Promise<boolean> => {
    const metadata = await loadCheckpoint(clean, id, hasher);
    const entry = metadata.tasks.find((t) => t.task === task);
    const chunks = entry === undefined ? [] : (await loadManifest(clean, entry, hasher)).manifest.files.flatMap((f) => f.chunks);
    const blobs: string[] = [];
    for (const c of chunks) {
      const entry = blobEntryPath({ dir: resolve(dir) }, c.key, c.rawLength);
      if ((await stat(entry).catch(() => undefined))?.isFile() === true) blobs.push(entry);
    }
    if (blobs.length === 0) return false;
    const victim = pick(blobs);
    // A flipped byte (header or payload) must be noticed, dropped and refetched; a FIFO in its place must
    // not block the restore, and an entry grown to 100 GiB must not be read: both are misses.
    const kind = pick(['flip', 'flip', 'fifo', 'grown'] as const);
    if (kind === 'fifo') {
      await rm(victim);
      execFileSync('mkfifo', [victim]);
      await write('cache-corrupted', { entry: victim, kind });
    } else if (kind === 'grown') {
      await truncate(victim, 100 * 1024 ** 3);
      await write('cache-corrupted', { entry: victim, kind });
    } else {
      const data = await readFile(victim);
      if (data.byteLength === 0) return false;
      const at = Math.floor(random() * data.byteLength);
      data[at] = (data[at] ?? 0) ^ 0xff;
      await writeFile(victim, data);
      await write('cache-corrupted', { entry: victim, kind, offset: at });
    }
    counters.cacheCorruptions++;
    return true;
  };

  const restoreOne = async (): Promise<void> => {
    const ids = await retained();
    const ids2 = ids.filter((id) => digests.has(id));
    if (ids2.length === 0) return;
    const id = pick(ids2);
    const byTask = digests.get(id);
    const task = pick([...(byTask?.keys() ?? [])]);
    const expected = byTask?.get(task);
    if (expected === undefined) return;
    const n = ++restoreCount;
    const cacheMode = pick(options.fullCacheDir === undefined ? (['none', 'cold', 'warm', 'warm'] as const) : (['none', 'cold', 'warm', 'warm', 'full'] as const));
    let cacheDir: string | undefined;
    let corrupted = false;
    if (cacheMode === 'cold') cacheDir = join(workDir, `cache-cold-${n}`);
    if (cacheMode === 'full') cacheDir = options.fullCacheDir;
    if (cacheMode === 'warm') {
      cacheDir = warmCache;
      if (random() < options.corruptCache) corrupted = await corruptCacheEntry(warmCache, id, task);
    }
    const previous = lastTarget.get(task);
    const stale = previous !== undefined && random() < 0.5;
    const target = stale ? previous : join(workDir, 'restores', `r${n}-${task}`);
    const mode = stale ? pick(['overwrite', 'keepMatching'] as const) : 'fresh';
    if (stale) await writeFile(join(target, `junk-${n}`), `left over by restore ${n}`);
    const t0 = performance.now();
    await write('restore', { checkpoint: id, task, cache: cacheMode, corrupted, target, mode });
    let r;
    try {
      r = await cp.restore({ store: storeLocation, job, checkpoint: id }, target, {
        task,
        durable: false,
        ...(cacheDir === undefined ? {} : { cache: { dir: cacheDir } }),
        ...(mode === 'overwrite' ? { overwrite: true } : mode === 'keepMatching' ? { keepMatching: true } : {}),
      });
    } catch (error) {
      throw new ViolationError('restore', `restore of chk-${id} task ${task} (cache ${cacheMode}${corrupted ? ', one entry corrupted' : ''}, ${mode} target ${target}) failed: ${describe(error)}`);
    }
    restoreMs += performance.now() - t0;
    const { digest, bytes } = await stateDigest(target);
    const diff = digestDiff(expected, digest);
    if (diff.length > 0) {
      throw new ViolationError('restore-identical', `restore of chk-${id} task ${task} into ${target} (cache ${cacheMode}${corrupted ? ', one entry corrupted' : ''}, ${mode}) differs from the snapshotted state: ${diff.slice(0, 5).join(', ')}${diff.length > 5 ? ` and ${diff.length - 5} more` : ''}`);
    }
    counters.restoresVerified++;
    if (cacheMode === 'none') counters.restoresNoCache++;
    else if (cacheMode === 'cold') counters.restoresColdCache++;
    else if (cacheMode === 'full') counters.restoresFullCache++;
    else counters.restoresWarmCache++;
    if (corrupted) counters.restoresCorruptedCache++;
    if (stale) counters.restoresStaleTarget++;
    counters.cacheEntriesDropped += r.cacheEntriesDropped;
    counters.bytesRead += r.bytesFromRemote + r.bytesFromCache;
    counters.bytesRestored += bytes;
    if (cacheMode === 'cold' && cacheDir !== undefined) await rm(cacheDir, { recursive: true, force: true });
    // Keep one target per task for the next stale restore; drop the one it replaces.
    if (!stale && previous !== undefined) await rm(previous, { recursive: true, force: true });
    lastTarget.set(task, target);
    await write('restored', { checkpoint: id, task, bytes, fromCache: r.bytesFromCache, fromRemote: r.bytesFromRemote, kept: r.bytesKept, dropped: r.cacheEntriesDropped });
  };

  /** Verifies a checkpoint: every pack present and whole, and all chunks read (or a sample: cheap enough after every commit). */
  const verifyOne = async (id: number, sample = 1): Promise<void> => {
    let v;
    try {
      v = await cp.verify({ store: storeLocation, job, checkpoint: id }, sample === 1 ? {} : { sample, sampleSeed: Math.floor(random() * 2 ** 32) });
    } catch (error) {
      throw new ViolationError('verify', `verify of retained chk-${id} failed: ${describe(error)}`);
    }
    counters.verifies++;
    counters.bytesRead += v.bytesChecked;
    if (!v.ok) {
      throw new ViolationError('verify', `chk-${id} does not verify: ${v.problems.map((p) => `${p.code} ${p.object}`).slice(0, 5).join('; ')}`);
    }
  };

  const gcOnce = async (): Promise<void> => {
    try {
      const r = await collectGarbage(faultyStore(), hasher, job, { graceMs: options.gcGraceMs });
      counters.gcRuns++;
      await write('gc', { packsRemoved: r.packsRemoved, manifestsRemoved: r.manifestsRemoved, sessionsRemoved: r.sessionsRemoved, incompleteRemoved: r.incompleteRemoved, liveKept: r.liveKept, youngKept: r.youngKept });
    } catch (error) {
      // With a damaged checkpoint present gc must refuse, naming it, and delete nothing: a documented refusal.
      if (damaged !== undefined && toChunkpointError(error).code === 'GC_UNREADABLE_CHECKPOINT' && describe(error).includes(`chk-${damaged}`)) {
        counters.gcRefused++;
        await write('gc-refused', { damaged });
        return;
      }
      if (injectedFault(error) === undefined) throw new ViolationError('gc', `gc failed without an injected fault: ${describe(error)}`);
      counters.gcFailed++;
      await write('gc-failed', { error: describe(error) });
    }
  };

  /** Sends round `n` to a task and resolves with how it ended; kills it at the planned moment. */
  type RoundEnd = Extract<FromTask, { type: 'snapshot' | 'failed' }> | { type: 'exit'; signal: string | null; code: number | null } | { type: 'timeout' };
  const runTask = (t: TaskProcess, n: number, kill: { phase: 'mutating' | 'snapshotting'; delayMs: number } | undefined): Promise<RoundEnd> =>
    new Promise((resolve) => {
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
            typicalMutateMs = 0.7 * typicalMutateMs + 0.3 * (snapshotting - sent);
            if (kill?.phase === 'snapshotting') arm();
            return;
          case 'ready':
            return;
          case 'snapshot':
          case 'failed':
          case 'exit':
            if (m.type === 'snapshot') typicalSnapshotMs = 0.7 * typicalSnapshotMs + 0.3 * (performance.now() - snapshotting);
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

  // How long each phase of a task's round takes here, so kills land inside it.
  let typicalMutateMs = 500;
  let typicalSnapshotMs = 1000;
  let deadline = Number.POSITIVE_INFINITY;

  try {
    await mkdir(join(workDir, 'restores'), { recursive: true });
    await mkdir(join(workDir, 'state'), { recursive: true });
    for (let i = 0; i < options.tasks; i++) tasks.push(await spawnTask(`t${i}`, i, join(workDir, 'state', `t${i}`)));

    // Round 0 creates every task's state; later rounds change it. A run always makes at least one attempt.
    for (round = 0; round === 0 || performance.now() < deadline; round++) {
      counters.rounds++;
      const roundStart = performance.now();
      const plans = tasks.map(() =>
        round > 0 && random() < options.kill
          ? random() < 0.5
            ? { phase: 'mutating' as const, delayMs: Math.floor(random() * typicalMutateMs) }
            : { phase: 'snapshotting' as const, delayMs: Math.floor(random() * typicalSnapshotMs) }
          : undefined,
      );
      const outcomes = Promise.all(tasks.map((t, i) => runTask(t, round, plans[i])));
      // Meanwhile, against the same job: gc with a grace period, restores and verifies of retained checkpoints.
      droppedThisRound = undefined;
      const background = (async () => {
        // At a random moment of the round: before the tasks read their base, or while they build on it.
        if (round > 0 && random() < options.drop) await sleep(Math.floor(random() * (typicalMutateMs + typicalSnapshotMs))).then(dropNewest);
        if (round > 0 && random() < options.gc) await gcOnce();
        const restores = Math.floor(random() * (2 * options.restores + 1));
        for (let i = 0; i < restores && round > 0; i++) {
          await restoreOne();
          progress();
        }
        if (round > 0 && random() < options.gc / 2) await gcOnce();
      })();
      const [results] = await Promise.all([outcomes, background]);
      if (protocolError !== undefined) throw new ViolationError('protocol', protocolError);

      const parts: TaskSnapshot[] = [];
      const roundDigests = new Map<string, StateDigest>();
      for (const [i, r] of results.entries()) {
        const t = tasks[i] as TaskProcess;
        switch (r.type) {
          case 'snapshot':
            parts.push(r.snapshot);
            roundDigests.set(t.name, r.digest);
            counters.bytesSnapshotted += r.bytes;
            counters.bytesWritten += r.snapshot.figures.bytesWritten;
            break;
          case 'failed':
            counters.taskSnapshotsFailed++;
            await write('task-failed', { task: t.name, code: r.code, message: r.message, injected: r.injected });
            if (!r.injected) throw new ViolationError('task-snapshot', `task ${t.name}'s round ${round} failed without an injected fault: ${r.code}: ${r.message}`);
            break;
          case 'exit':
            if (r.signal !== 'SIGKILL') throw new ViolationError('task-process', `task process ${t.name} exited unexpectedly (code ${r.code}, signal ${r.signal}); see ${log}`);
            break;
          case 'timeout':
            throw new ViolationError('task-hang', `task ${t.name} did not finish round ${round} within ${ROUND_TIMEOUT_MS / 1000} s`);
          default:
            unhandled(r);
        }
      }
      // Killed (or killed just after answering): count, and start the task again on its state directory.
      for (const [i, t] of tasks.entries()) {
        if (t.child.exitCode === null && t.child.signalCode === null) continue;
        if (t.child.signalCode !== 'SIGKILL') throw new ViolationError('task-process', `task process ${t.name} exited unexpectedly (code ${t.child.exitCode}, signal ${t.child.signalCode}); see ${log}`);
        await t.exited;
        counters.kills++;
        for (const k of ['transient', 'permanent', 'torn'] as const) pastProcessFaults[k] += t.faults[k];
        await write('killed', { task: t.name, pid: t.child.pid, plan: plans[i] });
        tasks[i] = await spawnTask(t.name, i, t.stateDir);
      }

      if (parts.length === options.tasks) {
        // A checkpoint holds every task: only then is there something to commit.
        const expectedId = parts[0]?.checkpointId ?? nextCheckpointId(await readJobState(clean));
        let committedId: number | undefined;
        if (options.plant === 'skip-lease-check' && !planted && counters.checkpointsCommitted >= 1) {
          planted = true;
          // Wait out the leases, let gc (no grace) take what the sessions wrote, then commit without the check.
          const expires = Math.max(...parts.map((p) => Date.parse(p.expiresAt)));
          await sleep(Math.max(0, expires + leaseMargin(options.leaseMs) - Date.now() + 200));
          const gc = await collectGarbage(clean, hasher, job, { graceMs: 0 });
          await write('planted', { kind: 'skip-lease-check', packsCollected: gc.packsRemoved });
          await commitCheckpoint(
            clean,
            {
              formatVersion: FORMAT_VERSION,
              checkpointId: expectedId,
              jobId: job,
              createdAt: new Date().toISOString(),
              keyAlgorithm: KEY_ALGORITHM,
              base: parts[0]?.base ?? null,
              tasks: parts.map((t) => ({ task: t.task, session: t.session, manifest: t.manifest, packs: t.packs, files: t.figures.files, bytes: t.figures.bytes, chunks: t.figures.chunks })),
              snapshot: { bytesRead: 0, bytesWritten: 0, filesReused: 0, chunksNew: 0, chunksDeduped: 0, durationMs: 0 },
            },
            hasher,
            false,
          );
          committedId = expectedId;
        } else try {
          if (options.plant === 'lose-fresh-pack' && !planted && counters.checkpointsCommitted >= 1) {
            const fresh = parts.flatMap((p) => p.packs.map((k) => k.key));
            if (fresh.length > 0) {
              planted = true;
              const pack = pick(fresh);
              await clean.delete([pack]);
              await write('planted', { kind: 'lose-fresh-pack', pack });
            }
          }
          const r = await commitTasks(faultyStore(), hasher, job, parts, { retain: options.retain, graceMs: options.graceMs, durable: options.durable });
          committedId = r.checkpointId;
          // The blobs were counted with the task snapshots; this adds the _metadata.
          counters.bytesWritten += r.bytesWritten - parts.reduce((sum, p) => sum + p.figures.bytesWritten, 0);
          await write('committed', { checkpoint: r.checkpoint, removed: r.checkpointsRemoved });
        } catch (error) {
          const ids = await committedCheckpointIds(clean);
          if (ids.includes(expectedId) && !committedOrder.includes(expectedId)) {
            // The metadata was written; a later step (retention) met a fault.
            committedId = expectedId;
            counters.committedDespiteError++;
            await write('committed-despite-error', { checkpoint: expectedId, error: describe(error) });
          } else {
            const code = toChunkpointError(error).code;
            // Documented refusals, each only when what it says really happened: a lease that ran out
            // (the commit came too late), a base the harness dropped during the round.
            const leaseRanOut = parts.some((p) => Date.parse(p.expiresAt) - leaseMargin(options.leaseMs) <= Date.now());
            const refusal = (code === 'TASK_SNAPSHOT_EXPIRED' && leaseRanOut) || ((code === 'BASE_REMOVED' || code === 'CHECKPOINT_FENCED' || code === 'TASK_SNAPSHOTS_MIXED') && droppedThisRound !== undefined);
            if (injectedFault(error) === undefined && !refusal) {
              throw new ViolationError('commit', `commit of round ${round} failed without an injected fault or a cause the harness made: ${describe(error)}`);
            }
            if (refusal) counters.commitsRefused++;
            else counters.commitsFailed++;
            await write('commit-failed', { error: describe(error), refusal });
          }
        }
        snapshotMs += performance.now() - roundStart;
        if (committedId !== undefined) {
          if (committedId !== expectedId) throw new ViolationError('commit', `commit produced chk-${committedId}, expected chk-${expectedId}`);
          counters.checkpointsCommitted++;
          committedOrder.push(committedId);
          alive.add(committedId);
          digests.set(committedId, roundDigests);
          // Retention keeps exactly the newest `retain` of the checkpoints still alive (drops remove some; retention never brings any back).
          for (const id of [...alive].sort((a, b) => b - a).slice(options.retain)) alive.delete(id);
          const ids = await retained();
          const expectedKept = [...alive].sort((a, b) => a - b);
          for (const id of expectedKept) {
            if (!ids.includes(id)) throw new ViolationError('retention', `chk-${id}, one of the newest ${options.retain} committed checkpoints, is no longer listed (listed: ${ids.join(', ')})`);
          }
          for (const id of [...digests.keys()]) if (!ids.includes(id)) digests.delete(id);
          if (options.plant === 'drop-pack' && !planted && counters.checkpointsCommitted >= 2) {
            planted = true;
            const m = await loadCheckpoint(clean, committedId, hasher);
            const pack = pick(m.tasks.flatMap((t) => t.packs.map((p) => p.key)));
            await clean.delete([pack]);
            await write('planted', { kind: 'drop-pack', checkpoint: committedId, pack });
          }
          if (options.plant === 'drop-old-pack' && !planted) {
            const newest = new Set((await loadCheckpoint(clean, committedId, hasher)).tasks.flatMap((t) => t.packs.map((p) => p.key)));
            const older: string[] = [];
            for (const id of ids) {
              if (id === committedId || !digests.has(id)) continue;
              for (const t of (await loadCheckpoint(clean, id, hasher)).tasks) for (const p of t.packs) if (!newest.has(p.key)) older.push(p.key);
            }
            if (older.length > 0) {
              planted = true;
              const pack = pick(older);
              await clean.delete([pack]);
              await write('planted', { kind: 'drop-old-pack', pack });
            }
          }
          await verifyOne(committedId);
          // Every retained checkpoint, cheaply (every pack's presence and size, a sample of chunks): damage to an older one shows up now, not by chance.
          for (const id of ids) if (id !== committedId && digests.has(id)) await verifyOne(id, 0.05);
          if (damaged !== undefined) await dropDamaged(ids);
          else if (random() < options.damage) await damageOlder(ids, committedId);
        }
      } else {
        counters.roundsNotCommitted++;
        await write('not-committed', { snapshots: parts.length, tasks: options.tasks });
      }
      // Restores need a checkpoint: the soak's clock starts at the first commit.
      if (deadline === Number.POSITIVE_INFINITY && counters.checkpointsCommitted > 0) deadline = performance.now() + options.durationMs;
      if (counters.checkpointsCommitted === 0 && round >= 9) throw new ViolationError('progress', `no checkpoint committed in ${round + 1} rounds; see ${log} (fault rates too high for this store?)`);
      progress();
    }

    // --- the end: stop the tasks, then check the whole job ---
    for (const t of tasks) t.child.send({ type: 'stop' } satisfies ToTask);
    await Promise.all(
      tasks.map(async (t) => {
        const timer = setTimeout(() => t.child.kill('SIGKILL'), 60_000);
        await t.exited;
        clearTimeout(timer);
      }),
    );
    if (damaged !== undefined) await dropDamaged(await retained());
    const ids = await retained();
    for (const id of ids) {
      await verifyOne(id);
      const byTask = digests.get(id);
      if (byTask === undefined) throw new ViolationError('retention', `chk-${id} is listed but the harness never committed it`);
    }
    for (let i = 0; i < Math.min(3, ids.length * options.tasks); i++) await restoreOne();
    // Sessions of killed tasks hold their packs until their lease runs out (plus the clock margin): wait for that, then gc without grace.
    await sleep(options.leaseMs + leaseMargin(options.leaseMs) + 500);
    // Nothing writes any more: interrupted writes need no protection either.
    const gc = await collectGarbage(clean, hasher, job, { graceMs: 0, writeGraceMs: 0 });
    counters.gcRuns++;
    await write('final-gc', { ...gc });
    // Sessions of killed tasks live out their lease: wait until gc may take what they wrote.
    const referenced = new Set<string>();
    for (const id of ids) for (const t of (await loadCheckpoint(clean, id, hasher)).tasks) for (const key of [t.manifest.key, ...t.packs.map((p) => p.key)]) referenced.add(key);
    const stored = new Set<string>();
    const leftovers: string[] = [];
    for (const area of ['shared/', 'taskowned/']) for await (const o of clean.list(area)) stored.add(o.key);
    for await (const o of clean.listIncomplete('')) leftovers.push(o.key);
    // Space: the packs left against the chunks the kept checkpoints use.
    const live = new Map<string, number>();
    for (const id of ids) {
      const m = await loadCheckpoint(clean, id, hasher);
      for (const t of m.tasks) for (const f of (await loadManifest(clean, t, hasher)).manifest.files) for (const c of f.chunks) live.set(`${c.handle.area}/${c.handle.name}@${c.handle.offset}`, c.handle.length);
    }
    for await (const o of clean.list('shared/')) storedBytes += o.size;
    for await (const o of clean.list('taskowned/')) if (o.key.endsWith('.pack')) storedBytes += o.size;
    liveBytes = [...live.values()].reduce((a, b) => a + b, 0);
    await write('space', { storedBytes, liveBytes, ratio: liveBytes > 0 ? storedBytes / liveBytes : 0 });
    const missing = [...referenced].filter((k) => !stored.has(k));
    const extra = [...stored].filter((k) => !referenced.has(k));
    if (missing.length > 0) throw new ViolationError('blobs-referenced', `${missing.length} object(s) the retained checkpoints reference are missing: ${missing.slice(0, 3).join(', ')}`);
    if (extra.length > 0 || leftovers.length > 0) {
      throw new ViolationError('gc-complete', `after gc with no grace period the store still holds ${extra.length} unreferenced object(s) and ${leftovers.length} interrupted write(s): ${[...extra, ...leftovers].slice(0, 3).join(', ')}`);
    }
  } catch (error) {
    if (error instanceof ViolationError) violation = { invariant: error.invariant, message: error.message, round };
    else violation = { invariant: 'harness', message: `the harness itself failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, round };
    await write('violation', { ...violation });
    for (const t of tasks) t.child.kill('SIGKILL');
    await Promise.all(tasks.map((t) => t.exited));
  } finally {
    clearInterval(ticker);
    channel.close();
    await cp.close();
  }
  updateFaults();
  const durationMs = Math.round(performance.now() - started);
  const keep = violation !== undefined || options.keep;
  const result: StressResult = {
    seed: options.seed,
    ok: violation === undefined,
    store: storeLocation,
    job,
    jobRoot,
    workDir,
    log,
    durationMs,
    counters,
    snapshotMBps: snapshotMs > 0 ? round2(counters.bytesSnapshotted / 1e6 / (snapshotMs / 1000)) : 0,
    restoreMBps: restoreMs > 0 ? round2(counters.bytesRestored / 1e6 / (restoreMs / 1000)) : 0,
    storedBytes,
    liveBytes,
    spaceAmplification: liveBytes > 0 ? round2(storedBytes / liveBytes) : 0,
    evidenceKept: keep,
    ...(violation === undefined ? {} : { violation }),
  };
  await write('end', { ok: result.ok, counters });
  if (!keep) {
    // Nothing to keep: the job root goes (whatever the store), then the work directory.
    const keys: string[] = [];
    for (const prefix of ['shared/', 'taskowned/', 'sessions/', 'chk-']) {
      for await (const o of clean.list(prefix)) keys.push(o.key);
      for await (const o of clean.listIncomplete(prefix)) keys.push(o.key);
    }
    for (let i = 0; i < keys.length; i += 1000) await clean.delete(keys.slice(i, i + 1000));
    if (cleanSpec.type === 'fs') await rm(cleanSpec.root, { recursive: true, force: true });
    await rm(workDir, { recursive: true, force: true });
  }
  return result;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
