/**
 * What piscina loads in each ceiling thread: a CommonJS file that imports the
 * ES graph (ceiling-worker.ts, which has top-level await) once. Given that
 * graph directly, piscina would require() it while the warm-up's requests,
 * all sent at once, arrive during its import(): the race that makes Node 20
 * abort (workers/entry.cts says how).
 */
import type { CeilingRequest } from './ceiling-worker.js' with { 'resolution-mode': 'import' };

type Encode = (request: CeilingRequest) => number;

const encode: Promise<Encode> = import('./ceiling-worker.js').then((m: { default: Encode }) => m.default);
encode.catch(() => undefined);

export = async function handle(request: CeilingRequest): Promise<number> {
  return (await encode)(request);
};
