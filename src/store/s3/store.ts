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
 *   up as one PUT (put-if-absent) when finished (spool.ts).
 * - Objects of MULTIPART_THRESHOLD bytes or more go up as a multipart upload
 *   (a failed part is resent alone; aborted on failure). The ETag that
 *   CompleteMultipartUpload returns is never used: RGW 16.2 returns it empty.
 *   If-None-Match on CompleteMultipartUpload is honoured by AWS S3 but ignored
 *   by RGW 16.2 (measured), so there a large put-if-absent checks for the key
 *   first. Packs are named uniquely by their writer, so no two writers ever
 *   race for one pack key; see FORMAT.md.
 * - Reads of pack ranges stream the response body into the caller's scratch
 *   memory; every request has a deadline (client.ts), so a stalled server
 *   becomes a transient error, never a hang.
 * - Deletes are batched, up to 1,000 keys per DeleteObjects request
 *   (per-object deletes made Flink checkpoints on S3 slow, FLINK-17988).
 * - Leftovers of interrupted writes are incomplete multipart uploads; they
 *   are listed under a reserved `.tmp-upload.` key form that `delete` aborts.
 * - Names need no syncing: an object is durable when its PUT returns.
 *
 * Which server, and how it is addressed, comes from the spec (location.ts);
 * how a failure is reported and whether it is retried, from errors.ts.
 */
import type * as Sdk from '@aws-sdk/client-s3';
import { open, rm, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { forEachBounded } from '../../bounded.js';
import { ChunkpointError, CorruptDataError, InvalidInputError } from '../../errors.js';
import { parseStoreKey, printable, unsafeNameReason } from '../../format/names.js';
import { readAt } from '../../file-range.js';
import { notFound } from '../not-found.js';
import type { S3StoreSpec } from '../spec.js';
import type { ByteRange, IncompleteWrite, ObjectInfo, ObjectReader, ObjectWriter, PublishOptions, PutOptions, PutResult, StagedObject, Store, WriterOptions } from '../store.js';
import { connectS3, type S3Connection } from './client.js';
import { isConditionFailure, isMissingKey, refusedDeletes, s3Failure, statusOf, truncatedBody } from './errors.js';
import { s3Location } from './location.js';
import { FileBody, ResponseBody } from './http.js';
import { createSpoolFile } from './spool.js';

/** Objects at least this large are uploaded in parts (above the default pack size: a pack is one PUT). */
export const MULTIPART_THRESHOLD = 64 * 1024 * 1024;
/** Part size of multipart uploads (S3's minimum is 5 MiB for all but the last part). */
export const PART_SIZE = 16 * 1024 * 1024;
/** Parts of one object in flight at once. */
const PART_CONCURRENCY = 2;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

/** Basename prefix of listed incomplete uploads: `<dir>/.tmp-upload.<base64url uploadId>.<basename>`. */
const UPLOAD_MARKER = '.tmp-upload.';

/** Rejects store keys that could address something outside the job root (same rule as the fs store). */
function checkKey(key: string): string {
  const reason = unsafeNameReason(key);
  if (reason !== undefined) throw new CorruptDataError('UNSAFE_PATH', `store key '${printable(key)}' is refused because ${reason}`);
  return key;
}

export class S3Store implements Store {
  readonly spec: S3StoreSpec;
  readonly location: string;
  private readonly bucket: string;
  private readonly root: string;
  private connection: Promise<S3Connection> | undefined;

  constructor(spec: S3StoreSpec) {
    this.spec = spec;
    this.bucket = spec.bucket;
    this.root = spec.prefix;
    this.location = s3Location(spec);
  }

  private connect(): Promise<S3Connection> {
    // A failure to load the SDK becomes this promise's rejection, as any other store failure.
    this.connection ??= Promise.resolve().then(() => connectS3(this.spec));
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
      await forEachBounded(etags.keys(), PART_CONCURRENCY, async (index) => {
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
  async createWriter(key: string, _options?: WriterOptions): Promise<ObjectWriter> {
    const objectKey = this.objectKey(key);
    const spool = await createSpoolFile(key);
    const path = spool.path;
    let fh: FileHandle | undefined = spool.handle;
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
          // Sent from the file through reused buffers (http.ts); a plain stream of it for any other transport.
          const body = new FileBody(path, size);
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

  /**
   * One ranged GetObject, its failures mapped once for `get` and
   * `openReader`: undefined for an empty range, or one starting at or past
   * the end (zero bytes, as a short file read gives).
   */
  private async getBody(key: string, range: ByteRange | undefined): Promise<{ body: NonNullable<Sdk.GetObjectCommandOutput['Body']>; length: number | undefined } | undefined> {
    if (range !== undefined && range.length === 0) return undefined;
    const objectKey = this.objectKey(key);
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
      return { body: out.Body, length: out.ContentLength };
    } catch (error) {
      if (isMissingKey(error)) throw notFound(key, this.location);
      if (statusOf(error) === 416) return undefined;
      throw this.failure('get', key, error);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const got = await this.getBody(key, range);
    if (got === undefined) return Buffer.alloc(0);
    try {
      const bytes = await got.body.transformToByteArray();
      if (got.length !== undefined && bytes.byteLength !== got.length) throw truncatedBody(bytes.byteLength, got.length);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      throw this.failure('get', key, error);
    }
  }

  /** One ranged GET whose body is copied into the caller's memory as it arrives. */
  async openReader(key: string, range?: ByteRange): Promise<ObjectReader> {
    const got = await this.getBody(key, range);
    if (got === undefined) return { read: () => Promise.resolve(0), close: () => Promise.resolve() };
    const body = got.body as Readable;
    const expected = got.length;
    let received = 0;
    const failure = (error: unknown): ChunkpointError => this.failure('get', key, error);
    const ended = (): number => {
      if (expected !== undefined && received !== expected) throw failure(truncatedBody(received, expected));
      return 0;
    };
    const close = (): Promise<void> => {
      body.destroy();
      return Promise.resolve();
    };
    if (body instanceof ResponseBody) {
      // The fixed-buffer transport: bytes go from its read buffer straight into `into`.
      return {
        async read(into) {
          let n: number;
          try {
            n = await body.readInto(into);
          } catch (error) {
            throw failure(error);
          }
          received += n;
          // Short only at the body's end: whole, or truncated.
          if (n < into.byteLength) ended();
          return n;
        },
        close,
      };
    }
    const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let pending: Buffer | undefined;
    let done = false;
    return {
      async read(into) {
        let filled = 0;
        while (filled < into.byteLength) {
          if (pending === undefined || pending.byteLength === 0) {
            if (done) break;
            let next: IteratorResult<Buffer>;
            try {
              next = await chunks.next();
            } catch (error) {
              throw failure(error);
            }
            if (next.done === true) {
              done = true;
              ended();
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
      close,
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
      const refused = refusedDeletes(this.location, this.root, batch.length, out.Errors ?? []);
      if (refused !== undefined) throw refused;
    }
    for (const upload of uploads) {
      try {
        await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.objectKey, UploadId: upload.uploadId }));
      } catch (error) {
        if (isMissingKey(error)) continue; // already completed or aborted
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

  private failure(operation: string, key: string, error: unknown): ChunkpointError {
    return s3Failure(this.spec, operation, key, error);
  }
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
