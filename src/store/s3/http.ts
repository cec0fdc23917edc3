/**
 * The S3 client's HTTP/1.1 transport: the SDK builds, signs and parses every
 * request; this sends it and hands back the response, on keep-alive
 * connections that read into one fixed buffer each and send file bodies
 * from a few reused buffers.
 *
 * Why not the SDK's own handler (node:http): every socket read there is a
 * new 64 KiB Buffer, so a body streams as garbage that V8 collects only once
 * tens of MB of it have piled up (its external-memory trigger). Measured
 * here with a plain loop of GETs of 551 MB, nothing else done: node:http
 * peaked at 108-121 MB RSS against 65 MB before the first byte, and took
 * 4.0-4.5 s; reading into a fixed buffer (net's `onread`) peaked at 68-69 MB
 * and took 3.1-3.2 s. A pack restore and a pack upload move every stored
 * byte through here, so that is most of chunkpoint's peak RSS on S3.
 *
 * Bodies: a response body is a `ResponseBody`, a Readable for the SDK (error
 * documents, small objects, listings) that the store's pack reader drains
 * with `readInto`, straight into its own memory. A request body that is a
 * `FileBody` (a spooled pack) is sent from the file through reused buffers;
 * other bodies (strings, buffers, streams) are written as they come.
 *
 * Errors carry what node:http's carry (a `code` such as ECONNRESET, name
 * 'TimeoutError' or 'AbortError'), so errors.ts classifies them the same way.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';

/** The shapes of the SDK's HttpRequest/HttpResponse (@smithy/types) this transport uses. */
export interface SdkHttpRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number | undefined;
  path: string;
  query?: Record<string, string | string[] | null> | undefined;
  fragment?: string | undefined;
  headers: Record<string, string>;
  body?: unknown;
}

export interface SdkHttpResponse {
  statusCode: number;
  reason?: string;
  headers: Record<string, string>;
  body: ResponseBody;
}

export interface HttpOptions {
  /** Deadline to connect. */
  connectionTimeoutMs: number;
  /** Deadline for the response to start, and for any silence on a connection while a request uses it. */
  requestTimeoutMs: number;
  /** Connections per host (requests beyond wait for one). */
  maxSockets?: number;
  /** More TLS options (e.g. a `ca` to trust); Node's defaults otherwise, NODE_EXTRA_CA_CERTS included. */
  tls?: ConnectionOptions;
}

/** One socket read at most; also what a connection holds back while its reader is busy. */
const READ_BUFFER = 64 * 1024;
/** Response heads larger than this are refused (S3's are a few hundred bytes). */
const MAX_HEAD = READ_BUFFER;
/** File bodies go out in pieces of this size, two per request, from a shared free list. */
const SEND_PIECE = 256 * 1024;
/** Idle connections are closed after this long (servers close theirs after 5 s or more). */
const IDLE_MS = 4_000;
/** How long a request with `Expect: 100-continue` waits for the interim response before sending its body anyway. */
const CONTINUE_WAIT_MS = 1_000;

/** A request body sent from a file, `length` bytes from its start (a spooled pack). Replayable: each send reads the file again. */
export class FileBody extends Readable {
  private handle: FileHandle | undefined;
  private at = 0;

  constructor(
    readonly path: string,
    readonly length: number,
  ) {
    super();
  }

  // The stream form, for any other transport: plain reads, new buffers.
  override _read(size: number): void {
    void (async () => {
      this.handle ??= await open(this.path, constants.O_RDONLY);
      const want = Math.min(size, this.length - this.at);
      if (want <= 0) {
        this.push(null);
        return;
      }
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.handle.read(buf, 0, want, this.at);
      if (bytesRead === 0) throw httpError(`${this.path} ended at ${this.at} of ${this.length} bytes`, 'EIO');
      this.at += bytesRead;
      this.push(buf.subarray(0, bytesRead));
    })().catch((error: unknown) => this.destroy(error as Error));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = undefined;
    void (handle?.close() ?? Promise.resolve()).then(
      () => callback(error),
      () => callback(error),
    );
  }
}

