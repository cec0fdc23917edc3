/**
 * The SDK client an S3 store talks through, configured from its spec.
 *
 * Checksums: `requestChecksumCalculation` / `responseChecksumValidation` are
 * 'WHEN_REQUIRED' because RGW 16.2 does not understand the SDK's default
 * flexible checksums. Integrity does not depend on them: every blob and every
 * `_metadata` carries its own hash and is verified on read.
 *
 * Retries: the SDK makes a single attempt (`maxAttempts: 1`); failures are
 * classified by errors.ts (the error's `transient`) and retried by
 * `RetryingStore`, so the policy lives in one place (store/retry.ts).
 *
 * Transport: the SDK's requests go through http.ts (keep-alive connections
 * reading into fixed buffers; see there why), or through the SDK's own
 * node:http handler when CHUNKPOINT_S3_HTTP=node, a way back should a server
 * or proxy need it, and the A/B of the bench.
 *
 * The SDK is imported on first use, so directory-store users never load it.
 */
import { createRequire } from 'node:module';
import type * as Sdk from '@aws-sdk/client-s3';
import type { S3StoreSpec } from '../spec.js';
import { FixedBufferHttpHandler } from './http.js';
import { DEFAULT_REGION } from './location.js';

/** Default deadline of one request (until its response starts) and of any silence on its connection. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

const SILENT = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The SDK module (its command classes) and a client: commands are built with the one and sent with the other. */
export interface S3Connection {
  sdk: typeof Sdk;
  client: Sdk.S3Client;
}

/**
 * The SDK ships CommonJS. Loaded through require() rather than import(), it
 * starts about a third faster (200 -> 140 ms on Node 20 here): import() of
 * CommonJS also scans every file for its export names and probes each for
 * ES module syntax. This runs once per process, on the first S3 request.
 */
function loadSdk(): typeof Sdk {
  return createRequire(import.meta.url)('@aws-sdk/client-s3') as typeof Sdk;
}

export function connectS3(spec: S3StoreSpec): S3Connection {
  const sdk = loadSdk();
  const timeout = spec.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const client = new sdk.S3Client({
    region: spec.region ?? DEFAULT_REGION,
    ...(spec.endpoint === undefined ? {} : { endpoint: spec.endpoint }),
    forcePathStyle: spec.forcePathStyle ?? false,
    maxAttempts: 1,
    // Failures are reported by the store, classified; the SDK's own console warnings (e.g. on every
    // refused conditional PUT of a streamed body) would only repeat them on stderr.
    logger: SILENT,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // One round trip per pack saved: the server answers a PUT it refuses just as well after the body.
    expectContinueHeader: spec.expectContinue ?? false,
    // A stalled server must become a (retried) error, never a hang: deadlines to connect, for the
    // response to start, and for any silence on the connection (a body that stops).
    requestHandler:
      process.env['CHUNKPOINT_S3_HTTP'] === 'node'
        ? {
            connectionTimeout: Math.min(timeout, 10_000),
            requestTimeout: timeout,
            socketTimeout: timeout,
            throwOnRequestTimeout: true,
            httpAgent: { keepAlive: true, maxSockets: 64 },
            httpsAgent: { keepAlive: true, maxSockets: 64 },
          }
        : new FixedBufferHttpHandler({ connectionTimeoutMs: Math.min(timeout, 10_000), requestTimeoutMs: timeout, maxSockets: 64 }),
  });
  return { sdk, client };
}
