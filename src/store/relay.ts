/**
 * The main thread's side of the store relay: serves the S3 calls of the
 * worker threads (see `RelayCall` in protocol.ts for why one isolate does a
 * process's HTTP). Each port is one worker's connection; the readers and
 * writers it opened are closed and aborted when it goes away, so a thread
 * that dies mid-pack leaves what any interrupted write leaves, for gc.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { InternalError, serializeError } from '../errors.js';
import type { RelayCall, RelayReply, RelayRequest, RelayValue } from '../protocol.js';
import { S3Store } from './s3/store.js';
import type { StoreSpec } from './spec.js';
import type { ObjectReader, ObjectWriter, Store } from './store.js';

export class StoreRelay {
  private readonly stores = new Map<string, Store>();
  private readonly ports = new Set<MessagePort>();

  /** A new connection: serve one end here, hand the other to a worker (transferred). */
  connect(): MessagePort {
    const { port1, port2 } = new MessageChannel();
    const readers = new Map<number, ObjectReader>();
    const writers = new Map<number, ObjectWriter>();
    let next = 1;
    const answer = (reply: RelayReply, transfer: ArrayBuffer[] = []): void => {
      try {
        port1.postMessage(reply, transfer);
      } catch {
        // The worker went away meanwhile: nobody is waiting for the reply.
      }
    };
    const serve = async (call: RelayCall, store: Store): Promise<{ value: RelayValue; transfer?: ArrayBuffer[] }> => {
      switch (call.op) {
        case 'get': {
          const data = owned(await store.get(call.key, call.range));
          return { value: { kind: 'data', data, length: data.byteLength }, transfer: [data] };
        }
        case 'openReader': {
          const handle = next++;
          readers.set(handle, await store.openReader(call.key, call.range));
          return { value: { kind: 'handle', handle } };
        }
        case 'read':
          return { value: { kind: 'count', count: await handleOf(readers, call.reader, 'reader').read(new Uint8Array(call.into, call.offset, call.length)) } };
        case 'closeReader': {
          const reader = readers.get(call.reader);
          readers.delete(call.reader);
          await reader?.close();
          return { value: { kind: 'done' } };
        }
        case 'createWriter': {
          const handle = next++;
          writers.set(handle, await store.createWriter(call.key));
          return { value: { kind: 'handle', handle } };
        }
        case 'write':
          await handleOf(writers, call.writer, 'writer').write([new Uint8Array(call.data, 0, call.length)]);
          return { value: { kind: 'done' } };
        case 'finish': {
          const staged = await handleOf(writers, call.writer, 'writer').finish();
          writers.delete(call.writer);
          return { value: { kind: 'staged', staged } };
        }
        case 'abort': {
          const writer = writers.get(call.writer);
          writers.delete(call.writer);
          await writer?.abort();
          return { value: { kind: 'done' } };
        }
        case 'stat':
          return { value: { kind: 'info', info: (await store.stat(call.key)) ?? null } };
        case 'delete':
          await store.delete(call.keys);
          return { value: { kind: 'done' } };
        default: {
          const unknown: never = call;
          throw new InternalError('RELAY_UNKNOWN_CALL', `a worker relayed an unknown store call '${String((unknown as { op: unknown }).op)}'`);
        }
      }
    };
    port1.on('message', (message: RelayRequest) => {
      void (async () => {
        try {
          const { value, transfer } = await serve(message.call, this.storeFor(message.store));
          answer({ id: message.id, ok: true, value }, transfer);
        } catch (error) {
          answer({ id: message.id, ok: false, error: serializeError(error) });
        }
      })();
    });
    port1.once('close', () => {
      this.ports.delete(port1);
      for (const reader of readers.values()) void reader.close().catch(() => undefined);
      for (const writer of writers.values()) void writer.abort().catch(() => undefined);
      readers.clear();
      writers.clear();
    });
    // Never what keeps the process alive: the pool's tasks do that.
    port1.unref();
    this.ports.add(port1);
    return port2;
  }

  close(): void {
    for (const port of this.ports) port.close();
    this.ports.clear();
  }

  private storeFor(id: string): Store {
    let store = this.stores.get(id);
    if (store === undefined) {
      const spec = JSON.parse(id) as StoreSpec;
      if (spec.type !== 's3') throw new InternalError('RELAY_NOT_S3', `a worker relayed a call for a ${spec.type} store; only S3 calls are relayed`);
      // The bare store: the worker keeps retries, faults and the rate limit around its end of the relay.
      store = new S3Store(spec);
      this.stores.set(id, store);
    }
    return store;
  }
}

function handleOf<T>(handles: ReadonlyMap<number, T>, handle: number, what: string): T {
  const found = handles.get(handle);
  if (found === undefined) throw new InternalError('RELAY_UNKNOWN_HANDLE', `a worker used ${what} ${handle}, which is closed or was never opened`);
  return found;
}

/** `buf`'s bytes in an ArrayBuffer of their own, safe to transfer (a Buffer may be a slice of a shared pool). Only small objects are read whole. */
function owned(buf: Buffer): ArrayBuffer {
  const copy = new ArrayBuffer(buf.byteLength);
  new Uint8Array(copy).set(buf);
  return copy;
}
