/**
 * How space stays bounded (docs/FORMAT.md): the rule that decides which
 * base packs a snapshot stops keeping alive. The whole-system figure (stored
 * bytes against live chunks after tens of checkpoints) is checked by the
 * stress soak in stress.test.ts; here the rule itself, case by case.
 */
import { describe, expect, it } from 'vitest';
import type { FileEntry } from '../src/format/manifest.js';
import { MIN_PACK_USE, MIN_REWRITE_WASTE, planRewrites } from '../src/snapshot/plan.js';
import type { StateFile } from '../src/snapshot/state-dir.js';

const KiB = 1024;

/** One immutable file per pack, holding one chunk of `used` bytes of that pack: the rest of the pack is dead. */
function state(packs: ReadonlyArray<{ name: string; size: number; used: number }>): { files: StateFile[]; entries: FileEntry[]; basePacks: Map<string, number> } {
  const files: StateFile[] = [];
  const entries: FileEntry[] = [];
  for (const [i, p] of packs.entries()) {
    const relPath = `00${i}.sst`;
    files.push({ relPath, absPath: `/state/${relPath}`, size: 2 * p.used, mode: 0o644, mtimeMs: 1, immutable: true });
    entries.push({
      path: relPath,
      size: 2 * p.used,
      mode: 0o644,
      mtimeMs: 1,
      immutable: true,
      chunks: [{ key: `${i}`.padStart(32, '0'), rawLength: 2 * p.used, handle: { area: 'shared', name: p.name, offset: 64, length: p.used } }],
    });
  }
  return { files, entries, basePacks: new Map(packs.map((p) => [`shared/${p.name}`, p.size])) };
}

describe('which base packs a snapshot rewrites', () => {
  it('many small mostly dead packs are rewritten once together they waste more than the threshold, though none does alone', () => {
    const packs = Array.from({ length: 10 }, (_, i) => ({ name: `p${i}.pack`, size: 100 * KiB, used: 10 * KiB }));
    expect(100 * KiB - 10 * KiB).toBeLessThan(MIN_REWRITE_WASTE);
    const { files, entries, basePacks } = state(packs);
    const plan = planRewrites(files, entries, basePacks);
    expect([...plan.sparse].sort()).toEqual(packs.map((p) => `shared/${p.name}`).sort());
    // Every chunk in them is read again from its file, and nothing else.
    expect(plan.pending.map((r) => r.entry.path).sort()).toEqual(files.map((f) => f.relPath).sort());
    expect(plan.pending.every((r) => r.area === 'shared' && r.chunks.length === 1 && r.chunks[0]?.offset === 0)).toBe(true);
    expect(plan.bytes).toBe(10 * 20 * KiB);
  });

  it('mostly dead packs that together waste little are kept: a pass of requests and a new pack is not worth a few KiB', () => {
    const { files, entries, basePacks } = state([
      { name: 'a.pack', size: 100 * KiB, used: 10 * KiB },
      { name: 'b.pack', size: 100 * KiB, used: 10 * KiB },
    ]);
    const plan = planRewrites(files, entries, basePacks);
    expect(plan.sparse.size).toBe(0);
    expect(plan.pending).toEqual([]);
    expect(plan.bytes).toBe(0);
  });

  it('a pack at least half live stays, beside sparse ones that go', () => {
    const { files, entries, basePacks } = state([
      { name: 'half.pack', size: 1024 * KiB, used: MIN_PACK_USE * 1024 * KiB },
      { name: 'dead.pack', size: 1024 * KiB, used: 100 * KiB },
    ]);
    const plan = planRewrites(files, entries, basePacks);
    expect([...plan.sparse]).toEqual(['shared/dead.pack']);
    expect(plan.pending.map((r) => r.entry.path)).toEqual(['001.sst']);
  });

  it('packs this snapshot wrote are never candidates, and a blob two files share counts once', () => {
    const { files, entries, basePacks } = state([{ name: 'shared-blob.pack', size: 1024 * KiB, used: 300 * KiB }]);
    // A second file whose chunk is the same blob: 300 KiB live, not 600.
    const [first] = entries;
    const [firstFile] = files;
    if (first === undefined || firstFile === undefined) throw new Error('test setup');
    entries.push({ ...first, path: 'copy.sst' });
    files.push({ ...firstFile, relPath: 'copy.sst', absPath: '/state/copy.sst' });
    expect(planRewrites(files, entries, basePacks).sparse).toEqual(new Set(['shared/shared-blob.pack']));
    // The same layout, the pack written by this snapshot (not the base's): nothing to rewrite.
    expect(planRewrites(files, entries, new Map()).sparse.size).toBe(0);
  });
});
