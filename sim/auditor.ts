/**
 * The auditor: every invariant of docs/STRESS.md is checked here, against
 * the store read without faults and the ledger, never against what an
 * operation reported about itself. It verifies retained checkpoints,
 * restores them and compares the result byte for byte with the state the
 * task snapshotted, judges each failure (an injected fault or a documented
 * refusal whose cause really happened is expected, anything else is a
 * violation), and at the end accounts for every object in the store.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadCheckpoint, loadManifest } from '../src/checkpoint.js';
import { toChunkpointError } from '../src/errors.js';
import type { TaskSnapshot } from '../src/format/metadata.js';
import { collectGarbage } from '../src/gc.js';
import { leaseMargin } from '../src/lease.js';
import { corruptCacheEntry } from './actors/cache.js';
import { digestDiff, stateDigest } from './digest.js';
import { injectedFault } from './faulty-store.js';
import { ROUND_TIMEOUT_MS, type RoundEnd } from './fleet.js';
import { unhandled } from './messages.js';
import type { StressRun } from './run.js';
import { ViolationError, describe } from './violation.js';

export class Auditor {
  private restores = 0;
  /** Per task, the target of its last restore: the next may restore over it (a stale target). */
  private readonly lastTarget = new Map<string, string>();
  private readonly warmCache: string;

  constructor(private readonly run: StressRun) {
    this.warmCache = join(run.workDir, 'cache-warm');
  }

  /** Verifies a checkpoint: every pack present and whole, and all chunks read (or a sample: cheap enough after every commit). */
  async verify(id: number, sample = 1): Promise<void> {
    const { run } = this;
    let v;
    try {
      v = await run.cp.verify({ ...run.at, checkpoint: id }, sample === 1 ? {} : { sample, sampleSeed: Math.floor(run.random() * 2 ** 32) });
    } catch (error) {
      throw new ViolationError('verify', `verify of retained chk-${id} failed: ${describe(error)}`);
    }
    run.counters.verifies++;
    run.counters.bytesRead += v.bytesChecked;
    if (!v.ok) {
      throw new ViolationError('verify', `chk-${id} does not verify: ${v.problems.map((p) => `${p.code} ${p.object}`).slice(0, 5).join('; ')}`);
    }
  }

  /** After a commit: the new checkpoint in full; every other retained one cheaply, so damage to an older one shows up now, not by chance. */
  async verifyRetained(newest: number, listed: readonly number[]): Promise<void> {
    await this.verify(newest);
    for (const id of listed) if (id !== newest && this.run.ledger.isRestorable(id)) await this.verify(id, 0.05);
  }

  /**
   * Restores a random task of a random retained checkpoint — with no cache,
   * a cold one, the warm one (sometimes with a bad entry first) or one on a
   * full volume; into a fresh target or over an older restore — and checks
   * it is byte-identical to what the task snapshotted.
   */
  async restore(): Promise<void> {
    const { run } = this;
    const { counters, options } = run;
    const ids = run.ledger.restorable(await run.listed());
    if (ids.length === 0) return;
    const id = run.pick(ids);
    const byTask = run.ledger.tasksOf(id);
    const task = run.pick([...(byTask?.keys() ?? [])]);
    const expected = byTask?.get(task);
    if (expected === undefined) return;
    const n = ++this.restores;
    const cacheMode = run.pick(options.fullCacheDir === undefined ? (['none', 'cold', 'warm', 'warm'] as const) : (['none', 'cold', 'warm', 'warm', 'full'] as const));
    let cacheDir: string | undefined;
    let corrupted = false;
    if (cacheMode === 'cold') cacheDir = join(run.workDir, `cache-cold-${n}`);
    if (cacheMode === 'full') cacheDir = options.fullCacheDir;
    if (cacheMode === 'warm') {
      cacheDir = this.warmCache;
      if (run.random() < options.corruptCache) corrupted = await corruptCacheEntry(run, this.warmCache, id, task);
    }
    const previous = this.lastTarget.get(task);
    const stale = previous !== undefined && run.random() < 0.5;
    const target = stale ? previous : join(run.restoresDir, `r${n}-${task}`);
    const mode = stale ? run.pick(['overwrite', 'keepMatching'] as const) : 'fresh';
    if (stale) await writeFile(join(target, `junk-${n}`), `left over by restore ${n}`);
    const t0 = performance.now();
    await run.log('restore', { checkpoint: id, task, cache: cacheMode, corrupted, target, mode });
    const how = `cache ${cacheMode}${corrupted ? ', one entry corrupted' : ''}`;
    let r;
    try {
      r = await run.cp.restore({ ...run.at, checkpoint: id }, target, {
        task,
        durable: false,
        ...(cacheDir === undefined ? {} : { cache: { dir: cacheDir } }),
        ...(mode === 'overwrite' ? { overwrite: true } : mode === 'keepMatching' ? { keepMatching: true } : {}),
      });
    } catch (error) {
      throw new ViolationError('restore', `restore of chk-${id} task ${task} (${how}, ${mode} target ${target}) failed: ${describe(error)}`);
    }
    run.figures.restoreMs += performance.now() - t0;
    const { digest, bytes } = await stateDigest(target);
    const diff = digestDiff(expected, digest);
    if (diff.length > 0) {
      throw new ViolationError('restore-identical', `restore of chk-${id} task ${task} into ${target} (${how}, ${mode}) differs from the snapshotted state: ${diff.slice(0, 5).join(', ')}${diff.length > 5 ? ` and ${diff.length - 5} more` : ''}`);
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
    this.lastTarget.set(task, target);
    await run.log('restored', { checkpoint: id, task, bytes, fromCache: r.bytesFromCache, fromRemote: r.bytesFromRemote, kept: r.bytesKept, dropped: r.cacheEntriesDropped });
  }

  /** A task's round that delivered no snapshot: only an injected fault or the harness's own SIGKILL explains that. */
  async taskEnded(task: string, end: Exclude<RoundEnd, { type: 'snapshot' }>): Promise<void> {
    const { run } = this;
    switch (end.type) {
      case 'failed':
        run.counters.taskSnapshotsFailed++;
        await run.log('task-failed', { task, code: end.code, message: end.message, injected: end.injected });
        if (!end.injected) throw new ViolationError('task-snapshot', `task ${task}'s round ${run.round} failed without an injected fault: ${end.code}: ${end.message}`);
        return;
      case 'exit':
        if (end.signal !== 'SIGKILL') throw new ViolationError('task-process', `task process ${task} exited unexpectedly (code ${end.code}, signal ${end.signal}); see ${run.logPath}`);
        return;
      case 'timeout':
        throw new ViolationError('task-hang', `task ${task} did not finish round ${run.round} within ${ROUND_TIMEOUT_MS / 1000} s`);
      default:
        unhandled(end);
    }
  }

  /**
   * A commit of checkpoint `expected` failed. A failure after the commit
   * point (e.g. a fault during retention) committed all the same: returns
   * `expected` then. Otherwise the failure must be an injected fault or a
   * documented refusal whose cause really happened — a lease that ran out
   * (the commit came too late), a base the harness dropped during the round.
   */
  async commitFailed(error: unknown, parts: readonly TaskSnapshot[], expected: number): Promise<number | undefined> {
    const { run } = this;
    const listed = await run.listed();
    if (listed.includes(expected) && !run.ledger.has(expected)) {
      run.counters.committedDespiteError++;
      await run.log('committed-despite-error', { checkpoint: expected, error: describe(error) });
      return expected;
    }
    const code = toChunkpointError(error).code;
    const leaseRanOut = parts.some((p) => Date.parse(p.expiresAt) - leaseMargin(run.options.leaseMs) <= Date.now());
    const refusal = (code === 'TASK_SNAPSHOT_EXPIRED' && leaseRanOut) || ((code === 'BASE_REMOVED' || code === 'CHECKPOINT_FENCED' || code === 'TASK_SNAPSHOTS_MIXED') && run.ledger.droppedThisRound !== undefined);
    if (injectedFault(error) === undefined && !refusal) {
      throw new ViolationError('commit', `commit of round ${run.round} failed without an injected fault or a cause the harness made: ${describe(error)}`);
    }
    if (refusal) run.counters.commitsRefused++;
    else run.counters.commitsFailed++;
    await run.log('commit-failed', { error: describe(error), refusal });
    return undefined;
  }

  /** A commit meant to make checkpoint `expected` made `committed`. */
  committedAs(committed: number, expected: number): void {
    if (committed !== expected) throw new ViolationError('commit', `commit produced chk-${committed}, expected chk-${expected}`);
  }

  /** A gc beside the snapshots failed: with a damaged checkpoint present it must refuse, naming it, and delete nothing; otherwise only an injected fault explains it. */
  async gcFailed(error: unknown): Promise<void> {
    const { run } = this;
    const damaged = run.ledger.damaged;
    if (damaged !== undefined && toChunkpointError(error).code === 'GC_UNREADABLE_CHECKPOINT' && describe(error).includes(`chk-${damaged}`)) {
      run.counters.gcRefused++;
      await run.log('gc-refused', { damaged });
      return;
    }
    if (injectedFault(error) === undefined) throw new ViolationError('gc', `gc failed without an injected fault: ${describe(error)}`);
    run.counters.gcFailed++;
    await run.log('gc-failed', { error: describe(error) });
  }

  /** After a commit: the newest `retain` checkpoints the harness committed (and did not drop or damage) are all still listed. */
  retention(listed: readonly number[]): void {
    for (const id of this.run.ledger.mustBeListed()) {
      if (!listed.includes(id)) throw new ViolationError('retention', `chk-${id}, one of the newest ${this.run.options.retain} committed checkpoints, is no longer listed (listed: ${listed.join(', ')})`);
    }
  }

  /** Checkpoint `victim` was just damaged: list marks it damaged and shows every other checkpoint (of `listed`, the listing before) intact. */
  async listShowsDamage(victim: number, listed: readonly number[]): Promise<void> {
    const shown = await this.run.cp.list(this.run.at);
    const marked = shown.find((c) => c.checkpointId === victim);
    if (marked?.damaged === undefined) throw new ViolationError('list', `chk-${victim}, whose metadata was damaged, is not listed as damaged`);
    const others = shown.filter((c) => c.checkpointId !== victim);
    if (others.some((c) => c.damaged !== undefined) || others.length !== listed.length - 1) {
      throw new ViolationError('list', `with chk-${victim} damaged, list does not show every other checkpoint intact: ${shown.map((c) => `${c.checkpoint}${c.damaged === undefined ? '' : ' (damaged)'}`).join(', ')}`);
    }
  }

  /** A damaged checkpoint is never removed by retention; only an explicit drop may remove it. */
  damagedKept(damaged: number, listed: readonly number[]): void {
    if (!listed.includes(damaged)) throw new ViolationError('retention', `chk-${damaged}, whose metadata is damaged, was removed by retention; only an explicit drop may remove it`);
  }

  /**
   * The end, with the tasks stopped: every listed checkpoint was committed
   * by the harness and verifies in full, a few last restores, then — once
   * the killed tasks' leases ran out — a gc with no grace period, after
   * which the store holds exactly what the retained checkpoints reference.
   */
  async final(): Promise<void> {
    const { run } = this;
    const { clean, hasher, counters, figures } = run;
    const ids = await run.listed();
    for (const id of ids) {
      await this.verify(id);
      if (run.ledger.tasksOf(id) === undefined) throw new ViolationError('retention', `chk-${id} is listed but the harness never committed it`);
    }
    for (let i = 0; i < Math.min(3, ids.length * run.options.tasks); i++) await this.restore();
    // Sessions of killed tasks hold their packs until their lease runs out (plus the clock margin): wait for that, then gc without grace.
    await sleep(run.options.leaseMs + leaseMargin(run.options.leaseMs) + 500);
    // Nothing writes any more: interrupted writes need no protection either.
    const gc = await collectGarbage({ hasher }, { store: clean, jobId: run.job }, { graceMs: 0, writeGraceMs: 0 });
    counters.gcRuns++;
    await run.log('final-gc', { ...gc });
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
    for await (const o of clean.list('shared/')) figures.storedBytes += o.size;
    for await (const o of clean.list('taskowned/')) if (o.key.endsWith('.pack')) figures.storedBytes += o.size;
    figures.liveBytes = [...live.values()].reduce((a, b) => a + b, 0);
    await run.log('space', { storedBytes: figures.storedBytes, liveBytes: figures.liveBytes, ratio: figures.liveBytes > 0 ? figures.storedBytes / figures.liveBytes : 0 });
    const missing = [...referenced].filter((k) => !stored.has(k));
    const extra = [...stored].filter((k) => !referenced.has(k));
    if (missing.length > 0) throw new ViolationError('blobs-referenced', `${missing.length} object(s) the retained checkpoints reference are missing: ${missing.slice(0, 3).join(', ')}`);
    if (extra.length > 0 || leftovers.length > 0) {
      throw new ViolationError('gc-complete', `after gc with no grace period the store still holds ${extra.length} unreferenced object(s) and ${leftovers.length} interrupted write(s): ${[...extra, ...leftovers].slice(0, 3).join(', ')}`);
    }
  }
}
