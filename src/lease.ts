/**
 * Writer sessions and their leases (kopia's session markers, SlateDB's
 * writer epochs, done with plain objects).
 *
 * A snapshot task writes `sessions/<id>` before its first pack and renews it
 * while it runs. Every pack and manifest it writes carries the session id in
 * its name, so gc can tell: an object of a live session is never deleted,
 * however old. A session is live until its `expiresAt`.
 *
 * Safety rests on one rule, kept on both sides with a margin for clocks that
 * disagree: the holder trusts its lease only until `expiresAt - margin` (a
 * renewal that has not *returned* by then does not count, and the holder
 * stops: LEASE_LOST), while gc treats a session as dead only after
 * `expiresAt + margin`. Machines sharing a job root must keep their clocks
 * within the margin of each other (NTP does far better). A commit checks
 * the lease of every task snapshot it commits, so a task that outlived its
 * lease is refused instead of committing packs gc may have taken.
 */
import { hostname } from 'node:os';
import { ConflictError, InvalidInputError, toChunkpointError, type ChunkpointError } from './errors.js';
import type { Hasher } from './format/content-key.js';
import { FORMAT_VERSION } from './format/envelope.js';
import { newId } from './format/ids.js';
import { sessionKey } from './format/names.js';
import { decodeSession, encodeSession, type SessionRecord } from './format/session.js';
import { isNotFound } from './store/not-found.js';
import type { Store } from './store/store.js';

/** Default lease: long enough to ride out a store outage of minutes, short enough that a crashed task's packs are collectable soon. */
export const DEFAULT_LEASE_MS = 10 * 60_000;
export const MIN_LEASE_MS = 1000;

/** The clock margin on both sides of a lease's expiry: a quarter of it, at most a minute. */
export function leaseMargin(leaseMs: number): number {
  return Math.min(60_000, Math.floor(leaseMs / 4));
}

export function checkLeaseMs(leaseMs: number): number {
  if (!Number.isSafeInteger(leaseMs) || leaseMs < MIN_LEASE_MS) {
    throw new InvalidInputError('INVALID_LEASE', `lease ${leaseMs} ms is not a duration of at least ${MIN_LEASE_MS} ms; use e.g. 10m`);
  }
  return leaseMs;
}

export interface LeaseParams {
  jobId: string;
  task: string;
  base: number | null;
  checkpointId: number;
  leaseMs: number;
  durable: boolean;
}

export class Lease {
  private timer: NodeJS.Timeout | undefined;
  private lost: ChunkpointError | undefined;
  private renewing: Promise<void> | undefined;
  private readonly margin: number;

  private constructor(
    private readonly store: Store,
    private readonly hasher: Hasher,
    private readonly params: LeaseParams,
    readonly session: string,
    readonly startedAt: number,
    private expiresAt: number,
    private readonly onLost: (error: ChunkpointError) => void,
  ) {
    this.margin = leaseMargin(params.leaseMs);
  }

  /** Writes the session object and starts renewing it; `onLost` is called once if the lease cannot be kept. */
  static async acquire(store: Store, hasher: Hasher, params: LeaseParams, onLost: (error: ChunkpointError) => void): Promise<Lease> {
    const startedAt = Date.now();
    const session = newId(startedAt);
    const lease = new Lease(store, hasher, params, session, startedAt, startedAt + params.leaseMs, onLost);
    await lease.write(lease.expiresAt);
    // The write itself may have been slow: the lease counts only if it returned in time.
    lease.check();
    lease.schedule();
    return lease;
  }

  get expires(): number {
    return this.expiresAt;
  }

  /** Throws LEASE_LOST unless the lease can still be trusted for `needMs` more. */
  check(needMs = 0): void {
    if (this.lost !== undefined) throw this.lost;
    if (Date.now() + needMs >= this.expiresAt - this.margin) {
      this.lose(`its lease ran out at ${new Date(this.expiresAt).toISOString()} (a renewal did not come back in time)`);
      throw this.lost as unknown as ChunkpointError;
    }
  }