const freePieces: Buffer[] = [];
const KEEP_PIECES = 8;

function takePiece(): Buffer {
  return freePieces.pop() ?? Buffer.allocUnsafeSlow(SEND_PIECE);
}

function givePiece(buf: Buffer): void {
  if (freePieces.length < KEEP_PIECES) freePieces.push(buf);
}

function httpError(message: string, code: string, name?: string): Error {
  const error = Object.assign(new Error(message), { code });
  if (name !== undefined) error.name = name;
  return error;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  const error = httpError(reason instanceof Error ? reason.message : 'Request aborted', 'ABORT_ERR', 'AbortError');
  if (reason !== undefined) (error as Error & { cause?: unknown }).cause = reason;
  return error;
}

/** RFC 3986 encoding, as the SDK's signer canonicalizes the query. */
function escapeUri(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function queryString(query: SdkHttpRequest['query']): string {
  if (query === undefined) return '';
  const parts: string[] = [];
  for (const key of Object.keys(query).sort()) {
    const value = query[key];
    if (Array.isArray(value)) for (const v of value) parts.push(`${escapeUri(key)}=${escapeUri(v)}`);
    else parts.push(value === null || value === undefined ? escapeUri(key) : `${escapeUri(key)}=${escapeUri(value)}`);
  }
  return parts.join('&');
}

function checkHeader(name: string, value: string): void {
  if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw httpError(`HTTP header ${JSON.stringify(name)} holds a line break`, 'ERR_INVALID_CHAR');
}

type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked'; state: ChunkState } | { kind: 'close' };
interface ChunkState {
  /** 'size': reading a size line; 'data': `left` bytes of a chunk; 'crlf': the line end after a chunk; 'trailer': trailer lines until an empty one. */
  phase: 'size' | 'data' | 'crlf' | 'trailer';
  left: number;
  line: string;
}

/** A response body: filled by its connection, read by `readInto` (one copy, into the caller's memory) or as a stream. */
export class ResponseBody extends Readable {
  /** Body bytes that arrived while the reader was not ready (at most one socket read: the socket is paused meanwhile). */
  private held: Buffer | undefined;
  private heldAt = 0;
  private heldEnd = 0;
  private complete = false;
  private failure: Error | undefined;
  private waiting: { into: Uint8Array; filled: number; resolve: (n: number) => void; reject: (error: Error) => void } | undefined;
  private streaming = false;

  constructor(private readonly conn: Connection) {
    super();
  }

  /** Fills `into` from the body; fewer bytes only at its end (0 once it has ended). */
  readInto(into: Uint8Array): Promise<number> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const filled = this.drainHeld(into);
    if (filled === into.byteLength || this.complete) return Promise.resolve(filled);
    return new Promise<number>((resolve, reject) => {
      this.waiting = { into, filled, resolve, reject };
      this.conn.resumeBody(this);
    });
  }

  /** From the connection: body bytes, valid only during the call. Returns whether the connection may read on. */
  deliver(bytes: Uint8Array): boolean {
    let at = 0;
    const w = this.waiting;
    if (w !== undefined) {
      at = Math.min(bytes.byteLength, w.into.byteLength - w.filled);
      w.into.set(bytes.subarray(0, at), w.filled);
      w.filled += at;
      if (w.filled === w.into.byteLength) {
        this.waiting = undefined;
        w.resolve(w.filled);
      }
    }
    if (at === bytes.byteLength) return this.waiting !== undefined || this.streaming;
    if (this.streaming) {
      this.streaming = this.push(Buffer.from(bytes.subarray(at)));
      return this.streaming;
    }
    // Held in the connection's buffer: nothing else uses it until this body is whole (see `end`).
    // It never overflows: the socket pauses after a read that left bytes here and resumes only once
    // they are all taken, so they are at most one socket read (a Uint8Array.set past the end would throw).
    const rest = bytes.subarray(at);
    this.held ??= this.conn.holdBuffer();
    this.held.set(rest, this.heldEnd);
    this.heldEnd += rest.byteLength;
    return false;
  }

  /** From the connection: the body is whole; the connection may serve another request from now on. */
  end(): void {
    this.complete = true;
    // What is still held moves out of the connection's buffer, which the next request reuses.
    if (this.held !== undefined) this.held = this.heldAt < this.heldEnd ? Buffer.from(this.held.subarray(this.heldAt, this.heldEnd)) : undefined;
    this.heldEnd -= this.heldAt;
    this.heldAt = 0;
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve(w.filled);
    if (this.streaming) this.flushToStream();
  }

  /** From the connection: the body will not be whole. */
  fail(error: Error): void {
    if (this.complete) return;
    this.failure = error;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(error);
    if (this.streaming) this.destroy(error);
  }

  private drainHeld(into: Uint8Array): number {
    if (this.held === undefined || this.heldAt === this.heldEnd) return 0;
    const n = Math.min(this.heldEnd - this.heldAt, into.byteLength);
    into.set(this.held.subarray(this.heldAt, this.heldAt + n), 0);
    this.heldAt += n;
    if (this.heldAt === this.heldEnd) {
      this.heldAt = this.heldEnd = 0;
      this.conn.resumeBody(this);
    }
    return n;
  }

  private flushToStream(): void {
    if (this.held !== undefined && this.heldAt < this.heldEnd) {
      const bytes = Buffer.from(this.held.subarray(this.heldAt, this.heldEnd));
      this.heldAt = this.heldEnd = 0;
      this.push(bytes);
    }
    if (this.complete) this.push(null);
  }

  override _read(): void {
    if (this.failure !== undefined) {
      this.destroy(this.failure);
      return;
    }
    this.streaming = true;
    this.flushToStream();
    if (!this.complete) this.conn.resumeBody(this);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.waiting?.reject(error ?? httpError('response body closed before it was read', 'ERR_STREAM_DESTROYED'));
    this.waiting = undefined;
    // A body left before its end leaves its connection out of step: it goes.
    if (!this.complete) this.conn.destroy(httpError('response body closed before its end', 'ECONNRESET'));
    callback(error);
  }
}

