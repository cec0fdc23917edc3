/**
 * A stress task process (run with child_process.fork by the coordinator, so
 * it can be SIGKILLed like a real task): each round it changes its RocksDB
 * state, records a digest of the closed directory, and stores it with
 * snapshotTask into the shared job; the task snapshot goes back to the
 * coordinator, which commits.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { loadHasher } from '../src/format/content-key.js';
import { toChunkpointError } from '../src/errors.js';
import { WorkerPool } from '../src/pool.js';
import { snapshotTask } from '../src/snapshot/index.js';
import { FAULT_REPORT_CHANNEL, injectedFault, withFaults, type FaultReport } from './faulty-store.js';
import { jobRootSpec, openStore } from '../src/store/open.js';
import { stateDigest } from './digest.js';
import { parseToTask, unhandled, type FromTask, type InjectedFaults, type ToTask } from './messages.js';
import { changeState } from './rocks-state.js';

type Init = Extract<ToTask, { type: 'init' }>;

const faults: InjectedFaults = { transient: 0, permanent: 0, torn: 0 };
// Worker threads of this process announce the faults they inject here.
const channel = new BroadcastChannel(FAULT_REPORT_CHANNEL);
channel.onmessage = (event: unknown) => {
  const report = (event as { data: FaultReport }).data;
  faults[report.kind]++;
};
channel.unref();

function send(message: FromTask): void {
  process.send?.(message);
}

let init: Init | undefined;
let pool: WorkerPool | undefined;
// Rounds run one after another; a message arriving mid-round waits its turn.
let queue: Promise<void> = Promise.resolve();

async function round(n: number): Promise<void> {
  if (init === undefined || pool === undefined) throw new Error('stress task: round before init');
  const { task, stateDir, store, job, seed, stateBytes, chunkSize, durable, leaseMs } = init;
  try {
    await changeState(stateDir, stateBytes, seed, n);
    const { digest, bytes } = await stateDigest(stateDir);
    send({ type: 'snapshotting', task, round: n });
    const plain = jobRootSpec(store, job);
    const spec = init.faults === undefined ? plain : withFaults(plain, init.faults);
    const snapshot = await snapshotTask({ pool, hasher: await loadHasher() }, stateDir, { store: openStore(spec), jobId: job, task }, { chunkSize, durable, leaseMs });
    send({ type: 'snapshot', task, round: n, snapshot, digest, bytes, faults: { ...faults } });
  } catch (error) {
    const e = toChunkpointError(error);
    // An injected fault anywhere in the cause chain makes this failure expected.
    const injected = injectedFault(error) !== undefined;
    send({ type: 'failed', task, round: n, code: e.code, message: e.message, injected, faults: { ...faults } });
  }
}

function handle(message: ToTask): void {
  switch (message.type) {
    case 'init':
      init = message;
      pool = new WorkerPool({ threads: message.threads });
      send({ type: 'ready', task: message.task, pid: process.pid });
      break;
    case 'round':
      queue = queue.then(() => round(message.round));
      break;
    case 'stop':
      queue = queue.then(async () => {
        await pool?.close();
        process.disconnect?.();
      });
      break;
    default:
      unhandled(message);
  }
}

process.on('message', (raw: unknown) => {
  try {
    handle(parseToTask(raw));
  } catch (error) {
    process.stderr.write(`chunkpoint stress task: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(3);
  }
});
// The coordinator died or let go: nothing more will come.
process.on('disconnect', () => {
  void pool?.close().finally(() => process.exit(0));
});
