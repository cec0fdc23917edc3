/**
 * The S3 transport (src/store/s3/http.ts) against real sockets: a scripted
 * HTTP server on loopback answers each request as a test says, including
 * the ways servers misbehave (closing kept-alive connections, truncating a
 * body, answering before the upload is sent, never answering), and a TLS
 * server with a test certificate. The S3 suites
 * (store-s3, s3-roundtrip) run the same transport against Ceph RGW.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Server as TlsServer, createServer as createTlsServer } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FileBody, FixedBufferHttpHandler, ResponseBody, type SdkHttpRequest } from '../src/store/s3/http.js';
import { removeTempDirs, tempDir } from './support.js';

afterAll(removeTempDirs);

interface Received {
  head: string;
  body: Buffer;
}

/** Reads one request (head and a content-length body) from `socket`, leaving what follows for the next. */
function requests(socket: Socket, onRequest: (req: Received) => void): void {
  let buf = Buffer.alloc(0);
  socket.on('data', (data: Buffer) => {
    buf = Buffer.concat([buf, data]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.byteLength < end + 4 + length) return;
      const body = buf.subarray(end + 4, end + 4 + length);
      buf = buf.subarray(end + 4 + length);
      onRequest({ head, body });
    }
  });
}

const servers: { server: Server; sockets: Set<Socket> }[] = [];
afterEach(async () => {
  for (const { server, sockets } of servers.splice(0)) {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A server whose every connection is handed to `onConnection`; returns its port and a count of connections. */
async function serve(onConnection: (socket: Socket, index: number) => void, server: Server = createServer()): Promise<{ port: number; connections: () => number }> {
  let count = 0;
  const sockets = new Set<Socket>();
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket, count++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({ server, sockets });
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return { port: address.port, connections: () => count };
}

function get(port: number, path = '/x', extra: Partial<SdkHttpRequest> = {}): SdkHttpRequest {
  return { method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port, path, headers: {}, ...extra };
}

async function readAll(body: ResponseBody, piece = 1000): Promise<Buffer> {
  const out: Buffer[] = [];
  for (;;) {
    const into = Buffer.alloc(piece);
    const n = await body.readInto(into);
    out.push(into.subarray(0, n));
    if (n < piece) return Buffer.concat(out);
  }
}

async function streamAll(body: ResponseBody): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const piece of body) out.push(piece as Buffer);
  return Buffer.concat(out);
}

const handler = (options: Partial<ConstructorParameters<typeof FixedBufferHttpHandler>[0]> = {}): FixedBufferHttpHandler =>
  new FixedBufferHttpHandler({ connectionTimeoutMs: 2000, requestTimeoutMs: 2000, ...options });

describe('S3 HTTP transport (fixed read buffers)', () => {
  it('reads content-length and chunked bodies, split anywhere, by readInto and as a stream, on one kept-alive connection', async () => {
    const payload = randomBytes(300_000);
    const { port, connections } = await serve((socket) =>
      requests(socket, ({ head }) => {
        if (head.startsWith('GET /chunked')) {
          // Chunks of odd sizes, written in pieces that split the size lines and the CRLFs.
          const parts: Buffer[] = [];
          for (let at = 0; at < payload.byteLength; ) {
            const n = Math.min(70_001, payload.byteLength - at);
            parts.push(Buffer.from(`${n.toString(16)};ext=1\r\n`), payload.subarray(at, at + n), Buffer.from('\r\n'));
            at += n;
          }
          parts.push(Buffer.from('0\r\nx-trailer: 1\r\n\r\n'));
          const all = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\nX-A: 2\r\n\r\n'), ...parts]);
          for (let at = 0; at < all.byteLength; at += 997) socket.write(all.subarray(at, at + 997));
        } else {
          socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${payload.byteLength}\r\n\r\n`), payload]));
        }
      }),
    );
    const h = handler();
    const plain = await h.handle(get(port));
    expect(plain.response.statusCode).toBe(200);
    expect((await readAll(plain.response.body, 65_536 + 7)).equals(payload)).toBe(true);
    const chunked = await h.handle(get(port, '/chunked'));
    expect(chunked.response.headers['x-a']).toBe('1, 2');
    const first = Buffer.alloc(10);
    expect(await chunked.response.body.readInto(first)).toBe(10);
    // The rest of the same body, now as a stream (how the SDK reads error documents and small objects).
    const rest = await streamAll(chunked.response.body);
    expect(Buffer.concat([first, rest]).equals(payload)).toBe(true);
    const streamed = await h.handle(get(port, '/chunked'));
    expect((await streamAll(streamed.response.body)).equals(payload)).toBe(true);
    expect(connections()).toBe(1);
    h.destroy();
  });

  it('a body left unread holds back one socket read, not the response: the server is paused, nothing is lost', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const { port } = await serve((socket) => requests(socket, () => socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${payload.byteLength}\r\n\r\n`), payload]))));
    const h = handler();
    const { response } = await h.handle(get(port));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Slow reader, small reads: every byte arrives, in order.
    expect((await readAll(response.body, 4093)).equals(payload)).toBe(true);
    h.destroy();
  });

  it('a finished body drained late does not resume its connection under the next response (no overrun, nothing lost)', async () => {
    // What a restore does: a worker drains the tail of one pack's body while the connection,
    // already released, carries another pack's GET whose reader has not asked for bytes yet.
    const payloads = new Map([
      ['/a', randomBytes(40_000)],
      ['/b', randomBytes(2 * 1024 * 1024)],
    ]);
    const { port, connections } = await serve((socket) =>
      requests(socket, ({ head }) => {
        const payload = payloads.get(head.split(' ')[1] ?? '') ?? Buffer.alloc(0);
        socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${payload.byteLength}\r\n\r\n`), payload]));
      }),
    );
    const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 200));
    const h = handler({ maxSockets: 1 });
    // /a fits one socket read and nobody reads it yet: held back whole, the body ends, the connection is free.
    const a = (await h.handle(get(port, '/a'))).response.body;
    await settle();
    const b = (await h.handle(get(port, '/b'))).response.body;
    // /b's first socket read (a full read buffer: the server sent it all) is held back and pauses the connection.
    await settle();
    // Draining /a must leave that connection paused: a resumed socket would read on into /b's full hold buffer.
    const aBytes = Buffer.alloc(50_000);
    expect(await a.readInto(aBytes)).toBe(40_000);
    await settle();
    expect(aBytes.subarray(0, 40_000).equals(payloads.get('/a') as Buffer)).toBe(true);
    expect((await readAll(b, 65_536 + 7)).equals(payloads.get('/b') as Buffer)).toBe(true);
    expect(connections()).toBe(1);
    h.destroy();
  });

  it('a kept-alive connection the server closed meanwhile is replaced, and the request is not lost', async () => {
    const { port, connections } = await serve((socket, index) => {
      let served = 0;
      requests(socket, () => {
        // The first connection's second request crosses the server closing it: dropped unanswered.
        if (index === 0 && served === 1) {
          socket.destroy();
          return;
        }
        served++;
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      });
    });
    const h = handler();
    for (let i = 0; i < 3; i++) {
      const { response } = await h.handle(get(port, '/', { method: 'PUT', body: 'x'.repeat(i + 1) }));
      expect((await readAll(response.body)).toString()).toBe('ok');
    }
    expect(connections()).toBe(2);
    h.destroy();
  });

  it('a body cut short is an ECONNRESET error (transient), never a short success', async () => {
    const { port } = await serve((socket) =>
      requests(socket, () => {
        socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n'), randomBytes(40_000)]));
        setTimeout(() => socket.destroy(), 50);
      }),
    );
    const h = handler();
    const { response } = await h.handle(get(port));
    await expect(readAll(response.body, 100_000)).rejects.toMatchObject({ code: 'ECONNRESET' });
    h.destroy();
  });

  it('uploads a file body exactly (content-length, bytes), from reused buffers', async () => {
    const dir = await tempDir('s3-http');
    const bytes = randomBytes(3 * 256 * 1024 + 12_345);
    const path = join(dir, 'pack');
    await writeFile(path, bytes);
    const seen: Received[] = [];
    const { port } = await serve((socket) =>
      requests(socket, (req) => {
        seen.push(req);
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
      }),
    );
    const h = handler();
    for (let i = 0; i < 2; i++) {
      const { response } = await h.handle({ ...get(port, '/pack'), method: 'PUT', body: new FileBody(path, bytes.byteLength) });
      expect(response.statusCode).toBe(200);
    }
    expect(seen).toHaveLength(2);
    for (const req of seen) {
      expect(req.head).toMatch(new RegExp(`content-length: ${bytes.byteLength}`, 'i'));
      expect(createHash('sha256').update(req.body).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
    h.destroy();
  });

  it('an answer that comes before the upload (a refused conditional PUT) is returned, and the connection is not reused', async () => {
    const { port, connections } = await serve((socket) => {
      let answered = false;
      socket.on('data', () => {
        if (answered) return;
        answered = true;
        socket.end('HTTP/1.1 412 Precondition Failed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      });
    });
    const h = handler();
    const big = randomBytes(4 * 1024 * 1024);
    const refused = await h.handle({ ...get(port, '/p'), method: 'PUT', headers: { Expect: '100-continue' }, body: big });
    expect(refused.response.statusCode).toBe(412);
    const again = await h.handle({ ...get(port, '/p'), method: 'PUT', body: 'small' });
    expect(again.response.statusCode).toBe(412);
    expect(connections()).toBe(2);
    h.destroy();
  });

  it('a server that never answers is a TimeoutError within the deadline; an abort is an AbortError', async () => {
    const { port } = await serve(() => undefined);
    const h = handler({ requestTimeoutMs: 300 });
    const started = Date.now();
    await expect(h.handle(get(port))).rejects.toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
    expect(Date.now() - started).toBeLessThan(2000);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(handler().handle(get(port), { abortSignal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    h.destroy();
  });

  it('refuses a malformed response, a head over 64 KiB and a header value with a line break', async () => {
    const { port } = await serve((socket) =>
      requests(socket, ({ head }) => {
        if (head.startsWith('GET /bad')) socket.write('HTTP/1.1 OK\r\n\r\n');
        else socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70_000)}\r\n\r\n`);
      }),
    );
    const h = handler();
    await expect(h.handle(get(port, '/bad'))).rejects.toMatchObject({ code: 'HPE_INVALID_CONSTANT' });
    await expect(h.handle(get(port, '/big'))).rejects.toMatchObject({ code: 'HPE_HEADER_OVERFLOW' });
    await expect(h.handle(get(port, '/x', { headers: { 'x-evil': 'a\r\nb: c' } }))).rejects.toMatchObject({ code: 'ERR_INVALID_CHAR' });
    h.destroy();
  });

  it('speaks TLS with a certificate the caller trusts', async () => {
    // A self-signed certificate for localhost made for this test (valid until 2126; test/fixtures/README.md).
    const fixtures = new URL('../../test/fixtures/', import.meta.url);
    const key = new URL('tls-localhost.key', fixtures);
    const cert = new URL('tls-localhost.crt', fixtures);
    const payload = randomBytes(200_000);
    const server = createTlsServer({ key: readFileSync(key), cert: readFileSync(cert) });
    const { port } = await serve((socket) => requests(socket, () => socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${payload.byteLength}\r\n\r\n`), payload]))), server);
    const h = handler({ tls: { ca: readFileSync(cert) } });
    const { response } = await h.handle({ ...get(port), protocol: 'https:', hostname: 'localhost' });
    expect((await readAll(response.body, 50_000)).equals(payload)).toBe(true);
    await expect(handler().handle({ ...get(port), protocol: 'https:', hostname: 'localhost' })).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    h.destroy();
  });
});
