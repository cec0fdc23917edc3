// Embedding chunkpoint in a runtime: snapshot a state directory, snapshot it
// again incrementally, list, restore (twice: the second from the local cache)
// and collect garbage, with every event feeding the runtime's own log.
// Run: node dist/examples/embedding.js <stateDir> <workDir>
import { join } from 'node:path';
import { Chunkpoint, ChunkpointError, type ChunkpointEvent } from 'chunkpoint';

const [stateDir = 'db', workDir = '.chunkpoint-example'] = process.argv.slice(2);
const job = { store: join(workDir, 'checkpoints'), job: 'orders' };
const cache = { dir: join(workDir, 'cache'), maxBytes: 20 * 2 ** 30, ttlMs: 7 * 86_400_000 };

function log(e: ChunkpointEvent): void {
  if (e.type === 'snapshot.progress' || e.type === 'restore.progress') {
    // Throttled by chunkpoint (progressIntervalMs, default 100 ms), with a final one at 100%.
    if (e.bytesDone === e.bytesTotal) console.log(`${e.type}: ${e.filesDone}/${e.filesTotal} files, ${e.bytesDone} bytes`);
  } else if (e.type === 'snapshot.committed') {
    console.log(`${e.result.checkpoint} committed: read ${e.result.bytesRead}, wrote ${e.result.bytesWritten}, reused ${e.result.filesReused} files`);
  } else if (e.type === 'restore.completed') {
    console.log(`${e.result.checkpoint} restored: ${e.result.bytesFromRemote} bytes from the store, ${e.result.bytesFromCache} from the cache`);
  } else if (e.type.endsWith('.failed') && 'error' in e) {
    console.error(`${e.type}: ${e.error.code}: ${e.error.message}`);
  }
}

// One instance per process: it owns the worker pool; reuse it for every checkpoint.
const cp = new Chunkpoint({ threads: 2, onEvent: log });
try {
  const first = await cp.snapshot(stateDir, job);
  // Unchanged SSTs are reused by handle, unread: only what changed is read and stored.
  const second = await cp.snapshot(stateDir, job, { retain: 3 });
  console.log(`second snapshot read ${second.bytesRead} of ${second.bytes} bytes`);

  for (const c of await cp.list(job)) console.log(`${c.checkpoint} ${c.createdAt} ${c.bytes} bytes, ${c.storedBytes} stored`);

  // By store + job (+ checkpoint number or 'latest'), filling the local cache ...
  await cp.restore({ ...job, checkpoint: 'latest' }, join(workDir, 'restored'), { cache });
  // ... or by the path of a chk-<n> directory, wherever the job root now is; cached chunks are verified and used first.
  const again = await cp.restore({ path: join(job.store, job.job, first.checkpoint) }, join(workDir, 'restored-again'), { cache });
  console.log(`from cache: ${again.bytesFromCache} bytes, from the store: ${again.bytesFromRemote} bytes`);

  // Remove what no checkpoint references (crashed snapshots, temp files).
  const gc = await cp.gc(job, { graceMs: 60 * 60_000 });
  console.log(`gc removed ${gc.packsRemoved} packs`);
} catch (error) {
  if (!(error instanceof ChunkpointError)) throw error;
  console.error(`${error.kind} ${error.code}: ${error.message}`);
  process.exitCode = 1;
} finally {
  await cp.close(); // stops the worker threads; the process can exit
}
