/**
 * Real RocksDB state, the one generator for the demo, the tests, the
 * benchmarks and the stress harness: a database written by the RocksDB that
 * the `rocksdb-native` npm package ships (prebuilt N-API addons: the same
 * binary loads in every supported Node), so the files are genuine SSTs,
 * MANIFEST, OPTIONS, CURRENT, LOG and WAL.
 *
 * Values are JSON-like records with a seeded random binary field: the
 * structure compresses, the binary part does not, so uncompressed SSTs come
 * out near the LZ4 ratio of ~2 measured on real SST files.
 *
 * `rocksdb-native` is a devDependency of chunkpoint, so an installed copy
 * running `chunkpoint stress` may lack it: it is imported dynamically, and
 * its absence is a clear error saying which package to install.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type RocksDB from 'rocksdb-native';
import type { WriteBatch } from 'rocksdb-native';
import { InvalidInputError } from '../src/errors.js';
import { prng } from '../src/random.js';

/** The package the generator needs and `npm install` must add next to chunkpoint. */
export const ROCKSDB_PACKAGE = 'rocksdb-native';

let factory: Promise<typeof RocksDB> | undefined;

export async function loadRocksDb(): Promise<typeof RocksDB> {
  factory ??= import(ROCKSDB_PACKAGE).then(
    (m: { default: typeof RocksDB }) => m.default,
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

export interface StateOptions {
  /** Seed for keys and values: the same seed writes the same logical data. */
  seed: number;
  /**
   * Snappy block compression, as most deployments use (default: none, so chunkpoint's LZ4 has work to do).
   * The RocksDB in `rocksdb-native` is built without any block compression: asking for it is an error.
   */
  compression?: boolean;
  /** Memtable size, and so the size of each SST a flush writes (default 32 MiB). Compaction writes RocksDB's default 64 MiB files. */
  writeBufferSize?: number;
}

/** Whether generateState can write Snappy-compressed SST blocks (the RocksDB build it uses has no block compression). */
export const SNAPPY_BLOCKS = false;

const VALUE_SIZE = 1000;
const BATCH = 2000;

type Db = RocksDB;
type BatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

/** One atomic write; the batch frees itself when it settles (a database with a live batch never closes). */
function writeBatch(db: Db, ops: readonly BatchOp[]): Promise<void> {
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

/**
 * A pool of seeded random bytes that values copy slices from: fast, and too
 * large for LZ4's 64 KiB window to find repeats, so the binary part of each
 * record is as incompressible as real encoded payloads are.
 */
function randomPool(random: () => number, size: number): Buffer {
  const pool = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) pool.writeUInt32LE((random() * 0x100000000) >>> 0, i);
  return pool;
}

const STATUSES = ['created', 'paid', 'packed', 'shipped', 'delivered', 'returned'];
const BINARY_LENGTH = 440;

class ValueMaker {
  private readonly pool: Buffer;
  /** `poolBytes` above LZ4's 64 KiB window; filling it is most of the cost of a small state. */
  constructor(
    private readonly random: () => number,
    poolBytes = 8 * 1024 * 1024,
  ) {
    this.pool = randomPool(random, poolBytes);
  }

  /** About half structured text, half binary: LZ4 gets close to the ~2x it gets on real SSTs. */
  value(id: number, version: number): Buffer {
    const r = this.random();
    const status = STATUSES[Math.floor(r * STATUSES.length)] ?? 'created';
    const head =
      `{"id":${id},"version":${version},"customer":"customer-${id % 100000}","region":"eu-west-${id % 3}",` +
      `"status":"${status}","kind":"order","currency":"EUR","total":${(id % 10000) / 100},` +
      `"items":[{"sku":"sku-${id % 977}","qty":${(id % 7) + 1},"price":${(id % 313) / 10}},{"sku":"sku-${id % 541}","qty":1}],` +
      `"shipping":{"method":"standard","carrier":"carrier-${id % 11}","address":"street ${id % 997}, city ${id % 89}"},` +
      `"audit":{"createdBy":"service-orders","source":"checkout","schema":"orders.v3"},"blob":"`;
    const buf = Buffer.allocUnsafe(VALUE_SIZE);
    let at = buf.write(head, 0, 'latin1');
    const binaryLength = Math.min(BINARY_LENGTH, VALUE_SIZE - at - 2);
    const from = Math.floor(this.random() * (this.pool.length - binaryLength));
    this.pool.copy(buf, at, from, from + binaryLength);
    at += binaryLength;
    buf.fill(0x20, at, VALUE_SIZE - 2);
    buf.write('"}', VALUE_SIZE - 2, 'latin1');
    return buf;
  }
}

function key(id: number): string {
  return `order/${id.toString().padStart(12, '0')}`;
}

async function openDb(dir: string, options: StateOptions): Promise<Db> {
  if (options.compression === true && !SNAPPY_BLOCKS) {
    throw new Error("Snappy-compressed SST blocks are not available: the RocksDB in 'rocksdb-native' is built without block compression");
  }
  const Database = await loadRocksDb();
  const db = new Database(dir, { writeBufferSize: options.writeBufferSize ?? 32 * 1024 * 1024 });
  await db.ready();
  return db;
}

async function writeRange(db: Db, makeValue: ValueMaker, first: number, count: number, version: number): Promise<void> {
  // The next batch is built while RocksDB writes the previous one (on its own thread): batches still apply in order.
  let writing: Promise<void> = Promise.resolve();
  for (let start = first; start < first + count; start += BATCH) {
    const ops: BatchOp[] = [];
    for (let id = start; id < Math.min(first + count, start + BATCH); id++) ops.push({ type: 'put', key: key(id), value: makeValue.value(id, version) });
    await writing;
    writing = writeBatch(db, ops);
  }
  await writing;
}

/** Number of records that make about `bytes` of raw values. */
export function recordsFor(bytes: number): number {
  return Math.max(1, Math.round(bytes / (VALUE_SIZE + 20)));
}

/** Writes about `bytes` of records into a new RocksDB database at `dir` and closes it (flushing memtables to SSTs). */
export async function generateState(dir: string, bytes: number, options: StateOptions): Promise<{ records: number }> {
  const db = await openDb(dir, options);
  const records = recordsFor(bytes);
  try {
    await writeRange(db, new ValueMaker(prng(options.seed)), 0, records, 1);
    // Flush everything into SSTs, as a checkpointing runtime would before a snapshot. Keys were
    // written in order, so each memtable flush made an SST of its own key range (about
    // writeBufferSize): compaction moves such files down the levels without rewriting them.
    await db.flush();
  } finally {
    await db.close();
  }
  return { records };
}

export interface MutateOptions extends StateOptions {
  /** Records that exist already (from generateState). */
  records: number;
  /** Fraction of new records to append (fresh SSTs), e.g. 0.1. */
  appendFraction: number;
  /** Fraction of existing records to overwrite, in one key range whose SSTs compaction rewrites. */
  rewriteFraction: number;
}

/**
 * Changes the database as a running job does between checkpoints: appends new
 * records (new SSTs) and overwrites a key range, then compacts that range so
 * RocksDB replaces the SSTs covering it with new ones (deleting the old).
 */
export async function mutateState(dir: string, options: MutateOptions): Promise<{ records: number }> {
  const db = await openDb(dir, options);
  const random = prng(options.seed);
  const maker = new ValueMaker(random);
  const appended = Math.round(options.records * options.appendFraction);
  const rewritten = Math.round(options.records * options.rewriteFraction);
  const rewriteStart = Math.floor(random() * Math.max(1, options.records - rewritten));
  try {
    // Appends first, flushed on their own: their SSTs hold only new keys and
    // are added without touching the existing ones.
    await writeRange(db, maker, options.records, appended, 1);
    await db.flush();
    // Then the overwrites, compacted over their range only: RocksDB rewrites
    // just the SSTs that cover it and deletes the ones they replace.
    await writeRange(db, maker, rewriteStart, rewritten, 2 + options.seed);
    await db.flush();
    await db.compactRange(key(rewriteStart), key(rewriteStart + rewritten));
  } finally {
    await db.close();
  }
  return { records: options.records + appended };
}

export interface RoundChange {
  puts: number;
  deletes: number;
  compactions: number;
  /** The round found no database and wrote the whole key space. */
  generated: boolean;
}

/** Fewest records a stress task's key space holds, however small its state: enough keys for puts, deletes and compactions to mix. */
const MIN_ROUND_RECORDS = 100;

/**
 * One round of a running job's writes (the stress harness's tasks): puts and
 * deletes on random keys of the key space, sometimes a compaction of a
 * random range (new SSTs replace old ones), then close, so the directory is
 * stable while it is snapshotted. The first round of a new database fills
 * the key space. Small memtables make a few MiB of state many SSTs and
 * compactions.
 */
export async function changeState(dir: string, stateBytes: number, seed: number, round: number): Promise<RoundChange> {
  // A process killed while generating leaves a database with CURRENT; that one is just changed further.
  const fresh = (await stat(join(dir, 'CURRENT')).catch(() => undefined)) === undefined;
  // RocksDB creates the database directory, not its parents.
  await mkdir(dirname(dir), { recursive: true });
  const db = await openDb(dir, { seed, writeBufferSize: 256 * 1024 });
  const random = prng((seed ^ Math.imul(round + 1, 0x85ebca6b)) >>> 0);
  // A stress round writes a few hundred KiB: a smaller pool keeps its values as incompressible, at a fraction of the cost.
  const maker = new ValueMaker(random, 1024 * 1024);
  const records = Math.max(MIN_ROUND_RECORDS, recordsFor(stateBytes));
  const change: RoundChange = { puts: 0, deletes: 0, compactions: 0, generated: false };
  try {
    if (fresh) {
      // A new database is left as its memtable flushes made it; compactions come with the changes.
      await writeRange(db, maker, 0, records, 0);
      change.generated = true;
      change.puts = records;
      return change;
    }
    const puts = Math.floor(records * (0.02 + 0.1 * random()));
    const deletes = Math.floor(records * 0.03 * random());
    const ops: BatchOp[] = [];
    for (let i = 0; i < puts + deletes; i++) {
      const id = Math.floor(random() * records);
      ops.push(i < puts ? { type: 'put', key: key(id), value: maker.value(id, round) } : { type: 'del', key: key(id) });
      if (ops.length >= BATCH) await writeBatch(db, ops.splice(0));
    }
    if (ops.length > 0) await writeBatch(db, ops);
    change.puts = puts;
    change.deletes = deletes;
    if (random() < 0.5) {
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
