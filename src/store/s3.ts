/**
 * The S3 store: a job root is a key prefix in a bucket of AWS S3 or any
 * S3-compatible server (Ceph RADOS Gateway, MinIO…). A store key `k` is the
 * object `<prefix><k>`; docs/FORMAT.md has the mapping.
 *
 * How each `Store` promise is kept on S3:
 * - put-if-absent is a PUT with `If-None-Match: *`, which the server checks
 *   atomically (412 → 'exists'): two writers racing for one `chk-<n>/_metadata`
 *   get exactly one winner. A single PUT is atomic, so readers never see a
 *   partial object.
 * - Packs are spooled to a private local file while they are built and go
 *   up as one PUT (put-if-absent) when finished: memory stays one buffer per
 *   writer whatever the pack size, and a failed PUT is resent from the file.
 * - Objects of MULTIPART_THRESHOLD bytes or more go up as a multipart upload
 *   (a failed part is resent alone; aborted on failure). The ETag that
 *   CompleteMultipartUpload returns is never used: RGW 16.2 returns it empty.
 *   If-None-Match on CompleteMultipartUpload is honoured by AWS S3 but ignored
 *   by RGW 16.2 (measured), so there a large put-if-absent checks for the key
 *   first. Packs are named uniquely by their writer, so no two writers ever
 *   race for one pack key; see FORMAT.md.
 * - Reads of pack ranges stream the response body into the caller's scratch
 *   memory; every request has a deadline (DEFAULT_REQUEST_TIMEOUT_MS for the
 *   response to start and for any silence on the connection), so a stalled
 *   server becomes a transient error, never a hang.
 * - Deletes are batched, up to 1,000 keys per DeleteObjects request
 *   (per-object deletes made Flink checkpoints on S3 slow, FLINK-17988).
 * - Leftovers of interrupted writes are incomplete multipart uploads; they
 *   are listed under a reserved `.tmp-upload.` key form that `delete` aborts.
 * - Names need no syncing: an object is durable when its PUT returns.
 *
 * Checksums: `requestChecksumCalculation` / `responseChecksumValidation` are
 * 'WHEN_REQUIRED' because RGW 16.2 does not understand the SDK's default
 * flexible checksums. Integrity does not depend on them: every blob and every
 * `_metadata` carries its own hash and is verified on read.
 *
 * Retries: the SDK makes a single attempt (`maxAttempts: 1`); failures are
 * classified here (`details.transient`) and retried by `RetryingStore`, so
 * the policy lives in one place (store/retry.ts).
 *
 * The SDK is imported on first use, so directory-store users never load it.
 */
