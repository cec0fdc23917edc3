/**
 * `npm run bench:scale`: does metadata scale with tasks, not chunks?
 *
 * Builds, on the directory store, what 1,000 task processes would hand a
 * coordinator: per task a live session, a real manifest of 2,000 chunk
 * handles, and its packs (sparse files of the right size whose trailer, the
 * index a commit checks every handle against, is real). Then, each in a process of its own so
 * its peak RSS is its own:
 *   commit   the untrusted coordinator path: every session checked, every
 *            manifest read and validated against its task snapshot, every
 *            pack's presence and size checked, every handle checked against
 *            its pack's trailer, `_metadata` written;
 *   plan     restore planning of one task: locate, read and validate
 *            `_metadata`, read that task's manifest, plan the coalesced reads.
 * Targets (issue #15): commit <= 5 s with peak RSS <= 200 MB; planning <= 0.5 s.
 *
 *   npm run bench:scale [-- --tasks 1000] [--chunks 2000] [--dir .bench]
 */
import { execFile } from 'node:child_process';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parseScriptArgs } from '../scripts/usage.js';
import { loadCheckpointBytes, loadManifest, locateCheckpoint } from '../src/checkpoint.js';
import { loadHasher } from '../src/format/content-key.js';
import { FORMAT_VERSION } from '../src/format/envelope.js';
import { newId } from '../src/format/ids.js';
import { KEY_ALGORITHM, encodeManifest, manifestChecksum, type FileEntry, type PackRef, type TaskManifest } from '../src/format/manifest.js';
import { TASK_SNAPSHOT_FORMAT, type TaskSnapshot } from '../src/format/metadata.js';
import { manifestKey, packKey, sessionKey } from '../src/format/names.js';
import { BLOB_HEADER_SIZE } from '../src/format/blob.js';
import { PackIndex } from '../src/format/pack.js';
import { encodeSession } from '../src/format/session.js';
import { blobsOf, planReads } from '../src/restore/plan.js';
import { selectTask } from '../src/restore/index.js';
import { commitTasks } from '../src/snapshot/index.js';
import { openStore } from '../src/store/open.js';
import { formatBytes, formatDuration } from '../src/units.js';

const run = promisify(execFile);
const SELF = fileURLToPath(import.meta.url);
const CHUNK = 1024 * 1024;
const PACK = 32 * 1024 * 1024;

const USAGE = `
npm run bench:scale [-- options]: a commit of many synthetic task snapshots, and one task's restore planning

  --tasks <n>    task snapshots in the commit (default 1000)
  --chunks <n>   chunks per task (default 2000, 1 MiB each: 2 GB of state per task)
  --dir <dir>    work directory (default .bench); the job root goes to <dir>/scale and is removed after
  --json <file>  also write the results as JSON
`;

interface PhaseReport {
  phase: string;
  ms: number;
  peakRssBytes: number;
  detail: Record<string, number>;
}

