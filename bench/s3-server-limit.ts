/**
 * What the S3 server itself serves, as a yardstick for chunkpoint's S3
 * phases: plain GetObject / PutObject of large objects through the same SDK
 * and transport (src/store/s3/http.ts), with the same number of requests in
 * flight, and nothing else done with the bytes (bodies read into one buffer
 * and dropped; uploads from one buffer in memory). CHUNKPOINT_S3_HTTP=node
 * uses the SDK's own node:http transport instead, as chunkpoint does. On this
 * machine the server shares the client's two cores, so this is the most any
 * client could get from it; issue #17 asks for 80% of it.
 *
 *   node dist/bench/s3-server-limit.js get <bucket> <prefix> <bytes> <in-flight>
 *     reads whole objects under <prefix> (a ranged read for the last one) until <bytes> were read
 *   node dist/bench/s3-server-limit.js put <bucket> <prefix> <bytes> <in-flight> <object size>
 *     writes <bytes> as objects of <object size> under <prefix>
 *
 * The server comes from the AWS_* environment (as for chunkpoint). Prints
 * one JSON line: {objects, bytes}.
 */
import { randomFillSync } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { forEachBounded } from '../src/bounded.js';
import { FixedBufferHttpHandler, ResponseBody } from '../src/store/s3/http.js';

function usage(message: string): never {
  process.stderr.write(`s3-server-limit: ${message}\nusage: s3-server-limit get <bucket> <prefix> <bytes> <in-flight> | put <bucket> <prefix> <bytes> <in-flight> <object size>\n`);
  process.exit(2);
}

function count(text: string | undefined, what: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) usage(`${what} must be a positive integer, got '${text ?? ''}'`);
  return n;
}

const [mode, bucket, prefix, bytesArg, inFlightArg, objectSizeArg] = process.argv.slice(2);
if ((mode !== 'get' && mode !== 'put') || bucket === undefined || prefix === undefined) usage('expected get or put, a bucket and a prefix');
const total = count(bytesArg, 'bytes');
const inFlight = count(inFlightArg, 'in-flight');
const client = new S3Client({
  region: process.env['AWS_REGION'] ?? 'us-east-1',
  forcePathStyle: true,
  maxAttempts: 1,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  requestHandler:
    process.env['CHUNKPOINT_S3_HTTP'] === 'node'
      ? { httpAgent: { keepAlive: true, maxSockets: 64 } }
      : new FixedBufferHttpHandler({ connectionTimeoutMs: 10_000, requestTimeoutMs: 30_000, maxSockets: 64 }),
});
const sink = Buffer.allocUnsafe(256 * 1024);

let objects = 0;
let moved = 0;
if (mode === 'get') {
  const reads: { key: string; length: number }[] = [];
  let wanted = total;
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      if (wanted === 0 || o.Key === undefined || o.Size === undefined || o.Size === 0) continue;
      const length = Math.min(o.Size, wanted);
      reads.push({ key: o.Key, length });
      wanted -= length;
    }
    token = page.NextContinuationToken;
  } while (token !== undefined && wanted > 0);
  if (wanted > 0) usage(`only ${total - wanted} bytes are stored under s3://${bucket}/${prefix}, fewer than the ${total} asked for`);
  await forEachBounded(reads, inFlight, async ({ key, length }) => {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${length - 1}` }));
    const body = out.Body as Readable;
    if (body instanceof ResponseBody) {
      for (let n = await body.readInto(sink); n > 0; n = await body.readInto(sink)) moved += n;
    } else {
      for await (const piece of body) moved += (piece as Buffer).byteLength;
    }
    objects++;
  });
} else {
  const objectSize = count(objectSizeArg, 'object size');
  const source = randomFillSync(Buffer.allocUnsafe(objectSize));
  const sizes: number[] = [];
  for (let left = total; left > 0; left -= objectSize) sizes.push(Math.min(objectSize, left));
  await forEachBounded(
    sizes.map((size, i) => ({ size, i })),
    inFlight,
    async ({ size, i }) => {
      // A stream body, as chunkpoint sends its packs: the SDK then sends UNSIGNED-PAYLOAD and the
      // server does not hash the body (a Buffer body would be signed, costing the server a SHA-256).
      const body = Readable.from([source.subarray(0, size)]);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${String(i).padStart(6, '0')}`, Body: body, ContentLength: size }));
      moved += size;
      objects++;
    },
  );
}
client.destroy();
process.stdout.write(`${JSON.stringify({ objects, bytes: moved })}\n`);