import type * as Sdk from '@aws-sdk/client-s3';
import { createReadStream, rmSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { isMainThread } from 'node:worker_threads';
import { ChunkpointError, CorruptDataError, InvalidInputError, StoreUnavailableError, errnoOf } from '../errors.js';
import { checkJobId, parseStoreKey, printable, unsafeNameReason } from '../format/names.js';
import { readAt } from '../file-range.js';
import { parseDuration } from '../units.js';
import { notFound } from './not-found.js';
import type { S3StoreSpec } from './spec.js';
import type { ByteRange, IncompleteWrite, ObjectInfo, ObjectReader, ObjectWriter, PublishOptions, PutOptions, PutResult, StagedObject, Store } from './store.js';

/** Objects at least this large are uploaded in parts (above the default pack size: a pack is one PUT). */
export const MULTIPART_THRESHOLD = 64 * 1024 * 1024;
/** Part size of multipart uploads (S3's minimum is 5 MiB for all but the last part). */
export const PART_SIZE = 16 * 1024 * 1024;
/** Parts of one object in flight at once. */
const PART_CONCURRENCY = 2;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;
/** Default deadline of one request (until its response starts) and of any silence on its connection. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Basename prefix of listed incomplete uploads: `<dir>/.tmp-upload.<base64url uploadId>.<basename>`. */
const UPLOAD_MARKER = '.tmp-upload.';

/** Rejects store keys that could address something outside the job root (same rule as the fs store). */
function checkKey(key: string): string {
  const reason = unsafeNameReason(key);
  if (reason !== undefined) throw new CorruptDataError('UNSAFE_PATH', `store key '${printable(key)}' is refused because ${reason}`);
  return key;
}

let spoolRoot: Promise<string> | undefined;
const SPOOL_PREFIX = 'chunkpoint-spool-';
/** All threads of a process spool into one directory named by its pid, so the process can remove it when it exits. */
const SPOOL_PATH = join(tmpdir(), `${SPOOL_PREFIX}${process.pid}`);
if (isMainThread) process.once('exit', () => rmSync(SPOOL_PATH, { recursive: true, force: true }));

/**
 * This process's private directory for spooled packs. The name is
 * predictable, and the temp directory is everyone's: a directory someone
 * else made there (or a link) is never used; a private mkdtemp one is, and
 * is left behind. Spool directories of processes that are gone (killed
 * mid-snapshot, with up to a pack in each file) are removed on the way.
 */
function spoolDir(): Promise<string> {
  spoolRoot ??= (async () => {
    await mkdir(SPOOL_PATH, { mode: 0o700 }).catch((error: unknown) => {
      if (errnoOf(error) !== 'EEXIST') throw error;
    });
    const st = await lstat(SPOOL_PATH);
    const mine = st.isDirectory() && (process.getuid === undefined || st.uid === process.getuid()) && (st.mode & 0o077) === 0;
    void removeDeadSpools();
    return mine ? SPOOL_PATH : mkdtemp(join(tmpdir(), SPOOL_PREFIX));
  })();
  return spoolRoot;
}

async function removeDeadSpools(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = /^chunkpoint-spool-(\d+)$/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || alive(Number(pid))) continue;
    const path = join(tmpdir(), name);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory() === true && (process.getuid === undefined || st.uid === process.getuid())) await rm(path, { recursive: true, force: true }).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoOf(error) !== 'ESRCH';
  }
}

/** How an S3 job root is named in messages (a worker's relayed store names it the same way). */
export function s3Location(spec: { bucket: string; prefix: string }): string {
  return `s3://${spec.bucket}/${spec.prefix.replace(/\/$/, '')}`;
}

export class S3Store implements Store {
  readonly spec: S3StoreSpec;
  readonly location: string;
  private readonly bucket: string;
  private readonly root: string;
  private connection: Promise<{ sdk: typeof Sdk; client: Sdk.S3Client }> | undefined;

  constructor(spec: S3StoreSpec) {
    this.spec = spec;
    this.bucket = spec.bucket;
    this.root = spec.prefix;
    this.location = s3Location(spec);
  }

  private connect(): Promise<{ sdk: typeof Sdk; client: Sdk.S3Client }> {
    this.connection ??= import('@aws-sdk/client-s3').then((sdk) => {
      const timeout = this.spec.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
      const client = new sdk.S3Client({
        region: this.spec.region ?? DEFAULT_REGION,
        ...(this.spec.endpoint === undefined ? {} : { endpoint: this.spec.endpoint }),
        forcePathStyle: this.spec.forcePathStyle ?? false,
        maxAttempts: 1,
        // Failures are reported by this store, classified; the SDK's own console warnings (e.g. on every
        // refused conditional PUT of a streamed body) would only repeat them on stderr.
        logger: SILENT,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        // One round trip per pack saved: the server answers a PUT it refuses just as well after the body.
        expectContinueHeader: this.spec.expectContinue ?? false,
        // A stalled server must become a (retried) error, never a hang: a deadline for the
        // response to start, and one for any silence on the connection (a body that stops).
        requestHandler: {
          connectionTimeout: Math.min(timeout, 10_000),
          requestTimeout: timeout,
          socketTimeout: timeout,
          throwOnRequestTimeout: true,
          // Keep-alive connections, enough for every request a restore keeps in flight.
          httpAgent: { keepAlive: true, maxSockets: 64 },
          httpsAgent: { keepAlive: true, maxSockets: 64 },
        },
      });
      return { sdk, client };
    });
    return this.connection;
  }

  private objectKey(key: string): string {
    return this.root + checkKey(key);
  }

