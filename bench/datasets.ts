/**
 * Benchmark datasets: real RocksDB states made by sim/rocks-state.ts,
 * generated once per (size, seed, block compression) and kept in the work
 * directory, since generating one takes minutes per GiB. Each run works on a
 * copy whose SSTs are hard links (as a RocksDB checkpoint makes them), so
 * changing the copy never changes the cached original.
 */
import { copyFile, link, mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes, formatDuration } from '../src/units.js';
import { generateState } from '../sim/rocks-state.js';

export type BlockCompression = 'none' | 'snappy';

export interface DatasetSpec {
  bytes: number;
  seed: number;
  compression: BlockCompression;
}

export interface Dataset extends DatasetSpec {
  /** The cached RocksDB directory; never modified by a run. */
  stateDir: string;
  /** Records generateState wrote (mutateState needs it). */
  records: number;
  /** Bytes of files in the state directory. */
  diskBytes: number;
  note?: string;
}

interface DatasetFile {
  format: 1;
  bytes: number;
  seed: number;
  compression: BlockCompression;
  records: number;
  note?: string;
}

export function datasetName(spec: DatasetSpec): string {
  return `rocksdb-${spec.bytes}-seed${spec.seed}-${spec.compression}`;
}

/** The cached dataset for `spec`, generated first if the work directory has none. */
export async function ensureDataset(work: string, spec: DatasetSpec, log: (line: string) => void): Promise<Dataset> {
  const root = join(work, 'datasets');
  const name = datasetName(spec);
  const dir = join(root, name);
  let info = await readDatasetFile(join(dir, 'dataset.json'));
  if (info === undefined || info.bytes !== spec.bytes || info.seed !== spec.seed || info.compression !== spec.compression) {
    // Generated beside its final name and renamed when complete: an interrupted run leaves no dataset that looks usable.
    const partial = join(root, `.partial-${name}`);
    await rm(partial, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    log(`generating ${formatBytes(spec.bytes)} of RocksDB state (${spec.compression === 'snappy' ? 'Snappy' : 'uncompressed'} blocks, seed ${spec.seed}) in ${dir}; this is slow (minutes per GiB) and done once`);
    const started = performance.now();
    const { records } = await generateState(join(partial, 'state'), spec.bytes, { seed: spec.seed, compression: spec.compression === 'snappy' });
    info = { format: 1, ...spec, records };
    await writeFile(join(partial, 'dataset.json'), `${JSON.stringify(info, null, 2)}\n`);
    await rename(partial, dir);
    log(`generated in ${formatDuration(performance.now() - started)}`);
  }
  const stateDir = join(dir, 'state');
  let diskBytes = 0;
  for (const entry of await readdir(stateDir)) diskBytes += (await stat(join(stateDir, entry))).size;
  return { ...spec, stateDir, records: info.records, diskBytes, ...(info.note === undefined ? {} : { note: info.note }) };
}

async function readDatasetFile(path: string): Promise<DatasetFile | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<DatasetFile>;
    if (parsed.format !== 1 || typeof parsed.bytes !== 'number' || typeof parsed.seed !== 'number' || typeof parsed.records !== 'number') return undefined;
    if (parsed.compression !== 'none' && parsed.compression !== 'snappy') return undefined;
    return parsed as DatasetFile;
  } catch {
    return undefined;
  }
}

/**
 * A working copy of a RocksDB directory: SSTs hard-linked (RocksDB never
 * writes one in place, it only creates and deletes them), everything else
 * copied, since MANIFEST, CURRENT and the logs are rewritten on open.
 * Modification times are kept, so the copy is the state an application would
 * hand over after a RocksDB checkpoint.
 */
export async function workingCopy(from: string, to: string): Promise<void> {
  await rm(to, { recursive: true, force: true });
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.name.endsWith('.sst')) {
      try {
        await link(source, target);
        continue;
      } catch {
        // Another filesystem: copying costs time, not correctness.
      }
    }
    await copyFile(source, target);
    const st = await stat(source);
    await utimes(target, st.atime, st.mtime);
  }
}

export interface StateFileInfo {
  name: string;
  size: number;
  mtimeMs: number;
}

export async function listState(dir: string): Promise<StateFileInfo[]> {
  const out: StateFileInfo[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isFile()) continue;
    const st = await stat(join(dir, entry.name));
    out.push({ name: entry.name, size: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}