/** Synthetic state: every chunk a distinct key, stored at ~55% (an LZ4 ratio), in 32 MiB packs. */
async function setup(root: string, tasks: number, chunks: number): Promise<string[]> {
  const hasher = await loadHasher();
  const store = openStore({ type: 'fs', root });
  const files: string[] = [];
  await mkdir(join(root, 'shared'), { recursive: true });
  for (let t = 0; t < tasks; t++) {
    const task = `task-${String(t).padStart(4, '0')}`;
    const session = newId();
    const packs: PackRef[] = [];
    const indexes: PackIndex[] = [];
    const fileEntries: FileEntry[] = [];
    let pack: PackRef | undefined;
    let index: PackIndex | undefined;
    const stored = Math.floor(CHUNK * 0.55) + BLOB_HEADER_SIZE;
    const perFile = 64;
    for (let f = 0; f * perFile < chunks; f++) {
      const count = Math.min(perFile, chunks - f * perFile);
      const entry: FileEntry = { path: `${String(f).padStart(6, '0')}.sst`, size: count * CHUNK, mode: 0o644, mtimeMs: 1_795_245_507_000 + f, immutable: true, chunks: [] };
      for (let c = 0; c < count; c++) {
        if (pack === undefined || index === undefined || index.size + stored > PACK) {
          pack = { key: packKey('shared', task, newId(), session), size: 0 };
          index = new PackIndex();
          packs.push(pack);
          indexes.push(index);
        }
        const key = hasher.contentKey(Buffer.from(`${task}/${f}/${c}`));
        const offset = index.add(key, CHUNK, stored);
        entry.chunks.push({ key, rawLength: CHUNK, handle: { area: 'shared', name: pack.key.slice('shared/'.length), offset, length: stored } });
      }
      fileEntries.push(entry);
    }
    const trailers = indexes.map((ix) => ix.trailer(hasher));
    packs.forEach((p, i) => (p.size = (indexes[i]?.size ?? 0) + (trailers[i]?.byteLength ?? 0)));
    const manifest: TaskManifest = {
      formatVersion: FORMAT_VERSION,
      jobId: 'scale',
      task,
      session,
      base: null,
      createdAt: new Date().toISOString(),
      keyAlgorithm: KEY_ALGORITHM,
      chunkSize: CHUNK,
      directories: [],
      packs,
      files: fileEntries,
    };
    const encoded = encodeManifest(manifest, hasher);
    await store.put(manifestKey(task, session), [encoded]);
    const now = Date.now();
    await store.put(sessionKey(session), [
      encodeSession({ formatVersion: FORMAT_VERSION, session, jobId: 'scale', task, base: null, checkpointId: 1, startedAt: new Date(now).toISOString(), expiresAt: new Date(now + 3_600_000).toISOString(), leaseMs: 3_600_000, holder: 'bench:scale' }, hasher),
    ]);
    for (const [i, p] of packs.entries()) {
      // Sparse but for the trailer: a commit checks the size and the trailer's index, never the blobs.
      const fh = await open(join(root, ...p.key.split('/')), 'wx', 0o600);
      const trailer = trailers[i] ?? Buffer.alloc(0);
      await fh.write(trailer, 0, trailer.byteLength, p.size - trailer.byteLength);
      await fh.close();
    }
    const snapshot: TaskSnapshot = {
      format: TASK_SNAPSHOT_FORMAT,
      jobId: 'scale',
      task,
      base: null,
      checkpointId: 1,
      session,
      startedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 3_600_000).toISOString(),
      keyAlgorithm: KEY_ALGORITHM,
      manifest: { key: manifestKey(task, session), size: encoded.byteLength, checksum: manifestChecksum(encoded) },
      packs,
      figures: { files: fileEntries.length, bytes: chunks * CHUNK, bytesRead: chunks * CHUNK, bytesWritten: packs.reduce((n, p) => n + p.size, 0), filesReused: 0, bytesReused: 0, chunksNew: chunks, chunksDeduped: 0, chunks, bytesCached: 0, rawBytesNew: chunks * CHUNK, packBytes: packs.reduce((n, p) => n + p.size, 0), packsWritten: packs.length, packsRewritten: 0, bytesRewritten: 0, chunksRewritten: 0, durationMs: 1000 },
    };
    const file = join(root, '..', 'task-snapshots', `${task}.json`);
    await mkdir(join(root, '..', 'task-snapshots'), { recursive: true });
    await writeFile(file, JSON.stringify(snapshot));
    files.push(file);
  }
  return files;
}

async function phaseCommit(root: string, snapshotsDir: string, tasks: number): Promise<PhaseReport> {
  const { readFile } = await import('node:fs/promises');
  const parts: unknown[] = [];
  for (let t = 0; t < tasks; t++) parts.push(JSON.parse(await readFile(join(snapshotsDir, `task-${String(t).padStart(4, '0')}.json`), 'utf8')));
  const hasher = await loadHasher();
  const store = openStore({ type: 'fs', root });
  const started = performance.now();
  const result = await commitTasks({ hasher }, { store, jobId: 'scale' }, parts, { retain: 3 });
  const ms = performance.now() - started;
  return { phase: 'commit', ms, peakRssBytes: process.resourceUsage().maxRSS * 1024, detail: { tasks: result.tasks, chunks: result.chunksNew, metadataBytes: result.bytesWritten - parts.reduce<number>((n, p) => n + (p as TaskSnapshot).figures.bytesWritten, 0) } };
}