  async put(key: string, parts: readonly Uint8Array[], options: PutOptions = {}): Promise<PutResult> {
    const objectKey = this.objectKey(key);
    const size = parts.reduce((sum, p) => sum + p.byteLength, 0);
    const body = parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts, size);
    if (size >= MULTIPART_THRESHOLD) return this.putMultipart(key, objectKey, size, (offset, length) => Promise.resolve(body.subarray(offset, offset + length)), options);
    return this.putObject(key, objectKey, body, size, options);
  }

  private async putObject(key: string, objectKey: string, body: Uint8Array | Readable, size: number, options: PutOptions): Promise<PutResult> {
    const { sdk, client } = await this.connect();
    try {
      await client.send(
        new sdk.PutObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          Body: body,
          ContentLength: size,
          ...(options.ifAbsent === true ? { IfNoneMatch: '*' } : {}),
        }),
      );
      return 'created';
    } catch (error) {
      if (options.ifAbsent === true && isConditionFailure(error)) return 'exists';
      throw this.failure('put', key, error);
    }
  }

  /** `part(offset, length)` supplies the bytes of each part (from memory or a spool file). */
  private async putMultipart(key: string, objectKey: string, size: number, part: (offset: number, length: number) => Promise<Uint8Array>, options: PutOptions): Promise<PutResult> {
    if (options.ifAbsent === true && (await this.stat(key)) !== undefined) return 'exists';
    const { sdk, client } = await this.connect();
    let uploadId: string | undefined;
    try {
      uploadId = (await client.send(new sdk.CreateMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey }))).UploadId;
      if (uploadId === undefined) throw new Error('CreateMultipartUpload returned no UploadId');
      const id = uploadId;
      const count = Math.ceil(size / PART_SIZE);
      const etags = new Array<string>(count);
      await forEachLimited(count, PART_CONCURRENCY, async (index) => {
        const offset = index * PART_SIZE;
        const body = await part(offset, Math.min(PART_SIZE, size - offset));
        const out = await client.send(
          new sdk.UploadPartCommand({ Bucket: this.bucket, Key: objectKey, UploadId: id, PartNumber: index + 1, Body: body, ContentLength: body.byteLength }),
        );
        if (out.ETag === undefined || out.ETag === '') throw new Error(`UploadPart ${index + 1} returned no ETag`);
        etags[index] = out.ETag;
      });
      await client.send(
        new sdk.CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          UploadId: id,
          MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
          ...(options.ifAbsent === true ? { IfNoneMatch: '*' } : {}),
        }),
      );
      // The response's ETag is deliberately ignored (empty on RGW 16.2).
      return 'created';
    } catch (error) {
      if (uploadId !== undefined) {
        // Best effort: a leftover upload is listed by listIncomplete and aborted by gc.
        await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId })).catch(() => undefined);
      }
      if (options.ifAbsent === true && isConditionFailure(error)) return 'exists';
      throw this.failure('put (multipart)', key, error);
    }
  }

  /**
   * A pack is spooled to a private local file as it is built and sent as one
   * PUT (put-if-absent) when finished: memory stays one buffer per writer,
   * the PUT knows its length up front, and a failed PUT is resent from the
   * file. Objects of MULTIPART_THRESHOLD or more go up in parts.
   */
  async createWriter(key: string): Promise<ObjectWriter> {
    const objectKey = this.objectKey(key);
    const path = join(await spoolDir(), `${Math.random().toString(36).slice(2)}-${key.replace(/\//g, '_')}`);
    let fh: FileHandle | undefined = await open(path, 'wx', 0o600);
    let size = 0;
    let staged: StagedObject | undefined;
    const putObject = this.putObject.bind(this);
    const putMultipart = this.putMultipart.bind(this);
    const closeSpool = async (): Promise<void> => {
      const handle = fh;
      fh = undefined;
      await handle?.close();
    };
    return {
      key,
      get size() {
        return size;
      },
      async write(parts) {
        if (fh === undefined) throw new Error(`internal: write to a finished writer of ${key}`);
        const handle = fh;
        for (const part of parts) {
          let done = 0;
          while (done < part.byteLength) done += (await handle.write(part, done, part.byteLength - done, size + done)).bytesWritten;
          size += part.byteLength;
        }
      },
      async finish() {
        if (staged !== undefined) return staged;
        await closeSpool();
        let published: PutResult;
        if (size >= MULTIPART_THRESHOLD) {
          const reader = await open(path, 'r');
          try {
            published = await putMultipart(key, objectKey, size, async (offset, length) => {
              const buf = Buffer.allocUnsafe(length);
              await readAt(reader, buf, offset);
              return buf;
            }, { ifAbsent: true });
          } finally {
            await reader.close();
          }
        } else {
          const body = createReadStream(path);
          try {
            published = await putObject(key, objectKey, body, size, { ifAbsent: true });
          } finally {
            body.destroy();
          }
        }
        await rm(path, { force: true });
        staged = { key, token: '', size, published };
        return staged;
      },
      async abort() {
        await closeSpool();
        await rm(path, { force: true });
      },
    };
  }

  // An S3 object is durable once its PUT returned, so a writer's finish is its publish.
  publish(staged: readonly StagedObject[], _options?: PublishOptions): Promise<PutResult[]> {
    const results: PutResult[] = [];
    for (const s of staged) {
      if (s.published === undefined) {
        return Promise.reject(new InvalidInputError('NOT_STAGED_HERE', `object '${s.key}' was not written by an S3 store; write and publish with the same store`));
      }
      results.push(s.published);
    }
    return Promise.resolve(results);
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const objectKey = this.objectKey(key);
    if (range !== undefined && range.length === 0) return Buffer.alloc(0);
    const { sdk, client } = await this.connect();
    try {
      const out = await client.send(
        new sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ...(range === undefined ? {} : { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` }),
        }),
      );
      if (out.Body === undefined) throw new Error('GetObject returned no body');
      const bytes = await out.Body.transformToByteArray();
      if (out.ContentLength !== undefined && bytes.byteLength !== out.ContentLength) {
        throw Object.assign(new Error(`response body ended after ${bytes.byteLength} of ${out.ContentLength} bytes`), { code: 'ECONNRESET' });
      }
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      if (statusOf(error) === 404 && s3CodeOf(error) !== 'NoSuchBucket') throw notFound(key, this.location);
      // A range starting at or past the end: zero bytes, as a short file read gives.
      if (statusOf(error) === 416) return Buffer.alloc(0);
      throw this.failure('get', key, error);
    }
  }

  /** One ranged GET whose body is copied into the caller's memory as it arrives. */
  async openReader(key: string, range?: ByteRange): Promise<ObjectReader> {
    const objectKey = this.objectKey(key);
    const empty: ObjectReader = { read: () => Promise.resolve(0), close: () => Promise.resolve() };
    if (range !== undefined && range.length === 0) return empty;
    const { sdk, client } = await this.connect();
    let body: Readable;
    let expected: number | undefined;
    try {
      const out = await client.send(
        new sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ...(range === undefined ? {} : { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` }),
        }),
      );
      if (out.Body === undefined) throw new Error('GetObject returned no body');
      body = out.Body as Readable;
      expected = out.ContentLength;
    } catch (error) {
      if (statusOf(error) === 404 && s3CodeOf(error) !== 'NoSuchBucket') throw notFound(key, this.location);
      if (statusOf(error) === 416) return empty;
      throw this.failure('get', key, error);
    }
    const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let pending: Buffer | undefined;
    let received = 0;
    let ended = false;
    const failure = (error: unknown): ChunkpointError => this.failure('get', key, error);
    return {
      async read(into) {
        let filled = 0;
        while (filled < into.byteLength) {
          if (pending === undefined || pending.byteLength === 0) {
            if (ended) break;
            let next: IteratorResult<Buffer>;
            try {
              next = await chunks.next();
            } catch (error) {
              throw failure(error);
            }
            if (next.done === true) {
              ended = true;
              if (expected !== undefined && received !== expected) {
                throw failure(Object.assign(new Error(`response body ended after ${received} of ${expected} bytes`), { code: 'ECONNRESET' }));
              }
              break;
            }
            pending = next.value;
            received += pending.byteLength;
          }
          const n = Math.min(pending.byteLength, into.byteLength - filled);
          into.set(pending.subarray(0, n), filled);
          pending = pending.subarray(n);
          filled += n;
        }
        return filled;
      },
      close() {
        body.destroy();
        return Promise.resolve();
      },
    };
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const objectKey = this.objectKey(key);
    const { sdk, client } = await this.connect();
    try {
      const out = await client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      return { key, size: out.ContentLength ?? 0 };
    } catch (error) {
      // HEAD responses have no body, so a missing bucket looks like a missing key here;
      // the listing every command starts with reports a missing bucket clearly.
      if (statusOf(error) === 404) return undefined;
      throw this.failure('stat', key, error);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const { sdk, client } = await this.connect();
    let token: string | undefined;
    do {
      let out: Sdk.ListObjectsV2CommandOutput;
      try {
        out = await client.send(
          new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.root + prefix, ...(token === undefined ? {} : { ContinuationToken: token }) }),
        );
      } catch (error) {
        throw this.failure('list', prefix, error);
      }
      for (const object of out.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.root)) continue;
        const key = object.Key.slice(this.root.length);
        // Folder markers (written by consoles) and anything not a valid store key are not objects of ours.
        if (key.endsWith('/') || unsafeNameReason(key) !== undefined || basename(key).startsWith(UPLOAD_MARKER)) continue;
        yield { key, size: object.Size ?? 0 };
      }
      token = out.IsTruncated === true ? out.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async *listIncomplete(prefix: string): AsyncIterable<IncompleteWrite> {
    const { sdk, client } = await this.connect();
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let out: Sdk.ListMultipartUploadsCommandOutput;
      try {
        out = await client.send(
          new sdk.ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.root + prefix,
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
          }),
        );
      } catch (error) {
        throw this.failure('list incomplete uploads', prefix, error);
      }
      for (const upload of out.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined || !upload.Key.startsWith(this.root)) continue;
        const target = upload.Key.slice(this.root.length);
        if (unsafeNameReason(target) !== undefined) continue;
        // The target's name carries its writer's time; an upload of anything else is not ours to judge.
        const parsed = parseStoreKey(target);
        const timeMs = parsed !== undefined && 'timeMs' in parsed ? parsed.timeMs : (upload.Initiated?.getTime() ?? 0);
        yield { key: uploadEntryKey(target, upload.UploadId), target, timeMs };
      }
      if (out.IsTruncated !== true || out.NextKeyMarker === undefined) return;
      keyMarker = out.NextKeyMarker;
      uploadIdMarker = out.NextUploadIdMarker;
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    const objects: string[] = [];
    const uploads: { key: string; objectKey: string; uploadId: string }[] = [];
    for (const key of keys) {
      const upload = parseUploadEntryKey(key);
      if (upload === undefined) objects.push(this.objectKey(key));
      else uploads.push({ key, objectKey: this.objectKey(upload.key), uploadId: upload.uploadId });
    }
    const { sdk, client } = await this.connect();
    for (let i = 0; i < objects.length; i += DELETE_BATCH) {
      const batch = objects.slice(i, i + DELETE_BATCH);
      let out: Sdk.DeleteObjectsCommandOutput;
      try {
        out = await client.send(new sdk.DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
      } catch (error) {
        throw this.failure('delete', batch[0]?.slice(this.root.length) ?? '', error);
      }
      // A 200 response can still report per-key failures.
      const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      const first = errors[0];
      if (first !== undefined) {
        const key = first.Key?.slice(this.root.length) ?? '?';
        const transient = errors.every((e) => TRANSIENT_CODES.has(e.Code ?? ''));
        throw new StoreUnavailableError(
          transient ? 'STORE_SERVER_ERROR' : 'STORE_S3',
          `S3 refused to delete ${errors.length} of ${batch.length} objects in ${this.location}, e.g. ${key}: ${first.Code ?? 'error'} ${first.Message ?? ''}`.trim(),
          { details: { where: `${this.location}/${key}`, operation: 'delete', s3Code: first.Code ?? '', transient } },
        );
      }
    }
    for (const upload of uploads) {
      try {
        await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.objectKey, UploadId: upload.uploadId }));
      } catch (error) {
        if (statusOf(error) === 404 && s3CodeOf(error) !== 'NoSuchBucket') continue; // already completed or aborted
        throw this.failure('abort upload', upload.key, error);
      }
    }
  }

  async syncNames(): Promise<void> {
    // Nothing to do: an S3 object and its name are durable once its PUT returned.
  }

  /** A job root exists once anything is under its prefix — objects, or only the incomplete uploads of a snapshot killed early (gc must reach those). */
  async exists(): Promise<boolean> {
    const { sdk, client } = await this.connect();
    try {
      const out = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.root, MaxKeys: 1 }));
      if ((out.KeyCount ?? out.Contents?.length ?? 0) > 0) return true;
      const uploads = await client.send(new sdk.ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.root, MaxUploads: 1 }));
      return (uploads.Uploads?.length ?? 0) > 0;
    } catch (error) {
      throw this.failure('list', '', error);
    }
  }

  /** Turns an SDK or network error into the error model, saying what to do; the original stays as `cause`. */
  private failure(operation: string, key: string, error: unknown): ChunkpointError {
    if (error instanceof ChunkpointError) return error;
    const where = key === '' ? this.location : `${this.location}/${key}`;
    const status = statusOf(error);
    const s3Code = s3CodeOf(error);
    const errno = errnoOf(error);
    const endpoint = this.spec.endpoint ?? `AWS S3 in ${this.spec.region ?? DEFAULT_REGION}`;
    const seen = status === undefined ? (errno ?? s3Code ?? 'error') : `HTTP ${status}${s3Code === undefined ? '' : ` ${s3Code}`}`;
    const details = { where, operation, status: status ?? 0, s3Code: s3Code ?? errno ?? '', transient: false };
    const make = (code: string, message: string, transient = false): StoreUnavailableError =>
      new StoreUnavailableError(code, message, { cause: error, details: { ...details, transient } });

    if (s3Code === 'CredentialsProviderError' || (error instanceof Error && error.name === 'CredentialsProviderError')) {
      return make('STORE_CREDENTIALS', `no AWS credentials found for ${operation} of ${where}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`);
    }
    if (s3Code === 'NoSuchBucket') {
      return make('STORE_NO_BUCKET', `bucket '${this.bucket}' does not exist at ${endpoint} (${operation} of ${where}); create it or fix the store URL`);
    }
    if (s3Code !== undefined && CREDENTIAL_CODES.has(s3Code)) {
      return make('STORE_CREDENTIALS', `${endpoint} rejected the credentials (${seen}) for ${operation} of ${where}; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`);
    }
    if (status === 403) {
      return make('STORE_ACCESS_DENIED', `access denied (${seen}) for ${operation} of ${where}; check that the credentials may read and write bucket '${this.bucket}'`);
    }
    if (status === 301 || s3Code === 'PermanentRedirect' || s3Code === 'AuthorizationHeaderMalformed') {
      return make('STORE_S3', `bucket '${this.bucket}' is not reachable as addressed (${seen}) for ${operation} of ${where}; check AWS_REGION and AWS_ENDPOINT_URL`);
    }
    if (errno === 'ENOTFOUND') {
      return make('STORE_UNREACHABLE', `cannot resolve the host of ${endpoint} (ENOTFOUND) for ${operation} of ${where}; check AWS_ENDPOINT_URL`);
    }
    if ((errno !== undefined && TRANSIENT_ERRNOS.has(errno)) || (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError'))) {
      return make('STORE_UNREACHABLE', `connection to ${endpoint} failed (${seen}) during ${operation} of ${where}; check that the server runs and AWS_ENDPOINT_URL`, true);
    }
    if (status === 429 || status === 503 || (s3Code !== undefined && THROTTLE_CODES.has(s3Code))) {
      return make('STORE_THROTTLED', `${endpoint} is throttling requests (${seen}) during ${operation} of ${where}; lower --threads or retry later`, true);
    }
    if ((status !== undefined && status >= 500) || (s3Code !== undefined && TRANSIENT_CODES.has(s3Code))) {
      return make('STORE_SERVER_ERROR', `${endpoint} failed (${seen}) during ${operation} of ${where}; retry later`, true);
    }
    const message = error instanceof Error && error.message !== '' && error.message !== 'UnknownError' ? `: ${error.message}` : '';
    return make('STORE_S3', `S3 ${operation} of ${where} failed (${seen})${message}`);
  }
}

