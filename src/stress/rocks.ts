/**
 * Real RocksDB state for the stress harness, through the `rocksdb-native` npm
 * package (RocksDB as prebuilt N-API addons, loadable by every supported
 * Node). That package is a devDependency of chunkpoint, so an installed copy
 * may lack it: it is imported dynamically, and its absence is a clear error
 * saying which package to install.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type RocksDBModule from 'rocksdb-native';
import type { WriteBatch } from 'rocksdb-native';
import { InvalidInputError } from '../errors.js';
import { prng } from '../random.js';

type Db = RocksDBModule;
type BatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

/** The package the harness needs and `npm install` must add next to chunkpoint. */
export const ROCKSDB_PACKAGE = 'rocksdb-native';

export const VALUE_SIZE = 1000;

let factory: Promise<typeof RocksDBModule> | undefined;

export async function loadRocksDb(): Promise<typeof RocksDBModule> {
  factory ??= import(ROCKSDB_PACKAGE).then(
    (m: { default: typeof RocksDBModule }) => m.default,
    (error: unknown) => {
      factory = undefined;
      throw new InvalidInputError(
        'ROCKSDB_MISSING',
        `chunkpoint stress writes real RocksDB state and needs the '${ROCKSDB_PACKAGE}' package, which could not be loaded (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); install it next to chunkpoint: npm install ${ROCKSDB_PACKAGE}`,
        { cause: error },
      );
    },
  );
  return factory;
}

/** One atomic write; the batch frees itself when it settles (a database with a live batch never closes). */
function writeBatch(db: Db, ops: BatchOp[]): Promise<void> {
  const batch: WriteBatch = db.write({ autoDestroy: true });
  try {
    for (const op of ops) {
      if (op.type === 'put') batch.tryPut(op.key, op.value);
      else batch.tryDelete(op.key);
    }
  } catch (error) {
    batch.destroy();
    throw error;
  }
  return batch.flush();
}

function key(id: number): string {
  return `k/${id.toString().padStart(10, '0')}`;
}

/** Records that make about `bytes` of values. */
export function recordsFor(bytes: number): number {
  return Math.max(100, Math.round(bytes / (VALUE_SIZE + 16)));
}

/** Half text that compresses, half seeded bytes that do not: LZ4 gets a realistic ratio. */
function value(random: () => number, id: number, version: number): Buffer {
  const buf = Buffer.alloc(VALUE_SIZE, 0x20);
  buf.write(`{"id":${id},"version":${version},"kind":"stress","note":"the quick brown fox jumps over the lazy dog"}`, 0, 'latin1');
  for (let i = VALUE_SIZE / 2; i < VALUE_SIZE; i += 4) buf.writeUInt32LE((random() * 0x100000000) >>> 0, i);
  return buf;
}

export interface RoundChange {
  puts: number;
  deletes: number;
  compactions: number;
}

/**
 * One round of a running job's writes: puts and deletes on random keys of
 * the key space, sometimes a compaction of a random range (new SSTs replace
 * old ones), then close, so the directory is stable while it is snapshotted.
 * The first round of a new database fills the key space.
 */
export async function changeState(dir: string, stateBytes: number, seed: number, round: number): Promise<RoundChange & { generated: boolean }> {
  const RocksDB = await loadRocksDb();
  // A process killed while generating leaves a database with CURRENT; that one is just changed further.
  const fresh = (await stat(join(dir, 'CURRENT')).catch(() => undefined)) === undefined;
  // RocksDB creates the database directory, not its parents.
  await mkdir(dirname(dir), { recursive: true });
  // Small memtables: a few MiB of state still makes many SSTs and compactions.
  const db = new RocksDB(dir, { writeBufferSize: 256 * 1024 });
  await db.ready();
  const random = prng((seed ^ Math.imul(round + 1, 0x85ebca6b)) >>> 0);
  const records = recordsFor(stateBytes);
  const change: RoundChange & { generated: boolean } = { puts: 0, deletes: 0, compactions: 0, generated: false };
  try {
    const ops: BatchOp[] = [];
    const flush = async (): Promise<void> => {
      if (ops.length > 0) await writeBatch(db, ops.splice(0));
    };
    if (fresh) {
      change.generated = true;
      for (let id = 0; id < records; id++) {
        ops.push({ type: 'put', key: key(id), value: value(random, id, 0) });
        if (ops.length >= 500) await flush();
      }
      change.puts = records;
    } else {
      const puts = Math.floor(records * (0.02 + 0.1 * random()));
      const deletes = Math.floor(records * 0.03 * random());
      for (let i = 0; i < puts + deletes; i++) {
        const id = Math.floor(random() * records);
        ops.push(i < puts ? { type: 'put', key: key(id), value: value(random, id, round) } : { type: 'del', key: key(id) });
        if (ops.length >= 500) await flush();
      }
      change.puts = puts;
      change.deletes = deletes;
    }
    await flush();
    // A new database is left as its memtable flushes made it; compactions come with the changes.
    if (!fresh && random() < 0.5) {
      const from = Math.floor(random() * records);
      const to = Math.min(records, from + Math.floor(records * random()));
      await db.compactRange(key(from), key(to));
      change.compactions++;
    }
  } finally {
    await db.close();
  }
  return change;
}