async function phasePlan(root: string): Promise<PhaseReport> {
  const hasher = await loadHasher();
  const started = performance.now();
  const { store, checkpointId } = await locateCheckpoint({ path: join(root, 'chk-1') });
  const { metadata } = await loadCheckpointBytes(store, checkpointId, hasher);
  const entry = selectTask(metadata, `task-${String(Math.floor(metadata.tasks.length / 2)).padStart(4, '0')}`);
  const { manifest } = await loadManifest(store, entry, hasher);
  const plan = planReads(blobsOf(manifest.files, '/nonexistent-staging'), () => false);
  const ms = performance.now() - started;
  return { phase: 'plan one task', ms, peakRssBytes: process.resourceUsage().maxRSS * 1024, detail: { tasksInCheckpoint: metadata.tasks.length, chunks: plan.chunks, spans: plan.spans.length } };
}

const { values } = parseScriptArgs(USAGE, {
  options: { tasks: { type: 'string', default: '1000' }, chunks: { type: 'string', default: '2000' }, dir: { type: 'string', default: '.bench' }, json: { type: 'string' }, phase: { type: 'string' }, root: { type: 'string' } },
  strict: true,
});
const tasks = Number(values.tasks);
const chunks = Number(values.chunks);
if (!Number.isInteger(tasks) || tasks < 1 || !Number.isInteger(chunks) || chunks < 1) {
  process.stderr.write(`--tasks and --chunks are positive whole numbers\n${USAGE}`);
  process.exit(2);
}

if (values.phase !== undefined && values.root !== undefined) {
  // A child: one phase, its figures on stdout.
  const root = values.root;
  const report = values.phase === 'commit' ? await phaseCommit(root, join(root, '..', 'task-snapshots'), tasks) : await phasePlan(root);
  process.stdout.write(JSON.stringify(report));
} else {
  const work = join(resolve(values.dir), 'scale');
  const root = join(work, 'job');
  await rm(work, { recursive: true, force: true });
  process.stdout.write(`bench:scale: ${tasks} task snapshots of ${chunks} chunks (${formatBytes(tasks * chunks * CHUNK)} of synthetic state) on the directory store in ${work}\n`);
  const t0 = performance.now();
  await setup(root, tasks, chunks);
  process.stdout.write(`  setup (manifests, sessions, sparse packs) took ${formatDuration(performance.now() - t0)}\n`);
  const reports: PhaseReport[] = [];
  for (const phase of ['commit', 'plan']) {
    // The parent's node flags (--cpu-prof, say) apply to the phases too.
    const { stdout } = await run(process.execPath, [...process.execArgv, SELF, '--phase', phase, '--root', root, '--tasks', String(tasks), '--chunks', String(chunks)], { maxBuffer: 1 << 20 });
    reports.push(JSON.parse(stdout) as PhaseReport);
  }
  const targets: Record<string, { ms: number; rss?: number }> = { commit: { ms: 5000, rss: 200e6 }, 'plan one task': { ms: 500 } };
  process.stdout.write(`\n  ${'phase'.padEnd(16)}${'time'.padStart(10)}${'peak RSS'.padStart(12)}   target\n`);
  for (const r of reports) {
    const t = targets[r.phase];
    const ok = t !== undefined && r.ms <= t.ms && (t.rss === undefined || r.peakRssBytes <= t.rss);
    const target = t === undefined ? '' : `<= ${formatDuration(t.ms)}${t.rss === undefined ? '' : `, <= ${Math.round(t.rss / 1e6)} MB`}: ${ok ? 'met' : 'MISSED'}`;
    process.stdout.write(`  ${r.phase.padEnd(16)}${formatDuration(r.ms).padStart(10)}${`${(r.peakRssBytes / 1e6).toFixed(0)} MB`.padStart(12)}   ${target}   ${JSON.stringify(r.detail)}\n`);
  }
  if (values.json !== undefined) await writeFile(values.json, `${JSON.stringify({ tasks, chunks, reports }, null, 2)}\n`);
  await rm(work, { recursive: true, force: true });
}
