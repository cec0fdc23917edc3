/**
 * The layering check `npm test` runs before the suite: it reads every
 * import (static, `export … from`, type-only and dynamic `import()`) of the
 * TypeScript under src/, workers/, sim/ and the tooling trees, and fails naming
 * the import when one crosses the layers upward or closes a cycle. README's
 * "Architecture" section describes the same layers; this table is the rule.
 *
 * Run: node dist/scripts/layers.js   (exit 0: layered; 1: the violations, one per line)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

interface Layer {
  name: string;
  /** Repository paths: a folder (ending in '/') covers everything below it; the first layer that matches a file owns it. */
  paths: string[];
  /** The layers it may import besides its own. */
  may: string[];
}

/** Top to bottom. A module imports its own layer or one it names in `may`; nothing else. */
export const LAYERS: Layer[] = [
  { name: 'tooling', paths: ['test/', 'bench/', 'scripts/', 'examples/'], may: ['cli', 'sim', 'api', 'coordinators', 'workers', 'boundary', 'storage', 'leaves'] },
  { name: 'cli', paths: ['src/cli/'], may: ['sim', 'api', 'leaves'] },
  { name: 'sim', paths: ['sim/'], may: ['api', 'coordinators', 'boundary', 'storage', 'leaves'] },
  { name: 'api', paths: ['src/chunkpoint.ts', 'src/index.ts', 'src/events.ts'], may: ['coordinators', 'boundary', 'storage', 'leaves'] },
  {
    name: 'coordinators',
    paths: ['src/snapshot/', 'src/restore/', 'src/copy.ts', 'src/verify.ts', 'src/gc.ts', 'src/inspect.ts', 'src/checkpoint.ts', 'src/lease.ts', 'src/pool.ts', 'src/runtime.ts'],
    may: ['boundary', 'storage', 'leaves'],
  },
  // The other side of the thread boundary: reached through the pool by file name, never imported.
  { name: 'workers', paths: ['workers/'], may: ['boundary', 'storage', 'leaves'] },
  // What crosses threads, and the main thread's end of the workers' relayed S3 calls.
  { name: 'boundary', paths: ['src/protocol.ts', 'src/store/relay.ts'], may: ['storage', 'leaves'] },
  { name: 'storage', paths: ['src/format/', 'src/store/', 'src/cache.ts', 'src/local-copy.ts', 'src/dedupe-index.ts'], may: ['leaves'] },
  {
    name: 'leaves',
    paths: ['src/errors.ts', 'src/error-codes.ts', 'src/progress.ts', 'src/bounded.ts', 'src/random.ts', 'src/file-range.ts', 'src/native.ts', 'src/units.ts', 'src/local-paths.ts'],
    may: [],
  },
];

/** Where the check looks for modules. */
const ROOTS = ['src', 'workers', 'sim', 'test', 'bench', 'scripts', 'examples'];

function layerOf(file: string): Layer | undefined {
  return LAYERS.find((layer) => layer.paths.some((path) => (path.endsWith('/') ? file.startsWith(path) : file === path)));
}

function sourceFiles(root: string, dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(join(root, dir), { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return entries.flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sourceFiles(root, path);
    return entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative specifiers only: packages and node: builtins are outside the layers. `./x.js` is the module `./x.ts`. */
function resolveImport(from: string, specifier: string, files: ReadonlySet<string>): string | undefined {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return undefined;
  const path = join(dirname(from), specifier).split(sep).join('/');
  for (const candidate of [path.replace(/\.js$/, '.ts'), `${path}.ts`, `${path}/index.ts`]) if (files.has(candidate)) return candidate;
  return path;
}

/** Every import edge of the tree rooted at `root`, by repository path. */
export function importGraph(root: string): Map<string, string[]> {
  const files = new Set(ROOTS.flatMap((dir) => sourceFiles(root, dir)));
  const graph = new Map<string, string[]>();
  for (const file of [...files].sort()) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
    const targets = importedFiles.map((ref) => resolveImport(file, ref.fileName, files)).filter((t): t is string => t !== undefined);
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** The violations of the layering, one message each; empty when the tree is layered. */
export function checkLayers(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const problems: string[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    if (from === undefined) {
      problems.push(`${file} belongs to no layer: add it to LAYERS in scripts/layers.ts`);
      continue;
    }
    for (const target of targets) {
      if (!graph.has(target)) {
        problems.push(`${file} imports ${target}, which is not a module of the tree`);
        continue;
      }
      const to = layerOf(target);
      if (to === undefined || to === from || from.may.includes(to.name)) continue;
      problems.push(`${file} imports ${target}: ${from.name} may not import ${to.name} (${from.name} may import ${from.may.join(', ') || 'only itself'})`);
    }
  }
  for (const cycle of cycles(graph)) problems.push(`import cycle: ${[...cycle, cycle[0]].join(' -> ')}`);
  return problems;
}

/** One cycle per strongly connected component that has one (Tarjan), as the path around it. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (node: string): void => {
    index.set(node, next);
    low.set(node, next);
    next++;
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!graph.has(target)) continue;
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node) ?? 0, low.get(target) ?? 0));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node) ?? 0, index.get(target) ?? 0));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string | undefined;
    do {
      member = stack.pop();
      if (member === undefined) break;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    const self = graph.get(node)?.includes(node) === true;
    if (component.length > 1 || self) found.push(pathAround(graph, new Set(component), node));
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

/** A shortest path from `start` back to itself inside one component. */
function pathAround(graph: ReadonlyMap<string, readonly string[]>, component: ReadonlySet<string>, start: string): string[] {
  const previous = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i] as string;
    for (const target of graph.get(node) ?? []) {
      if (!component.has(target)) continue;
      if (target === start) {
        const path = [node];
        for (let at = node; at !== start; ) {
          at = previous.get(at) as string;
          path.unshift(at);
        }
        return path;
      }
      if (!previous.has(target)) {
        previous.set(target, node);
        queue.push(target);
      }
    }
  }
  return [start];
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const graph = importGraph(root);
  const problems = checkLayers(graph);
  for (const problem of problems) process.stderr.write(`layers: ${problem}\n`);
  if (problems.length > 0) {
    process.stderr.write(`layers: ${problems.length} violation(s); the layers are in scripts/layers.ts and README's "Architecture" section\n`);
    process.exitCode = 1;
  } else {
    const edges = [...graph.values()].reduce((sum, targets) => sum + targets.length, 0);
    process.stdout.write(`layers: ${graph.size} modules, ${edges} imports in ${LAYERS.length} layers: no cycle, no upward import\n`);
  }
}