  /**
   * Makes sure the lease holds for at least `needMs` more: renews it only
   * when it would not (a commit right after a renewal needs no other).
   */
  async ensure(needMs: number): Promise<void> {
    this.check();
    if (Date.now() + needMs < this.expiresAt - this.margin) return;
    await this.renew();
  }

  /** Extends the lease now: before a commit, and when a task hands its snapshot over. */
  async renew(): Promise<void> {
    await this.renewing;
    this.check();
    const sent = Date.now();
    const previous = this.expiresAt;
    await this.write(sent + this.params.leaseMs);
    // Counts only if it returned before the old lease ran out (minus the margin): otherwise gc may already have judged it dead.
    if (Date.now() >= previous - this.margin) {
      this.lose('a renewal returned after the lease had run out');
      throw this.lost as unknown as ChunkpointError;
    }
    this.expiresAt = sent + this.params.leaseMs;
  }

  /** Stops renewing; the session object stays (a coordinator commits and ends it). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Stops renewing and deletes the session object (best effort: gc removes it once it expires). */
  async end(): Promise<void> {
    this.stop();
    await this.renewing?.catch(() => undefined);
    await endSession(this.store, this.session);
  }

  private schedule(): void {
    const every = Math.max(100, Math.floor(this.params.leaseMs / 5));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.renewing = this.renew()
        .catch((error: unknown) => {
          if (this.lost !== undefined) return;
          // A failed renewal is retried at the next tick; only running out of time loses the lease.
          if (Date.now() + every >= this.expiresAt - this.margin) this.lose(`renewing it failed until it ran out (${toChunkpointError(error).message})`);
        })
        .finally(() => {
          this.renewing = undefined;
          if (this.lost === undefined) this.schedule();
        });
    }, every);
    // A lease must never keep a process alive on its own.
    this.timer.unref();
  }

  private lose(why: string): void {
    if (this.lost !== undefined) return;
    this.stop();
    this.lost = new ConflictError(
      'LEASE_LOST',
      `snapshot session ${this.session} of task '${this.params.task}' lost its lease in ${this.store.location}: ${why}. gc may now collect what it wrote, so nothing of it will be committed; check the store's availability and retry the snapshot`,
      { details: { session: this.session, task: this.params.task } },
    );
    this.onLost(this.lost);
  }

  private async write(expiresAt: number): Promise<void> {
    const record: SessionRecord = {
      formatVersion: FORMAT_VERSION,
      session: this.session,
      jobId: this.params.jobId,
      task: this.params.task,
      base: this.params.base,
      checkpointId: this.params.checkpointId,
      startedAt: new Date(this.startedAt).toISOString(),
      expiresAt: new Date(expiresAt).toISOString(),
      leaseMs: this.params.leaseMs,
      holder: `${hostname()} pid ${process.pid}`,
    };
    await this.store.put(sessionKey(this.session), [encodeSession(record, this.hasher)], { durable: this.params.durable });
  }
}

export async function endSession(store: Store, session: string): Promise<void> {
  await store.delete([sessionKey(session)]).catch(() => undefined);
}

/** A session's record, or undefined when it is gone (ended, or collected after it expired). */
export async function readSession(store: Store, hasher: Hasher, session: string): Promise<SessionRecord | undefined> {
  try {
    const data = await store.get(sessionKey(session));
    return decodeSession(data, hasher, `${store.location}/${sessionKey(session)}`, session);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** gc's side of the rule: a session is dead only once its lease ran out by more than the margin. */
export function sessionLive(record: SessionRecord | undefined, now: number): boolean {
  return record !== undefined && now <= Date.parse(record.expiresAt) + leaseMargin(record.leaseMs);
}

/** The commit's side: a task snapshot's session must be trusted for the margin still. */
export function sessionCommittable(record: SessionRecord, now: number): boolean {
  return now < Date.parse(record.expiresAt) - leaseMargin(record.leaseMs);
}