const DEFAULT_REGION = 'us-east-1';
const SILENT = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const CREDENTIAL_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'InvalidClientTokenId']);
const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'TooManyRequestsException', 'RequestThrottled']);
/** Error codes S3 documents as "retry": server trouble, and RequestTimeout (a 400: the upload stalled). */
const TRANSIENT_CODES = new Set(['InternalError', 'ServiceUnavailable', 'RequestTimeout', 'OperationAborted', ...THROTTLE_CODES]);
const TRANSIENT_ERRNOS = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('$metadata' in error)) return undefined;
  const meta = (error as { $metadata?: { httpStatusCode?: unknown } }).$metadata;
  return typeof meta?.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
}

/** The S3 error code (NoSuchKey, SlowDown…); the SDK names the error after it, or 'Unknown' for bodiless responses. */
function s3CodeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { Code?: unknown }).Code;
  if (typeof code === 'string' && code !== '') return code;
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' && name !== 'Error' && name !== 'Unknown' ? name : undefined;
}

/** 412: the key exists. 409 ConditionalRequestConflict: a concurrent conditional write to the key is in progress — someone else is writing it. */
function isConditionFailure(error: unknown): boolean {
  const status = statusOf(error);
  return status === 412 || (status === 409 && s3CodeOf(error) === 'ConditionalRequestConflict');
}

