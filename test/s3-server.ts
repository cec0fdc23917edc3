/**
 * A real S3 server for tests: scripts/s3-server.ts (one-node Ceph RGW on
 * loopback, data in RAM) started on free ports in a temp directory.
 *
 * Without the Ceph binaries the S3 tests are skipped with a loud warning —
 * unless CI or CHUNKPOINT_REQUIRE_S3=1 is set: then a missing Ceph is a test
 * failure, so CI can never go green without having talked to a real server.
 */
import { S3_INSTALL_HINT, missingS3Binaries, startS3Server as start, type S3Server } from '../scripts/s3-server.js';

export { missingS3Binaries, type S3Server } from '../scripts/s3-server.js';

export const TEST_BUCKET = 'chunkpoint-test';

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
      `!! Install (Debian/Ubuntu, as root): ${S3_INSTALL_HINT}\n!! CI (or CHUNKPOINT_REQUIRE_S3=1) turns this skip into a failure.\n${bar}\n`,
  );
  return true;
}

/** Starts a fresh server for a test file, with TEST_BUCKET, and points this process's environment at it. */
export function startS3Server(): Promise<S3Server> {
  return start([TEST_BUCKET]);
}
