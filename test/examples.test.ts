/**
 * The examples the README shows are real programs: the README's embedding
 * code block is examples/embedding.ts verbatim, compiled with the project and
 * run here against a real store; the Prometheus example renders valid text
 * exposition whose values equal the operations' results.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunkpoint } from '../src/chunkpoint.js';
import { ChunkpointMetrics } from '../examples/prometheus.js';
import { REPO_ROOT, removeTempDirs, rocksState, tempDir, treeDigest, type RocksState } from './support.js';

let state: RocksState;

beforeAll(async () => {
  state = await rocksState(3 * 1024 * 1024, 5);
});

afterAll(async () => {
  await removeTempDirs();
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('README embedding example', () => {
  it('is examples/embedding.ts verbatim', async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
    const source = await readFile(join(REPO_ROOT, 'examples', 'embedding.ts'), 'utf8');
    const block = /<!-- examples\/embedding\.ts -->\n```ts\n([\s\S]*?)```\n/.exec(readme)?.[1];
    expect(block, 'README.md lacks the <!-- examples/embedding.ts --> code block').toBeDefined();
    expect(block).toBe(source);
  });

  it('runs against a real store: two snapshots, two restores (the second from the cache), gc', async () => {
    const work = await tempDir('example');
    const result = await run([join(REPO_ROOT, 'dist', 'examples', 'embedding.js'), state.dir, work]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^chk-1 committed: /m);
    expect(result.stdout).toMatch(/^chk-2 committed: .* reused \d+ files/m);
    expect(result.stdout).toMatch(/^snapshot\.progress: \d+\/\d+ files/m);
    // Everything the second restore needed was in the cache the first one filled.
    expect(result.stdout).toMatch(/^from cache: [1-9]\d* bytes, from the store: 0 bytes$/m);
    const digest = await treeDigest(state.dir);
    expect(await treeDigest(join(work, 'restored'))).toEqual(digest);
    expect(await treeDigest(join(work, 'restored-again'))).toEqual(digest);
  });
});

describe('Prometheus example', () => {
  it('renders valid text exposition with the figures of the results', async () => {
    const metrics = new ChunkpointMetrics();
    const cp = new Chunkpoint({ threads: 2, onEvent: metrics.onEvent });
    const job = { store: await tempDir('prom-store'), job: 'prom' };
    let text: string;
    let snap, again, restored, gc;
    try {
      snap = await cp.snapshot(state.dir, job);
      again = await cp.snapshot(state.dir, job);
      restored = await cp.restore(job, join(await tempDir('prom-restore'), 't'));
      gc = await cp.gc(job, { graceMs: 0, retain: 1 });
      await cp.restore({ ...job, checkpoint: 1 }, join(await tempDir('prom-restore'), 't')).catch(() => undefined);
      text = metrics.render();
    } finally {
      await cp.close();
    }
    const lines = text.trimEnd().split('\n');
    const samples = new Map<string, number>();
    for (const line of lines) {
      if (line.startsWith('# ')) {
        expect(line).toMatch(/^# (HELP [a-z_]+ \S.*|TYPE [a-z_]+ (counter|gauge))$/);
        continue;
      }
      const match = /^([a-z_]+(?:\{[a-z_]+="[^"\\]*"(?:,[a-z_]+="[^"\\]*")*\})?) (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/.exec(line);
      expect(match, `not a sample line: ${line}`).not.toBeNull();
      samples.set(match?.[1] ?? '', Number(match?.[2]));
    }
    // Every family declares its type once, before its samples.
    const types = lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    expect(new Set(types).size).toBe(types.length);
    for (const [name] of samples) expect(types).toContain(name.replace(/\{.*$/, ''));

    expect(samples.get('chunkpoint_snapshot_bytes_read_total')).toBe(snap.bytesRead + again.bytesRead);
    expect(samples.get('chunkpoint_snapshot_bytes_written_total')).toBe(snap.bytesWritten + again.bytesWritten);
    expect(samples.get('chunkpoint_snapshot_chunks_total{kind="new"}')).toBe(snap.chunksNew + again.chunksNew);
    expect(samples.get('chunkpoint_last_checkpoint_id{job="prom"}')).toBe(2);
    expect(samples.get('chunkpoint_restore_bytes_total{source="store"}')).toBe(restored.bytesFromRemote);
    expect(samples.get('chunkpoint_gc_packs_removed_total')).toBe(gc.packsRemoved);
    expect(samples.get('chunkpoint_gc_bytes_freed_total')).toBe(gc.bytesFreed);
    expect(samples.get('chunkpoint_operations_total{operation="snapshot",outcome="success"}')).toBe(2);
    // chk-1 was removed by gc's retention: the last restore failed and was counted as such.
    expect(samples.get('chunkpoint_operations_total{operation="restore",outcome="failure"}')).toBe(1);
  });
});