function basename(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/** The key under which `listIncomplete` reports an incomplete multipart upload of `key`. */
export function uploadEntryKey(key: string, uploadId: string): string {
  const slash = key.lastIndexOf('/');
  return `${key.slice(0, slash + 1)}${UPLOAD_MARKER}${Buffer.from(uploadId, 'utf8').toString('base64url')}.${key.slice(slash + 1)}`;
}

function parseUploadEntryKey(entry: string): { key: string; uploadId: string } | undefined {
  const slash = entry.lastIndexOf('/');
  const base = entry.slice(slash + 1);
  if (!base.startsWith(UPLOAD_MARKER)) return undefined;
  const rest = base.slice(UPLOAD_MARKER.length);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) return undefined;
  return { key: `${entry.slice(0, slash + 1)}${rest.slice(dot + 1)}`, uploadId: Buffer.from(rest.slice(0, dot), 'base64url').toString('utf8') };
}

async function forEachLimited(count: number, limit: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (failure === undefined && next < count) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
  if (failure !== undefined) throw failure.error;
}

// ---- Locations: s3://bucket/prefix URLs and the AWS environment ----

export const S3_SCHEME = 's3://';

export function isS3Url(location: string): boolean {
  return location.slice(0, S3_SCHEME.length).toLowerCase() === S3_SCHEME;
}