interface Exchange {
  request: SdkHttpRequest;
  method: string;
  resolve: (response: SdkHttpResponse) => void;
  reject: (error: Error) => void;
  /** Whether any response byte arrived: a kept-alive connection that fails before one may be retried fresh. */
  answered: boolean;
  /** Called on the interim 100 or a final response, for `Expect: 100-continue`. */
  onContinue?: () => void;
  body?: ResponseBody;
  bodyDone: boolean;
  requestSent: boolean;
}

interface ConnectionEvents {
  /** The exchange is over and the connection can carry another. */
  idle(conn: Connection): void;
  /** The connection is closed. */
  gone(conn: Connection): void;
}

/** One keep-alive connection: one exchange at a time, reading into one fixed buffer. */
class Connection {
  private readonly socket: Socket;
  private readonly secure: boolean;
  private readonly readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER);
  private held: Buffer | undefined;
  private head: Buffer | undefined;
  private headLength = 0;
  private framing: Framing = { kind: 'none' };
  private keepAlive = false;
  private exchange: Exchange | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Paused because the body's reader is not ready (silence then is not the server's). */
  private pausedByBody = false;
  private pauseAfterRead = false;
  private lastError: Error | undefined;
  /** Requests this connection has carried. */
  uses = 0;
  closed = false;

  constructor(
    private readonly origin: string,
    url: { protocol: string; hostname: string; port: number },
    private readonly options: HttpOptions,
    private readonly events: ConnectionEvents,
  ) {
    const onread = { buffer: this.readBuffer, callback: (n: number): boolean => this.onData(n) };
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.secure = url.protocol === 'https:';
    // tls.connect takes net's `onread` too (Node >= 15), though its typings do not say so.
    this.socket = this.secure
      ? connectTls({ ...options.tls, host, port: url.port, servername: host, ALPNProtocols: ['http/1.1'], onread } as ConnectionOptions)
      : connectTcp({ host, port: url.port, onread, noDelay: true });
    this.socket.setTimeout(options.connectionTimeoutMs);
    this.socket.on('timeout', () => {
      if (this.socket.connecting) this.destroy(httpError(`could not connect to ${origin} within ${options.connectionTimeoutMs} ms`, 'ETIMEDOUT', 'TimeoutError'));
      else if (this.exchange !== undefined && !this.pausedByBody) this.destroy(httpError(`no data from ${origin} for ${options.requestTimeoutMs} ms`, 'ETIMEDOUT', 'TimeoutError'));
    });
    this.socket.on('error', (error) => this.destroy(error));
    this.socket.on('end', () => {
      // A body framed by the connection's end ends with it.
      if (this.framing.kind === 'close') this.finishBody();
      this.destroy(httpError(`${origin} closed the connection`, 'ECONNRESET'));
    });
    this.socket.on('close', () => this.destroy(httpError(`${origin} closed the connection`, 'ECONNRESET')));
  }

  ready(): Promise<void> {
    if (this.closed) return Promise.reject(this.lastError ?? httpError(`cannot connect to ${this.origin}`, 'ECONNREFUSED'));
    const event = this.secure ? 'secureConnect' : 'connect';
    if (!this.socket.connecting && !this.secure) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const ok = (): void => {
        this.socket.off('close', gone);
        this.socket.setTimeout(0);
        resolve();
      };
      const gone = (): void => {
        this.socket.off(event, ok);
        reject(this.lastError ?? httpError(`cannot connect to ${this.origin}`, 'ECONNREFUSED'));
      };
      this.socket.once(event, ok);
      this.socket.once('close', gone);
    });
  }

  /** The buffer a body holds back bytes in while its reader is busy. */
  holdBuffer(): Buffer {
    this.held ??= Buffer.allocUnsafeSlow(READ_BUFFER);
    return this.held;
  }

  rest(): void {
    this.exchange = undefined;
    this.socket.unref();
    this.idleTimer = setTimeout(() => this.destroy(httpError('idle', 'ECONNRESET'), true), IDLE_MS);
    this.idleTimer.unref();
  }

  wake(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.socket.ref();
  }

  /** Carries `exchange`: sends its request, then its response arrives through `onData`. */
  async send(exchange: Exchange): Promise<void> {
    this.exchange = exchange;
    this.uses += 1;
    this.headLength = 0;
    this.framing = { kind: 'none' };
    this.keepAlive = false;
    this.socket.setTimeout(this.options.requestTimeoutMs);
    const { request } = exchange;
    const query = queryString(request.query);
    const lines = [`${exchange.method} ${request.path === '' ? '/' : request.path}${query === '' ? '' : `?${query}`} HTTP/1.1`];
    const names = new Set<string>();
    let expectContinue = false;
    for (const [name, value] of Object.entries(request.headers)) {
      checkHeader(name, value);
      const lower = name.toLowerCase();
      names.add(lower);
      if (lower === 'expect' && value.toLowerCase() === '100-continue') expectContinue = true;
      lines.push(`${name}: ${value}`);
    }
    if (!names.has('host')) lines.push(`host: ${request.hostname}${request.port === undefined ? '' : `:${request.port}`}`);
    const body = request.body ?? undefined;
    const fixed = typeof body === 'string' ? Buffer.from(body) : body instanceof Uint8Array ? body : undefined;
    const streamed = body !== undefined && fixed === undefined && !(body instanceof FileBody);
    if (streamed && !(typeof body === 'object' && Symbol.asyncIterator in body)) throw httpError(`cannot send a request body of type ${typeof body}`, 'ERR_INVALID_ARG_TYPE');
    const chunked = streamed && !names.has('content-length');
    if (!names.has('content-length')) {
      if (body instanceof FileBody) lines.push(`content-length: ${body.length}`);
      else if (fixed !== undefined) lines.push(`content-length: ${fixed.byteLength}`);
      else if (chunked && !names.has('transfer-encoding')) lines.push('transfer-encoding: chunked');
    }
    const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    if (fixed !== undefined && !expectContinue && fixed.byteLength <= SEND_PIECE) {
      await this.write(fixed.byteLength === 0 ? head : Buffer.concat([head, fixed]));
    } else {
      // Armed before the head goes out: the interim 100 can come back before the write's callback.
      const interim = expectContinue ? this.interim(exchange) : undefined;
      await this.write(head);
      if (interim !== undefined && !(await this.continued(exchange, interim))) return;
      if (body instanceof FileBody) await this.sendFile(body);
      else if (fixed !== undefined) await this.write(fixed);
      else if (streamed) {
        for await (const piece of body as AsyncIterable<Uint8Array | string>) {
          const bytes = typeof piece === 'string' ? Buffer.from(piece) : piece;
          if (bytes.byteLength === 0) continue;
          await this.write(chunked ? Buffer.concat([Buffer.from(`${bytes.byteLength.toString(16)}\r\n`, 'latin1'), bytes, Buffer.from('\r\n', 'latin1')]) : bytes);
        }
        if (chunked) await this.write(Buffer.from('0\r\n\r\n', 'latin1'));
      }
    }
    exchange.requestSent = true;
    if (exchange.bodyDone && this.exchange === exchange) this.release();
  }

  /** Resolves on the interim 100 or a final response, or after CONTINUE_WAIT_MS (servers that ignore Expect). */
  private interim(exchange: Exchange): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CONTINUE_WAIT_MS);
      exchange.onContinue = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Waits for `interim`; false when a final answer came first, so the body is not sent. */
  private async continued(exchange: Exchange, interim: Promise<void>): Promise<boolean> {
    await interim;
    if (exchange.body === undefined) return true;
    // Refused before the body (e.g. 412): the body stays unsent, so the connection cannot carry another request.
    this.keepAlive = false;
    exchange.requestSent = true;
    if (exchange.bodyDone && this.exchange === exchange) this.release();
    return false;
  }

  private async sendFile(body: FileBody): Promise<void> {
    const fh = await open(body.path, constants.O_RDONLY);
    const pieces = [takePiece(), takePiece()];
    try {
      let at = 0;
      let onWire: Promise<void> | undefined;
      for (let turn = 0; at < body.length; turn++) {
        const piece = pieces[turn % 2] as Buffer;
        const want = Math.min(piece.byteLength, body.length - at);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await fh.read(piece, got, want - got, at + got);
          if (bytesRead === 0) throw httpError(`${body.path} ended at ${at + got} of ${body.length} bytes`, 'EIO');
          got += bytesRead;
        }
        // The other piece is refilled only once it is on the wire.
        await onWire;
        onWire = this.write(piece.subarray(0, want));
        onWire.catch(() => undefined);
        at += want;
      }
      await onWire;
    } finally {
      await fh.close();
      for (const p of pieces) givePiece(p);
    }
  }

  private write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(this.lastError ?? httpError(`${this.origin} closed the connection`, 'ECONNRESET'));
        return;
      }
      this.socket.write(bytes, (error) => (error === undefined || error === null ? resolve() : reject(error)));
    });
  }

  /**
   * `body` is ready for more. Only the body of the exchange in progress can
   * resume the socket: a finished body's reader may still be draining what
   * it held back (a copy of its own) while the connection already carries
   * the next exchange, whose body paused it with bytes held; reading on then
   * would overrun that body's hold buffer.
   */
  resumeBody(body: ResponseBody): void {
    if (!this.pausedByBody || this.closed || this.exchange?.body !== body) return;
    this.pausedByBody = false;
    this.socket.resume();
  }

  private onData(n: number): boolean {
    const exchange = this.exchange;
    if (exchange === undefined) {
      this.destroy(httpError(`${this.origin} sent data outside a response`, 'ECONNRESET'));
      return false;
    }
    exchange.answered = true;
    let data: Buffer = this.readBuffer.subarray(0, n);
    try {
      while (data.byteLength > 0 && this.exchange === exchange) {
        data = exchange.body === undefined ? this.readHead(exchange, data) : this.readBody(exchange.body, data);
      }
      if (data.byteLength > 0) throw httpError(`${this.origin} sent data after a response`, 'ECONNRESET');
    } catch (error) {
      this.destroy(error as Error);
      return false;
    }
    if (this.pauseAfterRead) {
      this.pauseAfterRead = false;
      if (this.exchange === exchange && !exchange.bodyDone) {
        this.pausedByBody = true;
        return false;
      }
    }
    return true;
  }

  /** Consumes head bytes; returns what follows the head. */
  private readHead(exchange: Exchange, data: Buffer): Buffer {
    this.head ??= Buffer.allocUnsafeSlow(MAX_HEAD);
    const before = this.headLength;
    const take = Math.min(this.head.byteLength - before, data.byteLength);
    data.copy(this.head, before, 0, take);
    this.headLength += take;
    const end = this.head.subarray(0, this.headLength).indexOf('\r\n\r\n', Math.max(0, before - 3), 'latin1');
    if (end < 0) {
      if (this.headLength === this.head.byteLength) throw httpError(`${this.origin} sent a response head over ${MAX_HEAD} bytes`, 'HPE_HEADER_OVERFLOW');
      return data.subarray(take);
    }
    const rest = data.subarray(end + 4 - before);
    const text = this.head.toString('latin1', 0, end);
    this.headLength = 0;
    const [statusLine = '', ...headerLines] = text.split('\r\n');
    const status = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(statusLine);
    if (status === null) throw httpError(`${this.origin} sent a malformed status line ${JSON.stringify(statusLine.slice(0, 80))}`, 'HPE_INVALID_CONSTANT');
    const code = Number(status[2]);
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw httpError(`${this.origin} sent a malformed header line ${JSON.stringify(line.slice(0, 80))}`, 'HPE_INVALID_HEADER_TOKEN');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    if (code < 200) {
      exchange.onContinue?.();
      return rest;
    }
    const connection = (headers['connection'] ?? '').toLowerCase();
    this.keepAlive = status[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
    const length = headers['content-length'];
    if (exchange.method === 'HEAD' || code === 204 || code === 304) this.framing = { kind: 'none' };
    else if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) this.framing = { kind: 'chunked', state: { phase: 'size', left: 0, line: '' } };
    else if (length !== undefined) {
      if (!/^\d+$/.test(length)) throw httpError(`${this.origin} sent content-length ${JSON.stringify(length)}`, 'HPE_INVALID_CONTENT_LENGTH');
      this.framing = { kind: 'length', left: Number(length) };
    } else {
      this.framing = { kind: 'close' };
      this.keepAlive = false;
    }
    const body = new ResponseBody(this);
    exchange.body = body;
    exchange.onContinue?.();
    exchange.resolve({ statusCode: code, ...(status[3] === undefined ? {} : { reason: status[3] }), headers, body });
    if (this.framing.kind === 'none' || (this.framing.kind === 'length' && this.framing.left === 0)) this.finishBody();
    return rest;
  }

  /** Consumes body bytes; returns any after the body's end. */
  private readBody(body: ResponseBody, data: Buffer): Buffer {
    const f = this.framing;
    if (f.kind === 'length') {
      const n = Math.min(f.left, data.byteLength);
      this.give(body, data.subarray(0, n));
      f.left -= n;
      if (f.left === 0) this.finishBody();
      return data.subarray(n);
    }
    if (f.kind === 'close') {
      this.give(body, data);
      return data.subarray(data.byteLength);
    }
    if (f.kind === 'none') throw httpError(`${this.origin} sent data after a response`, 'ECONNRESET');
    const s = f.state;
    let at = 0;
    while (at < data.byteLength && this.framing === f) {
      if (s.phase === 'data') {
        const n = Math.min(s.left, data.byteLength - at);
        this.give(body, data.subarray(at, at + n));
        at += n;
        s.left -= n;
        if (s.left === 0) s.phase = 'crlf';
        continue;
      }
      const nl = data.indexOf(10, at);
      s.line += data.toString('latin1', at, nl < 0 ? data.byteLength : nl);
      at = nl < 0 ? data.byteLength : nl + 1;
      if (s.line.length > 4096) throw httpError(`${this.origin} sent a chunk line over 4096 bytes`, 'HPE_CHUNK_EXTENSIONS_OVERFLOW');
      if (nl < 0) break;
      const line = s.line.endsWith('\r') ? s.line.slice(0, -1) : s.line;
      s.line = '';
      if (s.phase === 'crlf') {
        if (line !== '') throw httpError(`${this.origin} sent bytes after a chunk's data`, 'HPE_INVALID_CHUNK_SIZE');
        s.phase = 'size';
      } else if (s.phase === 'size') {
        const size = /^([0-9a-fA-F]{1,12})(?:\s*;.*)?$/.exec(line);
        if (size === null) throw httpError(`${this.origin} sent a malformed chunk size ${JSON.stringify(line.slice(0, 40))}`, 'HPE_INVALID_CHUNK_SIZE');
        s.left = parseInt(size[1] as string, 16);
        s.phase = s.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.finishBody();
      }
    }
    return data.subarray(at);
  }

  private give(body: ResponseBody, bytes: Uint8Array): void {
    if (bytes.byteLength > 0 && !body.deliver(bytes)) this.pauseAfterRead = true;
  }

  private finishBody(): void {
    const exchange = this.exchange;
    if (exchange?.body === undefined || exchange.bodyDone) return;
    this.framing = { kind: 'none' };
    exchange.bodyDone = true;
    exchange.body.end();
    if (exchange.requestSent) this.release();
  }

  /** The exchange is over: the connection rests for the next one, or closes. */
  private release(): void {
    if (!this.keepAlive) {
      this.destroy(httpError('the response closed the connection', 'ECONNRESET'), true);
      return;
    }
    this.pauseAfterRead = false;
    if (this.pausedByBody) {
      this.pausedByBody = false;
      this.socket.resume();
    }
    this.socket.setTimeout(0);
    this.exchange = undefined;
    this.events.idle(this);
  }

  /** Closes the connection; an exchange on it fails with `error` unless its response is whole (or `quiet`). */
  destroy(error: Error, quiet = false): void {
    if (this.closed) return;
    this.closed = true;
    this.lastError = error;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.socket.destroy();
    const exchange = this.exchange;
    this.exchange = undefined;
    if (!quiet && exchange !== undefined) {
      if (exchange.body === undefined) exchange.reject(error);
      else exchange.body.fail(error);
    }
    this.events.gone(this);
  }
}

