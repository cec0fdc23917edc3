/**
 * What the disk itself takes, as a yardstick for chunkpoint's local phases:
 * the same number of bytes written durably, with nothing else done to them.
 * Files are written in 1 MiB blocks from page-aligned memory through the
 * writer restores use (src/store/direct-io.ts: O_DIRECT where the filesystem
 * allows it), several files at once, and each file is fsynced as soon as it
 * is written, as a restore does (and as a snapshot fdatasyncs each pack).
 * No reading, hashing or compressing: a durable restore or snapshot on this
 * disk cannot be faster than this.
 *
 *   node dist/bench/disk-limit.js <dir> <bytes> <files> <in-flight>
 *     writes <bytes> as <files> files of equal size into <dir> (created;
 *     must not exist), <in-flight> files at a time, then removes <dir>
 *
 * Prints one JSON line: {files, bytes}.
 */
import { randomFillSync } from 'node:crypto';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { forEachBounded } from '../src/bounded.js';
import { FileWriter, alignedMemory } from '../src/store/direct-io.js';

const BLOCK = 1024 * 1024;

function usage(message: string): never {
  process.stderr.write(`disk-limit: ${message}\nusage: disk-limit <dir> <bytes> <files> <in-flight>\n`);
  process.exit(2);
}

function count(text: string | undefined, what: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) usage(`${what} must be a positive integer, got '${text ?? ''}'`);
  return n;
}

const [dir, bytesArg, filesArg, inFlightArg] = process.argv.slice(2);
if (dir === undefined) usage('expected a directory');
const total = count(bytesArg, 'bytes');
const files = count(filesArg, 'files');
const inFlight = count(inFlightArg, 'in-flight');

// Incompressible, so no layer below (a compressing filesystem or virtual disk) writes less than asked.
const source = randomFillSync(alignedMemory(BLOCK));
const size = Math.ceil(total / files);
await mkdir(dir);
let written = 0;
try {
  const names = Array.from({ length: files }, (_, i) => ({ path: join(dir, `f${String(i).padStart(4, '0')}`), length: Math.min(size, total - i * size) })).filter((f) => f.length > 0);
  await forEachBounded(names, inFlight, async ({ path, length }) => {
    await (await open(path, 'wx')).close();
    const writer = new FileWriter(path);
    try {
      for (let at = 0; at < length; at += BLOCK) await writer.writeAt(source.subarray(0, Math.min(BLOCK, length - at)), at);
    } finally {
      await writer.close();
    }
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    written += length;
  });
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify({ files, bytes: written })}\n`);
