/**
 * Direct I/O writes: exact bytes for every size and position around the
 * alignment boundaries: on the temp directory's filesystem (where O_DIRECT
 * is expected to be taken), on tmpfs, and with direct I/O turned off.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { DIRECT_ALIGN, FileAppender, FileWriter, alignedMemory, createWithContent, directIoCounts, writeAtPosition } from '../src/store/direct-io.js';
import { removeTempDirs, tempDir } from './support.js';

const SIZES = [0, 1, 4095, 4096, 4097, 65535, 65536, 65537, 1048576, 1048576 + 40, 3 * 1048576 + 4095];
const TMPFS_MAGIC = 0x01021994;

afterAll(removeTempDirs);

async function onTmpfs(): Promise<string | undefined> {
  const dir = '/dev/shm';
  const fs = await statfs(dir).catch(() => undefined);
  return fs?.type === TMPFS_MAGIC ? dir : undefined;
}

async function checkDirectory(dir: string): Promise<void> {
  for (const size of SIZES) {
    // A 40-byte header part before the payload, as blobs are written.
    const parts = [randomBytes(40), randomBytes(size)];
    const path = join(dir, `created-${size}`);
    await createWithContent(path, parts, 0o644);
    expect((await readFile(path)).equals(Buffer.concat(parts)), `created file of ${size + 40} bytes`).toBe(true);
    await expect(createWithContent(path, parts, 0o644)).rejects.toMatchObject({ code: 'EEXIST' });

    // Positional writes into an existing file: aligned (direct) and unaligned (buffered), next to other data.
    const target = join(dir, `positioned-${size}`);
    const prefix = randomBytes(DIRECT_ALIGN * 2 + 100);
    await writeFile(target, prefix);
    const aligned = randomBytes(size);
    const unaligned = randomBytes(size);
    await writeAtPosition(target, aligned, DIRECT_ALIGN * 256);
    await writeAtPosition(target, unaligned, DIRECT_ALIGN * 256 + size + 7);
    const got = await readFile(target);
    expect(got.subarray(0, prefix.byteLength).equals(prefix)).toBe(true);
    expect(got.subarray(DIRECT_ALIGN * 256, DIRECT_ALIGN * 256 + size).equals(aligned), `aligned write of ${size} bytes`).toBe(true);
    expect(got.subarray(DIRECT_ALIGN * 256 + size + 7).equals(unaligned), `unaligned write of ${size} bytes`).toBe(true);
    // (Zero-byte writes do not extend a file.)
    expect((await stat(target)).size).toBe(size === 0 ? prefix.byteLength : DIRECT_ALIGN * 256 + 2 * size + 7);

    // Appending, as a pack is streamed: a 16-byte header, then parts of odd sizes across block boundaries.
    const appended = join(dir, `appended-${size}`);
    const appender = await FileAppender.create(appended, 0o600);
    const pieces = [randomBytes(16), randomBytes(size), randomBytes(40), randomBytes(size >> 1)];
    for (const piece of pieces) await appender.write([piece.subarray(0, piece.byteLength >> 1), piece.subarray(piece.byteLength >> 1)]);
    expect(appender.size).toBe(pieces.reduce((n, p) => n + p.byteLength, 0));
    await appender.finish();
    expect((await readFile(appended)).equals(Buffer.concat(pieces)), `appended file of ${appender.size} bytes`).toBe(true);
    // An aborted append leaves nothing behind.
    const dropped = await FileAppender.create(join(dir, `aborted-${size}`), 0o600);
    await dropped.write([randomBytes(size)]);
    await dropped.abort();
    await expect(stat(join(dir, `aborted-${size}`))).rejects.toMatchObject({ code: 'ENOENT' });
  }
}

describe('direct I/O writes', () => {
  it('write exact bytes on the project filesystem, bypassing the page cache for large writes', async () => {
    const before = directIoCounts();
    await checkDirectory(await tempDir('direct-io'));
    const after = directIoCounts();
    const fs = await statfs(await tempDir('direct-io-type'));
    if (fs.type === TMPFS_MAGIC) {
      process.stdout.write('direct-io test: the temp directory is on tmpfs, so only the buffered fallback ran here\n');
    } else {
      // Every write of 64 KiB or more at an aligned position went direct (ext4, xfs, btrfs all allow it).
      expect(after.direct - before.direct).toBeGreaterThan(0);
    }
  });

  it('a restore write from aligned memory goes direct without a copy; from anywhere else, through a copy, the same bytes', async () => {
    const dir = await tempDir('direct-io-aligned');
    const path = join(dir, 'target');
    const size = 3 * 1048576 + 4095;
    await writeFile(path, Buffer.alloc(0));
    const memory = alignedMemory(DIRECT_ALIGN + size, true);
    const chunk = memory.subarray(DIRECT_ALIGN, DIRECT_ALIGN + size);
    randomBytes(size).copy(chunk);
    const unaligned = Buffer.from(randomBytes(size + 40)).subarray(40);
    const writer = new FileWriter(path);
    const before = directIoCounts();
    await writer.writeAt(chunk, 0);
    const middle = directIoCounts();
    await writer.writeAt(unaligned, 4 * 1048576);
    const after = directIoCounts();
    await writer.close();
    const written = await readFile(path);
    expect(written.subarray(0, size).equals(chunk)).toBe(true);
    expect(written.subarray(4 * 1048576).equals(unaligned)).toBe(true);
    if (middle.direct > before.direct) {
      expect(middle.uncopied - before.uncopied).toBe(1);
      expect(after.uncopied - middle.uncopied).toBe(0);
      expect(after.direct - middle.direct).toBe(1);
    } else {
      process.stdout.write('direct-io test: this filesystem refused O_DIRECT, so only the buffered path ran here\n');
    }
  });

  it('write exact bytes on tmpfs, whichever path its kernel allows', async (context) => {
    const shm = await onTmpfs();
    if (shm === undefined) {
      process.stdout.write('direct-io test: SKIPPED the tmpfs case, /dev/shm is not a tmpfs here\n');
      context.skip();
      return;
    }
    const dir = join(shm, `chunkpoint-direct-io-${process.pid}`);
    await mkdir(dir, { recursive: true });
    try {
      await checkDirectory(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an appender whose block write fails behind it says so from the next write or finish, and abort leaves no file', async () => {
    // A real failing write: a child process under a 1 MiB file-size limit (Node ignores SIGXFSZ,
    // so a write past the limit fails with EFBIG). Blocks are written behind the caller's back
    // (write-behind), so the failure must come out of a later call, never as an unhandled rejection.
    const dir = await tempDir('direct-io-efbig');
    const module = new URL('../src/store/direct-io.js', import.meta.url).href;
    const script = `
      const { FileAppender } = await import(${JSON.stringify(module)});
      const { randomBytes } = await import('node:crypto');
      const { stat } = await import('node:fs/promises');
      process.on('unhandledRejection', (e) => { console.log('UNHANDLED ' + e.code); process.exit(3); });
      const results = [];
      for (const how of ['finish', 'abort']) {
        const path = ${JSON.stringify(dir)} + '/' + how;
        const appender = await FileAppender.create(path, 0o600);
        let failure;
        try {
          for (let i = 0; i < 6; i++) await appender.write([randomBytes(512 * 1024)]);
          if (how === 'finish') await appender.finish(true);
        } catch (error) {
          failure = error.code;
        }
        if (how === 'abort' || failure !== undefined) await appender.abort();
        const left = await stat(path).then(() => 'file left', () => 'no file');
        results.push(how + ':' + failure + ':' + left);
      }
      console.log(results.join(' '));
    `;
    const { stdout } = await promisify(execFile)('/bin/sh', ['-c', `ulimit -f 2048 && exec "${process.execPath}" --input-type=module -e "$0"`, script]);
    // 'finish': the EFBIG of a block written in the background comes out of a later write or finish.
    // 'abort': dropped with a block write possibly still failing in flight; nothing is left either way.
    expect(stdout.trim()).toMatch(/^finish:EFBIG:no file abort:(EFBIG|undefined):no file$/);
  });

  it('write the same bytes through the page cache with CHUNKPOINT_DIRECT_IO=0', async () => {
    const saved = process.env['CHUNKPOINT_DIRECT_IO'];
    process.env['CHUNKPOINT_DIRECT_IO'] = '0';
    try {
      const before = directIoCounts();
      await checkDirectory(await tempDir('buffered-io'));
      const after = directIoCounts();
      expect(after.direct - before.direct).toBe(0);
      expect(after.buffered - before.buffered).toBe(SIZES.length * 4);
    } finally {
      if (saved === undefined) delete process.env['CHUNKPOINT_DIRECT_IO'];
      else process.env['CHUNKPOINT_DIRECT_IO'] = saved;
    }
  });
});
