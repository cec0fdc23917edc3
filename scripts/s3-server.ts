/**
 * A real, throwaway S3 server: scripts/ceph-s3.sh (a one-node Ceph RADOS
 * Gateway on loopback, data in RAM) started on free ports in a temp
 * directory. Used by the test suite and by the benchmarks.
 */
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

const run = promisify(execFile);
/** Linux's USER_HZ, the unit of /proc/<pid>/stat times (100 on every mainstream build). */
const CLOCK_TICKS = 100;
const SCRIPT = fileURLToPath(new URL('../../scripts/ceph-s3.sh', import.meta.url));
const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph', 'uuidgen', 'curl'];
export const S3_INSTALL_HINT = 'apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw uuid-runtime curl';

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
  /** The directory holding the server's state (and its daemons' pid files). */
  dir: string;
  endpoint: string;
  /** The AWS_* variables pointing at this server (also set in process.env by `startS3Server`). */
  env: Record<string, string>;
  client: S3Client;
  createBucket(name: string): Promise<void>;
  /** Requests the gateway has served so far (its own counter). */
  requests(): Promise<number>;
  /** CPU time (user + system) the server's daemons have used so far: on a shared machine, what the server took from the client. */
  cpuMs(): Promise<number>;
  /** Freezes the gateway (SIGSTOP): connections are accepted by the kernel and never answered, as a hung server does. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a fresh server and points this process's environment (and so every
 * worker thread and child process started afterwards) at it, and creates `buckets`.
 */
export async function startS3Server(buckets: readonly string[] = []): Promise<S3Server> {
  const missing = missingS3Binaries();
  if (missing.length > 0) {
    throw new Error(`a real S3 server is required here but Ceph is not installed (missing: ${missing.join(', ')}); install it: ${S3_INSTALL_HINT}`);
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
  const gatewayPid = async (): Promise<number> => Number((await readFile(join(scriptEnv.S3_DIR, 'client.rgw.pid'), 'utf8')).trim());
  const server: S3Server = {
    dir: scriptEnv.S3_DIR,
    endpoint,
    env,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async pause() {
      process.kill(await gatewayPid(), 'SIGSTOP');
    },
    async resume() {
      process.kill(await gatewayPid(), 'SIGCONT');
    },
    async requests() {
      const { stdout: perf } = await run(SCRIPT, ['perf'], { env: scriptEnv });
      return (JSON.parse(perf) as { rgw: { req: number } }).rgw.req;
    },
    async cpuMs() {
      let ticks = 0;
      for (const daemon of ['client.rgw', 'osd.0', 'mon.a']) {
        const pid = (await readFile(join(scriptEnv.S3_DIR, `${daemon}.pid`), 'utf8')).trim();
        // Fields after the command name (which may hold spaces): state is the 3rd field, utime the 14th, stime the 15th.
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]);
      }
      return (ticks * 1000) / CLOCK_TICKS;
    },
    async stop() {
      client.destroy();
      await run(SCRIPT, ['stop'], { env: scriptEnv, timeout: 60_000 }).catch(stopSync);
      process.removeListener('exit', stopSync);
      await rm(base, { recursive: true, force: true });
    },
  };
  for (const bucket of buckets) await server.createBucket(bucket);
  return server;
}
