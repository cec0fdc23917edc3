/**
 * A worker's S3 store: every call goes to the main thread's store relay
 * (src/store/relay.ts), which alone loads the SDK and holds the sockets.
 * Only what worker requests use is relayed (ranged reads, streaming writes,
 * stat, delete); listing, publishing and the rest stay coordinator calls.
 */
import type { MessagePort } from 'node:worker_threads';
import { InternalError, deserializeError } from '../src/errors.js';
import type { RelayCall, RelayReply, RelayRequest, RelayValue } from '../src/protocol.js';
import type { S3StoreSpec } from '../src/store/spec.js';
import type { ByteRange, IncompleteWrite, ObjectInfo, ObjectReader, ObjectWriter, PutResult, StagedObject, Store, WriterOptions } from '../src/store/store.js';

interface Connection {
  port: MessagePort;
  next: number;
  pending: Map<number, { resolve: (value: RelayValue) => void; reject: (error: unknown) => void }>;
}

let connection: Connection | undefined;

/** Keeps the first relay port this thread is handed; later ones are closed (their server side then lets go). */
export function adoptRelay(port: MessagePort | undefined): void {
  if (port === undefined) return;
  if (connection !== undefined) {
    port.close();
    return;
  }
  const conn: Connection = { port, next: 1, pending: new Map() };
  port.on('message', (reply: RelayReply) => {
    const waiting = conn.pending.get(reply.id);
    conn.pending.delete(reply.id);
    if (waiting === undefined) return;
    if (reply.ok) waiting.resolve(reply.value);
    else waiting.reject(deserializeError(reply.error));
  });
  port.once('close', () => {
    if (connection === conn) connection = undefined;
    const gone = new InternalError('RELAY_CLOSED', 'the main thread closed the store relay (the worker pool is closing)');
    for (const waiting of conn.pending.values()) waiting.reject(gone);
    conn.pending.clear();
  });
  port.unref();
  connection = conn;
}

async function relay(store: string, call: RelayCall, transfer: ArrayBuffer[] = []): Promise<RelayValue> {
  const conn = connection;
  if (conn === undefined) throw new InternalError('RELAY_MISSING', 'an S3 call in a worker thread without a store relay (the task was sent without one)');
  const id = conn.next++;
  return new Promise<RelayValue>((resolve, reject) => {
    conn.pending.set(id, { resolve, reject });
    conn.port.postMessage({ id, store, call } satisfies RelayRequest, transfer);
  });
}

function expect<K extends RelayValue['kind']>(value: RelayValue, kind: K): Extract<RelayValue, { kind: K }> {
  if (value.kind !== kind) throw new InternalError('RELAY_BAD_REPLY', `the store relay answered '${value.kind}' where '${kind}' was due`);
  return value as Extract<RelayValue, { kind: K }>;
}

/**
 * Shared buffers the relay reads into and writes from, reused: bodies then
 * make no garbage in this isolate (V8 collects external memory late, and a
 * worker used to hold tens of MB of spent socket buffers).
 */
const freeShared: SharedArrayBuffer[] = [];

async function withShared<T>(size: number, use: (buf: SharedArrayBuffer) => Promise<T>): Promise<T> {
  const i = freeShared.findIndex((b) => b.byteLength >= size);
  const buf = i >= 0 ? (freeShared.splice(i, 1)[0] as SharedArrayBuffer) : new SharedArrayBuffer(Math.max(size, 256 * 1024));
  try {
    return await use(buf);
  } finally {
    freeShared.push(buf);
  }
}

export class RelayedStore implements Store {
  private readonly id: string;

  constructor(
    readonly spec: S3StoreSpec,
    readonly location: string,
  ) {
    this.id = JSON.stringify(spec);
  }

  async get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer> {
    const { data, length } = expect(await relay(this.id, range === undefined ? { op: 'get', key } : { op: 'get', key, range }), 'data');
    const bytes = Buffer.from(data, 0, length);
    if (into === undefined) return bytes;
    const out = into(length);
    bytes.copy(out);
    return out;
  }

  async openReader(key: string, range?: ByteRange): Promise<ObjectReader> {
    const { handle } = expect(await relay(this.id, range === undefined ? { op: 'openReader', key } : { op: 'openReader', key, range }), 'handle');
    const id = this.id;
    let closed = false;
    return {
      async read(into: Uint8Array): Promise<number> {
        // Already shared memory (a request's Scratch.shared buffer): the main thread fills it in place, no copy here.
        if (into.buffer instanceof SharedArrayBuffer) {
          return expect(await relay(id, { op: 'read', reader: handle, into: into.buffer, offset: into.byteOffset, length: into.byteLength }), 'count').count;
        }
        return withShared(into.byteLength, async (shared) => {
          const { count } = expect(await relay(id, { op: 'read', reader: handle, into: shared, offset: 0, length: into.byteLength }), 'count');
          into.set(new Uint8Array(shared, 0, count));
          return count;
        });
      },
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        await relay(id, { op: 'closeReader', reader: handle });
      },
    };
  }

  // Durability options do not cross: an S3 object is durable once finished.
  async createWriter(key: string, _options?: WriterOptions): Promise<ObjectWriter> {
    const { handle } = expect(await relay(this.id, { op: 'createWriter', key }), 'handle');
    const id = this.id;
    let size = 0;
    let ended = false;
    let staged: StagedObject | undefined;
    return {
      key,
      get size() {
        return size;
      },
      async write(parts: readonly Uint8Array[]): Promise<void> {
        const length = parts.reduce((n, p) => n + p.byteLength, 0);
        await withShared(length, async (shared) => {
          const view = new Uint8Array(shared, 0, length);
          let at = 0;
          for (const p of parts) {
            view.set(p, at);
            at += p.byteLength;
          }
          await relay(id, { op: 'write', writer: handle, data: shared, length });
        });
        size += length;
      },
      // Idempotent, as the store's own writer: a retry after a lost answer gets the same object.
      async finish(): Promise<StagedObject> {
        if (staged !== undefined) return staged;
        ended = true;
        staged = expect(await relay(id, { op: 'finish', writer: handle }), 'staged').staged;
        return staged;
      },
      async abort(): Promise<void> {
        if (ended) return;
        ended = true;
        await relay(id, { op: 'abort', writer: handle });
      },
    };
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    return expect(await relay(this.id, { op: 'stat', key }), 'info').info ?? undefined;
  }

  async delete(keys: readonly string[]): Promise<void> {
    await relay(this.id, { op: 'delete', keys: [...keys] });
  }

  put(): Promise<PutResult> {
    return notRelayed('put');
  }

  publish(): Promise<PutResult[]> {
    return notRelayed('publish');
  }

  list(): AsyncIterable<ObjectInfo> {
    return notRelayedIterable('list');
  }

  listIncomplete(): AsyncIterable<IncompleteWrite> {
    return notRelayedIterable('listIncomplete');
  }

  syncNames(): Promise<void> {
    return notRelayed('syncNames');
  }

  exists(): Promise<boolean> {
    return notRelayed('exists');
  }
}

function notRelayed(op: string): Promise<never> {
  return Promise.reject(new InternalError('RELAY_UNSUPPORTED', `'${op}' is a coordinator's store call and is not relayed from worker threads`));
}

function notRelayedIterable<T>(op: string): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]: () => ({ next: () => notRelayed(op) }),
  };
}
