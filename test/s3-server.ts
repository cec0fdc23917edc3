/**
 * A real S3 server for tests: scripts/ceph-s3.sh (one-node Ceph RGW on
 * loopback, data in RAM) started on free ports in a temp directory.
 *
 * Without the Ceph binaries the S3 tests are skipped with a loud warning —
 * unless CI or CHUNKPOINT_REQUIRE_S3=1 is set: then a missing Ceph is a test
 * failure, so CI can never go green without having talked to a real server.
 */
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { REPO_ROOT } from './support.js';

const run = promisify(execFile);
const SCRIPT = join(REPO_ROOT, 'scripts', 'ceph-s3.sh');
const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph', 'uuidgen', 'curl'];
const INSTALL = 'apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw uuid-runtime curl';

export const TEST_BUCKET = 'chunkpoint-test';

function onPath(binary: string): boolean {
  return (process.env['PATH'] ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function missingS3Binaries(): string[] {
  return BINARIES.filter((b) => !onPath(b));
}

function s3Required(): boolean {
  return (process.env['CI'] ?? '') !== '' || process.env['CHUNKPOINT_REQUIRE_S3'] === '1';
}

/**
 * Whether the S3 tests of `suite` must be skipped (for `describe.skipIf`).
 * Says so loudly when they are; never skips when S3 is required.
 */
export function skipS3(suite: string): boolean {
  const missing = missingS3Binaries();
  if (missing.length === 0 || s3Required()) return false;
  const bar = '!'.repeat(78);
  console.warn(
    `\n${bar}\n!! SKIPPED: ${suite}\n!! These tests need a real S3 server (Ceph RADOS Gateway); missing: ${missing.join(', ')}\n` +
      `!! Install (Debian/Ubuntu, as root): ${INSTALL}\n!! CI (or CHUNKPOINT_REQUIRE_S3=1) turns this skip into a failure.\n${bar}\n`,
  );
  return true;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface S3Server {
  endpoint: string;
  /** The AWS_* variables pointing at this server (also set in process.env by `startS3Server`). */
  env: Record<string, string>;
  client: S3Client;
  createBucket(name: string): Promise<void>;
  /** Requests the gateway has served so far (its own counter). */
  requests(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts a fresh server and points this process's environment (and so every
 * worker thread and child process started afterwards) at it. Creates TEST_BUCKET.
 */
export async function startS3Server(): Promise<S3Server> {
  const missing = missingS3Binaries();
  if (missing.length > 0) {
    throw new Error(`S3 tests are required here (CI or CHUNKPOINT_REQUIRE_S3=1) but Ceph is not installed (missing: ${missing.join(', ')}); install it: ${INSTALL}`);
  }
  const base = await mkdtemp(join(tmpdir(), 'chunkpoint-s3-'));
  const [port, monPort] = [await freePort(), await freePort()];
  const scriptEnv = { ...process.env, S3_DIR: join(base, 'ceph'), S3_PORT: String(port), S3_MON_PORT: String(monPort) };
  const stopSync = (): void => {
    spawnSync(SCRIPT, ['stop'], { env: scriptEnv, stdio: 'ignore' });
  };
  // Daemons fork away from us: make sure an aborted test run does not leave them running.
  process.once('exit', stopSync);
  try {
    await run(SCRIPT, ['start'], { env: scriptEnv, timeout: 240_000 });
  } catch (error) {
    stopSync();
    const e = error as { stderr?: string; message: string };
    throw new Error(`could not start the Ceph S3 server: ${e.message}\n${e.stderr ?? ''}`);
  }
  const { stdout } = await run(SCRIPT, ['env'], { env: scriptEnv });
  const env: Record<string, string> = {};
  for (const match of stdout.matchAll(/^export (\w+)=(.*)$/gm)) if (match[1] !== undefined && match[2] !== undefined) env[match[1]] = match[2];
  // The SDK's "upgrade to Node 22" notice is not a test failure; keep test output readable.
  env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
  Object.assign(process.env, env);
  delete process.env['AWS_ENDPOINT_URL_S3'];
  const endpoint = env['AWS_ENDPOINT_URL'] ?? `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: env['AWS_ACCESS_KEY_ID'] ?? '', secretAccessKey: env['AWS_SECRET_ACCESS_KEY'] ?? '' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const server: S3Server = {
    endpoint,
    env,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async requests() {
      const { stdout: perf } = await run(SCRIPT, ['perf'], { env: scriptEnv });
      return (JSON.parse(perf) as { rgw: { req: number } }).rgw.req;
    },
    async stop() {
      client.destroy();
      await run(SCRIPT, ['stop'], { env: scriptEnv, timeout: 60_000 }).catch(stopSync);
      process.removeListener('exit', stopSync);
      await rm(base, { recursive: true, force: true });
    },
  };
  await server.createBucket(TEST_BUCKET);
  return server;
}