/** Splits `s3://bucket/a/b` into the bucket and its checked path segments. */
export function parseS3Url(url: string): { bucket: string; segments: string[] } {
  const rest = url.slice(S3_SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
  // Bucket rules loose enough for legacy and RGW names, strict enough to keep URLs unambiguous.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(bucket)) {
    throw new InvalidInputError('INVALID_STORE', `'${printable(url)}' does not name a valid bucket; use s3://<bucket>/<prefix>, e.g. s3://my-bucket/checkpoints`);
  }
  if (path === '') return { bucket, segments: [] };
  const reason = unsafeNameReason(path);
  if (reason !== undefined) {
    throw new InvalidInputError('INVALID_STORE', `the key prefix of '${printable(url)}' is refused because ${reason}; use s3://<bucket>/<prefix>, e.g. s3://my-bucket/checkpoints`);
  }
  return { bucket, segments: path.split('/') };
}

/**
 * A job-root spec from a bucket, the job root's path segments, and the
 * environment. Endpoint: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (the
 * SDK's own variables). Region: AWS_REGION, else AWS_DEFAULT_REGION, else
 * us-east-1. Path-style: AWS_S3_FORCE_PATH_STYLE=true|false; unset, it is on
 * exactly when a custom endpoint is set, because self-hosted servers
 * (RGW, MinIO) are usually addressed by IP or a single host name that cannot
 * carry the bucket as a subdomain, while AWS itself prefers virtual-hosted.
 */
