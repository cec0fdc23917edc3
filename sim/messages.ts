/**
 * Everything the stress coordinator and its task processes say to each
 * other, in one place. Messages cross a process boundary (child_process IPC,
 * structured as JSON), so both sides parse what they receive and a message
 * of an unknown kind stops the run loudly instead of being ignored.
 */
import type { FaultSpec } from './faulty-store.js';
import type { TaskSnapshot } from '../src/format/metadata.js';

/** sha256 of every file of a state directory, by relative path. */
export type StateDigest = Record<string, string>;

export interface InjectedFaults {
  transient: number;
  permanent: number;
  torn: number;
}

export type ToTask =
  | {
      type: 'init';
      task: string;
      stateDir: string;
      store: string;
      job: string;
      /** Seed of this task's mutations (derived from the run's seed and the task). */
      seed: number;
      stateBytes: number;
      chunkSize: number;
      threads: number;
      durable: boolean;
      /** The writer sessions' lease. */
      leaseMs: number;
      faults?: FaultSpec;
    }
  | { type: 'round'; round: number }
  | { type: 'stop' };

export type FromTask =
  | { type: 'ready'; task: string; pid: number }
  /** Sent when a round's mutation is done and snapshotTask starts: kills aim at either side of it. */
  | { type: 'snapshotting'; task: string; round: number }
  | { type: 'snapshot'; task: string; round: number; snapshot: TaskSnapshot; digest: StateDigest; bytes: number; faults: InjectedFaults }
  | { type: 'failed'; task: string; round: number; code: string; message: string; injected: boolean; faults: InjectedFaults };

const TO_TASK = new Set<ToTask['type']>(['init', 'round', 'stop']);
const FROM_TASK = new Set<FromTask['type']>(['ready', 'snapshotting', 'snapshot', 'failed']);

export class ProtocolError extends Error {}

function typeOf(message: unknown): string {
  if (typeof message !== 'object' || message === null || typeof (message as { type?: unknown }).type !== 'string') {
    throw new ProtocolError(`stress protocol: not a message: ${JSON.stringify(message)?.slice(0, 200) ?? String(message)}`);
  }
  return (message as { type: string }).type;
}

export function parseToTask(message: unknown): ToTask {
  const type = typeOf(message);
  if (!TO_TASK.has(type as ToTask['type'])) throw new ProtocolError(`stress protocol: a task process got an unknown message '${type}'`);
  return message as ToTask;
}

export function parseFromTask(message: unknown): FromTask {
  const type = typeOf(message);
  if (!FROM_TASK.has(type as FromTask['type'])) throw new ProtocolError(`stress protocol: the coordinator got an unknown message '${type}'`);
  return message as FromTask;
}

/** For the `default:` of a switch over a message union: unreachable unless the union grew without its handler. */
export function unhandled(message: never): never {
  throw new ProtocolError(`stress protocol: no handler for message ${JSON.stringify(message)}`);
}
