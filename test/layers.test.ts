/**
 * The layering check (scripts/layers.ts) catches what it promises: an upward
 * import, worker code reaching a coordinator, the library reaching the stress
 * harness, a cycle, a module of no layer; and the tree itself passes.
 */
import { describe, expect, it } from 'vitest';
import { checkLayers, importGraph } from '../scripts/layers.js';
import { REPO_ROOT } from './support.js';

const graph = (edges: Record<string, string[]>): Map<string, string[]> => {
  const g = new Map<string, string[]>(Object.entries(edges));
  for (const targets of Object.values(edges)) for (const t of targets) if (!g.has(t)) g.set(t, []);
  return g;
};

describe('layering check', () => {
  it('the tree has no cycle and no upward import', () => {
    expect(checkLayers(importGraph(REPO_ROOT))).toEqual([]);
  });

  it('names an import that goes up a layer', () => {
    expect(checkLayers(graph({ 'src/store/retry.ts': ['src/snapshot/result.ts'] }))).toEqual([
      'src/store/retry.ts imports src/snapshot/result.ts: storage may not import coordinators (storage may import leaves)',
    ]);
  });

  it('keeps worker code on its side of the thread boundary', () => {
    expect(checkLayers(graph({ 'workers/write-pack.ts': ['src/pool.ts', 'src/protocol.ts', 'src/format/blob.ts'] }))).toEqual([
      'workers/write-pack.ts imports src/pool.ts: workers may not import coordinators (workers may import boundary, storage, leaves)',
    ]);
  });

  it('keeps the stress harness out of the library', () => {
    const problems = checkLayers(graph({ 'src/store/open.ts': ['sim/faulty-store.ts'], 'src/cli/stress.ts': ['sim/scenario.ts'] }));
    expect(problems).toEqual(['src/store/open.ts imports sim/faulty-store.ts: storage may not import sim (storage may import leaves)']);
  });

  it('names a cycle, even within one layer', () => {
    expect(checkLayers(graph({ 'src/bounded.ts': ['src/random.ts'], 'src/random.ts': ['src/errors.ts'], 'src/errors.ts': ['src/bounded.ts'] }))).toEqual([
      'import cycle: src/bounded.ts -> src/random.ts -> src/errors.ts -> src/bounded.ts',
    ]);
  });

  it('refuses a module that belongs to no layer', () => {
    expect(checkLayers(graph({ 'src/new-thing.ts': [] }))).toEqual(['src/new-thing.ts belongs to no layer: add it to LAYERS in scripts/layers.ts']);
  });
});