interface Origin {
  idle: Connection[];
  /** Connections open to it, idle or not. */
  open: number;
  waiters: (() => void)[];
}

/**
 * The transport, as the SDK's `requestHandler`: keep-alive connections per
 * origin, at most `maxSockets` each; requests beyond wait for one.
 */
export class FixedBufferHttpHandler {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  private readonly origins = new Map<string, Origin>();
  private readonly maxSockets: number;

  constructor(private readonly options: HttpOptions) {
    this.maxSockets = options.maxSockets ?? 64;
  }

  async handle(request: SdkHttpRequest, handlerOptions: { abortSignal?: unknown } = {}): Promise<{ response: SdkHttpResponse }> {
    // The SDK passes a standard AbortSignal (its own deprecated kind is not used by S3Client.send).
    const signal = handlerOptions.abortSignal instanceof AbortSignal ? handlerOptions.abortSignal : undefined;
    if (signal?.aborted === true) throw abortError(signal);
    const protocol = request.protocol.endsWith(':') ? request.protocol : `${request.protocol}:`;
    if (protocol !== 'http:' && protocol !== 'https:') throw httpError(`unsupported protocol '${request.protocol}'`, 'ERR_INVALID_PROTOCOL');
    const port = request.port ?? (protocol === 'https:' ? 443 : 80);
    const key = `${protocol}//${request.hostname}:${port}`;
    const body: unknown = request.body;
    const replayable = body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array || body instanceof FileBody;
    for (let attempt = 0; ; attempt++) {
      const conn = await this.acquire(key, { protocol, hostname: request.hostname, port }, signal);
      const reused = conn.uses > 0;
      try {
        return { response: await this.exchange(conn, request, signal) };
      } catch (error) {
        // A kept-alive connection the server closed meanwhile fails before any answer: once more, on a fresh one.
        const code = (error as { code?: unknown }).code;
        if (reused && replayable && attempt === 0 && (error as { unanswered?: boolean }).unanswered === true && (code === 'ECONNRESET' || code === 'EPIPE')) continue;
        throw error;
      }
    }
  }

