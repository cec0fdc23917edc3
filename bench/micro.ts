/**
 * `npm run bench:micro`: tinybench over the per-chunk hot paths, one thread,
 * per chunk size, on real SST bytes: the content key, LZ4 block compress and
 * decompress, and the blob encode (probe + LZ4 + header, as the writer does)
 * and decode (header checks + LZ4 + key verification, as restore does).
 *
 *   npm run bench:micro [-- --dir .bench] [--time 400]
 *
 * SST bytes come from a dataset `npm run bench` left in <dir>/datasets, or
 * from a small state generated into <dir>/micro-state.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseScriptArgs } from '../scripts/usage.js';
import { lz4 } from '../src/native.js';
import { Bench } from 'tinybench';
import { BLOB_HEADER_SIZE, Codec, decodeBlobHeader } from '../src/format/blob.js';
import { loadHasher, loadWasmHasher } from '../src/format/content-key.js';
import { formatBytes } from '../src/units.js';
import { Scratch } from '../workers/scratch.js';
import { encodeBlob } from '../workers/write-pack.js';
import { generateState } from '../sim/rocks-state.js';

const CHUNK_SIZES = [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024];
const LARGEST = 4 * 1024 * 1024;

const USAGE = `
npm run bench:micro [-- options]: tinybench over the per-chunk hot paths, one thread, per chunk size

  --dir <dir>    where cached datasets are found (default .bench)
  --time <ms>    time per task (default 400)
`;
const { values } = parseScriptArgs(USAGE, { options: { dir: { type: 'string', default: '.bench' }, time: { type: 'string', default: '400' } }, strict: true });
const work = resolve(values.dir);

/** The largest SST among the cached datasets of one block compression, if any. */
async function findSst(compression: 'none' | 'snappy'): Promise<string | undefined> {
  const datasets = join(work, 'datasets');
  const names = (await readdir(datasets).catch(() => [] as string[])).filter((n) => n.startsWith('rocksdb-') && n.endsWith(`-${compression}`));
  let best: { path: string; size: number } | undefined;
  for (const name of names) {
    const dir = join(datasets, name, 'state');
    for (const file of (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.sst'))) {
      const { size } = await stat(join(dir, file));
      if (size >= LARGEST && (best === undefined || size > best.size)) best = { path: join(dir, file), size };
    }
  }
  return best?.path;
}

async function sstBytes(compression: 'none' | 'snappy'): Promise<{ source: string; bytes: Buffer } | undefined> {
  let path = await findSst(compression);
  if (path === undefined && compression === 'none') {
    const dir = join(work, 'micro-state');
    const existing = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.sst'));
    if (existing.length === 0) {
      process.stdout.write(`generating a small RocksDB state in ${dir} for real SST bytes\n`);
      await generateState(dir, 12 * 1024 * 1024, { seed: 7 });
    }
    const ssts = await Promise.all((await readdir(dir)).filter((f) => f.endsWith('.sst')).map(async (f) => ({ path: join(dir, f), size: (await stat(join(dir, f))).size })));
    path = ssts.sort((a, b) => b.size - a.size).find((s) => s.size >= LARGEST)?.path;
  }
  if (path === undefined) return undefined;
  const fh = await open(path);
  try {
    const bytes = Buffer.allocUnsafe(LARGEST);
    await fh.read(bytes, 0, LARGEST, 0);
    return { source: path, bytes };
  } finally {
    await fh.close();
  }
}

const hasher = await loadHasher();
/** The portable implementation, measured beside the one in use when that is the native one. */
const portable = hasher.kind === 'wasm' ? undefined : await loadWasmHasher();
const time = Number(values.time);

async function measureSet(label: string, sample: Buffer): Promise<void> {
  const rows: string[][] = [['op', ...CHUNK_SIZES.map((s) => `${formatBytes(s)} MB/s`)]];
  const results = new Map<string, string[]>();
  let ratioNote = '';
  const scratch = new Scratch();
  for (const size of CHUNK_SIZES) {
    const raw = Buffer.from(sample.subarray(0, size));
    const key = hasher.contentKey(raw);
    const compressed = Buffer.allocUnsafe(lz4.encodeBound(size));
    const compressedLength = lz4.encodeBlock(raw, compressed);
    const block = compressed.subarray(0, compressedLength);
    const out = Buffer.allocUnsafe(size);
    const blob = Buffer.concat(encodeBlob(key, raw, scratch));
    ratioNote += ` ${formatBytes(size)}: lz4 ${(size / compressedLength).toFixed(2)}, blob ${blob.readUInt8(5) === Codec.Lz4 ? 'lz4' : 'raw'}`;

    const bench = new Bench({ time, warmupTime: 50, iterations: 8 });
    bench
      .add(`hash (contentKey, 2x XXH64, ${hasher.kind})`, () => {
        hasher.contentKey(raw);
      })
      .add('lz4 compress (block)', () => {
        lz4.encodeBlock(raw, compressed);
      })
      .add('hash (contentKey, 2x XXH64, wasm)', () => {
        (portable ?? hasher).contentKey(raw);
      })
      .add('lz4 decompress (block)', () => {
        lz4.decodeBlock(block, out);
      })
      .add('blob encode (probe+lz4+header)', () => {
        encodeBlob(key, raw, scratch);
      })
      .add('blob decode (header+lz4+verify)', () => {
        const header = decodeBlobHeader(blob, hasher, 'bench');
        const payload = blob.subarray(BLOB_HEADER_SIZE);
        const data = header.codec === Codec.Lz4 ? out.subarray(0, lz4.decodeBlock(payload, out)) : payload;
        if (hasher.contentKey(data) !== header.key) throw new Error('blob decode produced other bytes');
      });
    await bench.run();
    for (const task of bench.tasks) {
      const r = task.result;
      // The median, not the mean: on a shared VM a few preempted iterations would dominate a mean.
      const text = r.state === 'completed' ? (size / 1e6 / (r.latency.p50 / 1000)).toFixed(0) : r.state;
      results.set(task.name, [...(results.get(task.name) ?? []), text]);
    }
  }
  for (const [name, cells] of results) rows.push([name, ...cells]);
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  process.stdout.write(`\n${label}\n`);
  for (const row of rows) process.stdout.write(`${row.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')}\n`);
  process.stdout.write(`ratios:${ratioNote}\n`);
}

const plain = await sstBytes('none');
if (plain === undefined) throw new Error('no SST of at least 4 MiB found or generated');
process.stdout.write(`chunkpoint micro-benchmarks: one thread, tinybench (${time} ms per task and size), MB/s = 10^6 bytes of raw chunk / median time per call\n`);
await measureSet(`uncompressed-block SST bytes (${plain.source})`, plain.bytes);
const snappy = await sstBytes('snappy');
if (snappy !== undefined) await measureSet(`Snappy-block SST bytes (${snappy.source})`, snappy.bytes);
else process.stdout.write('\n(no Snappy dataset in the work dir: run `npm run bench` first to include Snappy SST bytes)\n');
