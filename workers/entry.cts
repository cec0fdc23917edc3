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
let handler: Promise<Handler> | undefined;

export = async function handle(message: WorkerMessage): Promise<WorkerResponse> {
  handler ??= import('./worker.js').then((m: { default: Handler }) => m.default);
  return (await handler)(message);
};
