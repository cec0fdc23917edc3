/**
 * What piscina loads in each worker thread: a CommonJS file, so that
 * piscina's require() of it stays plain CommonJS. Given the ES module graph
 * directly, piscina require()s it first (Node >= 20.19 can require ESM),
 * falls back to import() because the graph has top-level await, and a
 * second request arriving while that import() is still linking require()s
 * the half-instantiated graph: Node 20 then aborts the whole process (V8
 * fatal error "IsGraphAsync must be used on an instantiated module"; seen
 * once in CI, in a worker started with requests already waiting). Here the
 * graph is imported once, asynchronously, whatever arrives meanwhile.
 */
import type { WorkerMessage, WorkerResponse } from '../src/protocol.js' with { 'resolution-mode': 'import' };

type Handler = (message: WorkerMessage) => Promise<WorkerResponse>;

// Started as the thread starts (piscina loads this file then), not on the first request: loading
// the graph (lz4's addon, xxhash's wasm) takes a couple of hundred milliseconds on a busy machine,
// and a coordinator warms the pool while it is still reading metadata from the store.
const handler: Promise<Handler> = import('./worker.js').then((m: { default: Handler }) => m.default);
// A graph that cannot load (a native addon built for another Node) fails every request with its
// error; the thread itself must not die of an unhandled rejection before one arrives.
handler.catch(() => undefined);

export = async function handle(message: WorkerMessage): Promise<WorkerResponse> {
  return (await handler)(message);
};