  private exchange(conn: Connection, request: SdkHttpRequest, signal: AbortSignal | undefined): Promise<SdkHttpResponse> {
    return new Promise<SdkHttpResponse>((resolve, reject) => {
      const onAbort = (): void => conn.destroy(abortError(signal as AbortSignal));
      signal?.addEventListener('abort', onAbort, { once: true });
      const exchange: Exchange = {
        request,
        method: request.method.toUpperCase(),
        answered: false,
        bodyDone: false,
        requestSent: false,
        resolve: (response) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(response);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          if (!exchange.answered) Object.assign(error, { unanswered: true });
          reject(error);
        },
      };
      conn.send(exchange).catch((error: unknown) => conn.destroy(error instanceof Error ? error : new Error(String(error))));
    });
  }

  private async acquire(key: string, url: { protocol: string; hostname: string; port: number }, signal: AbortSignal | undefined): Promise<Connection> {
    let origin = this.origins.get(key);
    if (origin === undefined) {
      origin = { idle: [], open: 0, waiters: [] };
      this.origins.set(key, origin);
    }
    const o = origin;
    for (;;) {
      const idle = o.idle.pop();
      if (idle !== undefined) {
        idle.wake();
        return idle;
      }
      if (o.open < this.maxSockets) {
        o.open += 1;
        const conn = new Connection(key, url, this.options, {
          idle: (c) => {
            c.rest();
            o.idle.push(c);
            o.waiters.shift()?.();
          },
          gone: (c) => {
            o.open -= 1;
            const at = o.idle.indexOf(c);
            if (at >= 0) o.idle.splice(at, 1);
            o.waiters.shift()?.();
          },
        });
        await conn.ready();
        return conn;
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          const at = o.waiters.indexOf(wake);
          if (at >= 0) o.waiters.splice(at, 1);
          reject(abortError(signal as AbortSignal));
        };
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        o.waiters.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  updateHttpClientConfig(): void {
    // Configured once, at construction; the SDK's runtime updates (its logger, a default socket timeout) do not apply.
  }

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }

  /** Closes the idle connections (busy ones close when their exchange ends). */
  destroy(): void {
    for (const o of this.origins.values()) for (const conn of [...o.idle]) conn.destroy(httpError('the S3 client was destroyed', 'ECONNRESET'), true);
  }
}