export function s3Spec(bucket: string, segments: readonly string[], env: NodeJS.ProcessEnv = process.env): S3StoreSpec {
  const endpoint = nonEmpty(env['AWS_ENDPOINT_URL_S3']) ?? nonEmpty(env['AWS_ENDPOINT_URL']);
  if (endpoint !== undefined && !/^https?:\/\/[^/]/i.test(endpoint)) {
    throw new InvalidInputError('INVALID_STORE', `AWS_ENDPOINT_URL '${printable(endpoint)}' is not an http(s) URL; set it like http://127.0.0.1:7480`);
  }
  const region = nonEmpty(env['AWS_REGION']) ?? nonEmpty(env['AWS_DEFAULT_REGION']) ?? DEFAULT_REGION;
  const pathStyleText = nonEmpty(env['AWS_S3_FORCE_PATH_STYLE'])?.toLowerCase();
  let forcePathStyle = endpoint !== undefined;
  if (pathStyleText !== undefined) {
    if (!['true', 'false', '1', '0'].includes(pathStyleText)) {
      throw new InvalidInputError('INVALID_STORE', `AWS_S3_FORCE_PATH_STYLE '${printable(pathStyleText)}' is not true or false`);
    }
    forcePathStyle = pathStyleText === 'true' || pathStyleText === '1';
  }
  const timeoutText = nonEmpty(env['CHUNKPOINT_S3_TIMEOUT']);
  let requestTimeoutMs: number | undefined;
  if (timeoutText !== undefined) {
    try {
      requestTimeoutMs = parseDuration(timeoutText, 'CHUNKPOINT_S3_TIMEOUT');
    } catch {
      requestTimeoutMs = Number.NaN;
    }
    if (!(requestTimeoutMs >= 100 && requestTimeoutMs <= 3_600_000)) {
      throw new InvalidInputError('INVALID_STORE', `CHUNKPOINT_S3_TIMEOUT '${printable(timeoutText)}' is not a duration from 100ms to 1h; set it like 30s`);
    }
  }
  return {
    type: 's3',
    bucket,
    prefix: segments.length === 0 ? '' : `${segments.join('/')}/`,
    ...(endpoint === undefined ? {} : { endpoint }),
    region,
    forcePathStyle,
    ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }),
  };
}

