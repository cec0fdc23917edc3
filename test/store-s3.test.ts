/**
 * The S3 store against the store contract on a real S3 server (Ceph RGW,
 * started by test/s3-server.ts), plain and behind fault injection; its error
 * classification; and the parsing of s3:// locations and AWS variables.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { withFaults, type FaultSpec } from '../sim/faulty-store.js';
import { Chunkpoint } from '../src/index.js';
import { newId } from '../src/format/ids.js';
import { packKey } from '../src/format/names.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkpointError } from '../src/errors.js';
import { jobRootSpec, jobRootSpecFromLocation, openStore } from '../src/store/open.js';
import { RetryingStore } from '../src/store/retry.js';
import { s3Spec } from '../src/store/s3/location.js';
import { PART_SIZE, S3Store } from '../src/store/s3/store.js';
import type { S3StoreSpec } from '../src/store/spec.js';
import type { Store } from '../src/store/store.js';
import { StoreRelay } from '../src/store/relay.js';
import { isNotFound } from '../src/store/not-found.js';
import { adoptRelay, RelayedStore } from '../workers/relayed-store.js';
import { skipS3, startS3Server, TEST_BUCKET, type S3Server } from './s3-server.js';
import { storeCompliance, type ComplianceTarget } from './store-compliance.js';

const SEED = Number(process.env['CHUNKPOINT_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

describe('s3:// locations and the AWS environment', () => {
  it('maps store URL + job to bucket and prefix, with endpoint, region and path style from the environment', () => {
    const keys = ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_S3_FORCE_PATH_STYLE'];
    const saved = new Map(keys.map((k) => [k, process.env[k]]));
    try {
      for (const k of keys) delete process.env[k];
      expect(jobRootSpec('s3://bucket/checkpoints/prod', 'orders')).toEqual({ type: 's3', bucket: 'bucket', prefix: 'checkpoints/prod/orders/', region: 'us-east-1', forcePathStyle: false });
      expect(jobRootSpec('s3://bucket', 'orders')).toMatchObject({ bucket: 'bucket', prefix: 'orders/' });
      expect(jobRootSpec('S3://bucket/a/', 'orders')).toMatchObject({ bucket: 'bucket', prefix: 'a/orders/' });
      process.env['AWS_ENDPOINT_URL'] = 'http://127.0.0.1:7480';
      process.env['AWS_DEFAULT_REGION'] = 'eu-west-1';
      expect(jobRootSpec('s3://bkt/p', 'j')).toMatchObject({ endpoint: 'http://127.0.0.1:7480', region: 'eu-west-1', forcePathStyle: true });
      process.env['AWS_ENDPOINT_URL_S3'] = 'http://s3.internal:9000';
      process.env['AWS_REGION'] = 'ap-south-1';
      process.env['AWS_S3_FORCE_PATH_STYLE'] = 'false';
      expect(jobRootSpec('s3://bkt/p', 'j')).toMatchObject({ endpoint: 'http://s3.internal:9000', region: 'ap-south-1', forcePathStyle: false });
      expect(jobRootSpecFromLocation('s3://bkt/p/q/job-1')).toMatchObject({ bucket: 'bkt', prefix: 'p/q/job-1/' });
      expect(new S3Store(jobRootSpec('s3://bkt/p', 'j') as S3StoreSpec).location).toBe('s3://bkt/p/j');
      expect(openStore(jobRootSpec('s3://bkt/p', 'j'))).toBeInstanceOf(RetryingStore);
    } finally {
      // Key by key: assigning process.env a plain object would cut it off from the real environment,
      // which worker threads started later inherit.
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('refuses malformed locations with a message saying what to pass', () => {
    const codeOf = (fn: () => unknown): string => {
      try {
        fn();
        return 'no error';
      } catch (error) {
        expect(error).toBeInstanceOf(ChunkpointError);
        expect((error as Error).message).toMatch(/s3:\/\/|AWS_/);
        return (error as ChunkpointError).code;
      }
    };
    expect(codeOf(() => jobRootSpec('s3://', 'j'))).toBe('INVALID_STORE');
    expect(codeOf(() => jobRootSpec('s3://bkt/../etc', 'j'))).toBe('INVALID_STORE');
    expect(codeOf(() => jobRootSpec('s3://bkt//x', 'j'))).toBe('INVALID_STORE');
    expect(codeOf(() => jobRootSpecFromLocation('s3://bucket'))).toBe('INVALID_STORE');
    expect(codeOf(() => s3Spec('bkt', [], { AWS_ENDPOINT_URL: 'localhost:7480' }))).toBe('INVALID_STORE');
    expect(codeOf(() => s3Spec('bkt', [], { AWS_S3_FORCE_PATH_STYLE: 'maybe' }))).toBe('INVALID_STORE');
  });
});

describe.skipIf(skipS3('S3 store compliance and error tests (test/store-s3.test.ts)'))('S3 store on Ceph RGW', () => {
  let server: S3Server;
  let run = 0;

  beforeAll(async () => {
    server = await startS3Server();
  });

  afterAll(async () => {
    await server?.stop();
  });

  function s3Target(extra: Partial<S3StoreSpec> = {}, faults?: FaultSpec): ComplianceTarget {
    return {
      fresh() {
        const spec: S3StoreSpec = { ...s3Spec(TEST_BUCKET, ['compliance', `${Date.now()}-${run++}`, 'job']), ...extra };
        return Promise.resolve(openStore(faults === undefined ? spec : withFaults(spec, faults)));
      },
      async leaveIncompleteWrite(store: Store, key: string) {
        const spec = store.spec as S3StoreSpec;
        const Key = spec.prefix + key;
        const { UploadId } = await server.client.send(new CreateMultipartUploadCommand({ Bucket: spec.bucket, Key }));
        await server.client.send(new UploadPartCommand({ Bucket: spec.bucket, Key, UploadId, PartNumber: 1, Body: randomBytes(1000) }));
      },
      // Just over the multipart threshold: five parts, the last one short.
      largeObjectSize: 4 * PART_SIZE + 12345,
    };
  }

  storeCompliance('S3 (Ceph RGW)', () => s3Target());
  storeCompliance(`S3 (Ceph RGW), 15 % transient faults + retries (seed ${SEED}; replay with CHUNKPOINT_SEED=${SEED})`, () =>
    s3Target({ retry: { baseDelayMs: 5, maxDelayMs: 50, maxAttempts: 12 } }, { seed: SEED, transient: { '*': 0.15 } }),
  );

  describe('the worker relay (one isolate does the HTTP)', () => {
    const relay = new StoreRelay();
    afterAll(() => relay.close());

    it('relays ranged reads, streamed writes (finish idempotent), stat and delete; a missing object is still OBJECT_NOT_FOUND', async () => {
      adoptRelay(relay.connect());
      const spec = s3Spec(TEST_BUCKET, ['relay', `${Date.now()}`, 'job']);
      const direct = new S3Store(spec);
      const relayed = new RelayedStore(spec, direct.location);
      const key = packKey('shared', 'main', newId(), newId());
      const body = randomBytes(3 * 1024 * 1024 + 77);
      const writer = await relayed.createWriter(key);
      for (let at = 0; at < body.byteLength; at += 700_000) await writer.write([body.subarray(at, Math.min(at + 300_000, body.byteLength)), body.subarray(Math.min(at + 300_000, body.byteLength), Math.min(at + 700_000, body.byteLength))]);
      expect(writer.size).toBe(body.byteLength);
      const staged = await writer.finish();
      expect(await writer.finish()).toEqual(staged);
      await direct.publish([staged]);
      expect(await relayed.stat(key)).toEqual({ key, size: body.byteLength });
      expect((await relayed.get(key, { offset: 1000, length: 5000 })).equals(body.subarray(1000, 6000))).toBe(true);
      const into = Buffer.alloc(5000);
      expect(await relayed.get(key, { offset: 2000, length: 5000 }, () => into)).toBe(into);
      expect(into.equals(body.subarray(2000, 7000))).toBe(true);
      const reader = await relayed.openReader(key, { offset: 10, length: body.byteLength - 10 });
      const back = Buffer.alloc(body.byteLength - 10);
      let done = 0;
      for (let n = -1; n !== 0 && done < back.byteLength; done += n) n = await reader.read(back.subarray(done, Math.min(done + 1024 * 1024, back.byteLength)));
      await reader.close();
      expect(done).toBe(back.byteLength);
      expect(back.equals(body.subarray(10))).toBe(true);
      await relayed.delete([key]);
      const error = await relayed.get(key).then(() => undefined, (e: unknown) => e);
      expect(isNotFound(error), String(error)).toBe(true);
      expect(await relayed.stat(key)).toBeUndefined();
    });

    it('a relay that closes mid-write fails the calls in flight (RELAY_CLOSED) and leaves no object', async () => {
      const spec = s3Spec(TEST_BUCKET, ['relay', `${Date.now()}-closed`, 'job']);
      const direct = new S3Store(spec);
      const relayed = new RelayedStore(spec, direct.location);
      const key = packKey('shared', 'main', newId(), newId());
      const writer = await relayed.createWriter(key);
      await writer.write([randomBytes(100_000)]);
      relay.close();
      const error = await writer.write([randomBytes(100_000)]).then(() => undefined, (e: unknown) => e);
      expect(error instanceof ChunkpointError && error.code, String(error)).toMatch(/^RELAY_(CLOSED|MISSING)$/);
      expect(await direct.stat(key)).toBeUndefined();
    });
  });

  describe('a stalled server and leftovers (issue #20)', () => {
    it('a stalled gateway (SIGSTOP) turns every request into a bounded transient failure, and a restore the local cache can serve completes meanwhile', async () => {
      const saved = process.env['CHUNKPOINT_S3_TIMEOUT'];
      // Short deadlines keep the test short: a stall then fails in about three of them.
      process.env['CHUNKPOINT_S3_TIMEOUT'] = '2s';
      const dir = await mkdtemp(join(tmpdir(), 'chunkpoint-stall-'));
      const state = join(dir, 'db');
      await mkdir(state);
      await writeFile(join(state, '000001.sst'), randomBytes(2_000_000));
      await writeFile(join(state, 'CURRENT'), 'MANIFEST-000001\n');
      const job = { store: `s3://${TEST_BUCKET}/stall-${Date.now()}`, job: 'j' };
      const cache = { dir: join(dir, 'cache') };
      const cp = new Chunkpoint({ threads: 1 });
      try {
        await cp.snapshot(state, job, { cache });
        // A restore through the cache leaves its copies of the metadata and the manifest there.
        await cp.restore(job, join(dir, 'first'), { cache });
        await server.pause();
        try {
          let started = Date.now();
          const error = await cp.list(job).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error).toMatchObject({ kind: 'store_unavailable', code: 'STORE_UNREACHABLE', transient: true });
          expect(Date.now() - started).toBeLessThan(30_000);
          started = Date.now();
          const restored = await cp.restore(job, join(dir, 'second'), { cache });
          expect(restored.metadataFromCache).toBe(true);
          expect(restored.bytesFromRemote).toBe(0);
          expect(Date.now() - started).toBeLessThan(30_000);
        } finally {
          await server.resume();
        }
      } finally {
        await cp.close();
        if (saved === undefined) delete process.env['CHUNKPOINT_S3_TIMEOUT'];
        else process.env['CHUNKPOINT_S3_TIMEOUT'] = saved;
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('gc of a job root holding only incomplete uploads (a snapshot killed before its first object) finds the job and aborts them', async () => {
      const prefix = `uploads-${Date.now()}/j/`;
      const old = Date.now() - 7 * 86_400_000;
      const Key = `${prefix}${packKey('shared', 'main', newId(old), newId(old))}`;
      const { UploadId } = await server.client.send(new CreateMultipartUploadCommand({ Bucket: TEST_BUCKET, Key }));
      await server.client.send(new UploadPartCommand({ Bucket: TEST_BUCKET, Key, UploadId, PartNumber: 1, Body: randomBytes(1000) }));
      const cp = new Chunkpoint({ threads: 1 });
      try {
        const gc = await cp.gc({ store: `s3://${TEST_BUCKET}/${prefix.split('/')[0] ?? ''}`, job: 'j' }, { graceMs: 0 });
        expect(gc.incompleteRemoved).toBe(1);
      } finally {
        await cp.close();
      }
      const left = await server.client.send(new ListMultipartUploadsCommand({ Bucket: TEST_BUCKET, Prefix: prefix }));
      expect(left.Uploads ?? []).toEqual([]);
    });
  });

  describe('S3 failures', () => {
    const failureOf = async (promise: Promise<unknown>): Promise<ChunkpointError> => {
      const error = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ChunkpointError);
      return error as ChunkpointError;
    };

    it('a missing bucket fails at once, naming the bucket and what to do', async () => {
      const store = openStore(s3Spec('no-such-bucket-here', ['p', 'job']));
      const error = await failureOf(store.exists());
      expect(error.kind).toBe('store_unavailable');
      expect(error.code).toBe('STORE_NO_BUCKET');
      expect(error.message).toContain("bucket 'no-such-bucket-here' does not exist");
      expect(error.message).toContain('create it');
      expect(error.details['attempts']).toBeUndefined();
      expect(error.cause).toBeDefined();
      const put = await failureOf(store.put('chk-1/_metadata', [Buffer.from('x')], { ifAbsent: true }));
      expect(put.code).toBe('STORE_NO_BUCKET');
      expect(put.message).toContain('s3://no-such-bucket-here/p/job/chk-1/_metadata');
    });

    it('wrong credentials fail at once, naming the key and the variables to check', async () => {
      const saved = process.env['AWS_SECRET_ACCESS_KEY'];
      process.env['AWS_SECRET_ACCESS_KEY'] = 'not-the-secret';
      try {
        const store = openStore(s3Spec(TEST_BUCKET, ['creds', 'job']));
        const error = await failureOf(store.get('chk-1/_metadata'));
        expect(error.code).toBe('STORE_CREDENTIALS');
        expect(error.message).toContain(`s3://${TEST_BUCKET}/creds/job/chk-1/_metadata`);
        expect(error.message).toContain('AWS_SECRET_ACCESS_KEY');
        expect(error.details['attempts']).toBeUndefined();
      } finally {
        process.env['AWS_SECRET_ACCESS_KEY'] = saved;
      }
    });

    it('an unreachable endpoint is transient: retried, then reported with the endpoint', async () => {
      const spec = { ...s3Spec(TEST_BUCKET, ['down', 'job']), endpoint: 'http://127.0.0.1:1', retry: { maxAttempts: 3, baseDelayMs: 1 } };
      const error = await failureOf(openStore(spec).stat('chk-1/_metadata'));
      expect(error.code).toBe('STORE_UNREACHABLE');
      expect(error.transient).toBe(true);
      expect(error.details).toMatchObject({ attempts: 3 });
      expect(error.details).not.toHaveProperty('transient');
      expect(error.message).toContain('http://127.0.0.1:1');
      expect(error.message).toContain('AWS_ENDPOINT_URL');
    });
  });
});