/** S3 refuses keys longer than this many bytes (UTF-8). */
export const S3_MAX_KEY_BYTES = 1024;
/** The longest key chunkpoint makes below a job root: `taskowned/<200-char task id>/<ULID>-<ULID>.pack`. */
export const LONGEST_OBJECT_NAME = 'taskowned/'.length + 200 + 1 + 26 + 1 + 26 + '.pack'.length;

/** Refuses, up front, a job root whose keys could pass S3's limit (rather than a bare "HTTP 400" mid-snapshot). */
export function checkKeyLength(spec: S3StoreSpec): S3StoreSpec {
  const prefixBytes = Buffer.byteLength(spec.prefix, 'utf8');
  if (prefixBytes + LONGEST_OBJECT_NAME > S3_MAX_KEY_BYTES) {
    throw new InvalidInputError(
      'KEY_TOO_LONG',
      `the job root s3://${spec.bucket}/${printable(spec.prefix)} makes keys too long for S3: its prefix (store prefix and job id) is ${prefixBytes} bytes, chunkpoint's longest object name below a job root is ${LONGEST_OBJECT_NAME} bytes (a pack of a task with a 200-character id), and S3 allows ${S3_MAX_KEY_BYTES} bytes per key; use a shorter store prefix or job id (at most ${S3_MAX_KEY_BYTES - LONGEST_OBJECT_NAME} bytes together)`,
      { details: { prefixBytes, limit: S3_MAX_KEY_BYTES } },
    );
  }
  return spec;
}

/** The job root `s3://bucket/prefix/<jobId>` of a store URL and a job id. */
export function s3JobRootSpec(storeUrl: string, jobId: string): S3StoreSpec {
  const { bucket, segments } = parseS3Url(storeUrl);
  return checkKeyLength(s3Spec(bucket, [...segments, checkJobId(jobId)]));
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
