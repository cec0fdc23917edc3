/**
 * Job roots of another format version: a format-1 root (as the previous
 * chunkpoint wrote it) and a crafted format-3 one. Every command that reads
 * one refuses it with FORMAT_UNSUPPORTED, says what to do, and changes
 * nothing — gc above all.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadHasher, type Hasher } from '../src/format/content-key.js';
import { newId } from '../src/format/ids.js';
import { packKey } from '../src/format/names.js';
import { race } from '../scripts/race.js';
import { listFiles, removeTempDirs, runCli, tempDir, treeDigest } from './support.js';

afterAll(async () => {
  await removeTempDirs();
});

/** An envelope as any format version writes it: magic, version, body length, XXH64 of the body, body. */
function envelope(hasher: Hasher, magic: string, version: number, body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body));
  const header = Buffer.alloc(24);
  header.write(magic, 0, 'latin1');
  header.writeUInt32LE(version, 8);
  header.writeUInt32LE(json.byteLength, 12);
  Buffer.from(hasher.checksum64(json), 'hex').copy(header, 16);
  return Buffer.concat([header, json]);
}

/** A job root as format 1 left it: one blob object per chunk, `_metadata` version 1. */
async function format1Root(store: string, hasher: Hasher): Promise<string> {
  const root = join(store, 'j');
  const key = 'a'.repeat(32);
  await mkdir(join(root, 'shared', 'aa'), { recursive: true });
  await writeFile(join(root, 'shared', 'aa', `${key}-5`), 'blob!');
  await mkdir(join(root, 'chk-1'), { recursive: true });
  const body = {
    formatVersion: 1,
    checkpointId: 1,
    jobId: 'j',
    createdAt: '2026-11-21T09:18:27.875Z',
    keyAlgorithm: 'xxh64x2-128',
    tasks: [{ task: 'main', chunkSize: 1048576, directories: [], files: [{ path: 'x.sst', size: 5, mode: 420, mtimeMs: 1, immutable: true, chunks: [{ key, rawLength: 5, handle: { area: 'shared', name: `aa/${key}-5`, offset: 0, length: 45 }, createdBy: 1 }] }] }],
    snapshot: { bytesRead: 5, bytesWritten: 45, filesReused: 0, chunksNew: 1, chunksDeduped: 0, durationMs: 1 },
  };
  await writeFile(join(root, 'chk-1', '_metadata'), envelope(hasher, 'CPMETA\r\n', 1, body));
  return root;
}

/** A job root from a future chunkpoint: `_metadata` version 3, and old-looking unreferenced packs gc would otherwise take. */
async function format3Root(store: string, hasher: Hasher): Promise<string> {
  const root = join(store, 'j');
  await mkdir(join(root, 'chk-4'), { recursive: true });
  await writeFile(join(root, 'chk-4', '_metadata'), envelope(hasher, 'CPMETA\r\n', 3, { formatVersion: 3, checkpointId: 4, somethingNew: true }));
  const old = Date.now() - 30 * 86_400_000;
  for (let i = 0; i < 3; i++) {
    const key = packKey('shared', 'main', newId(old), newId(old));
    await mkdir(join(root, 'shared'), { recursive: true });
    await writeFile(join(root, ...key.split('/')), `not a pack of ours to judge ${i}`);
  }
  return root;
}

describe('job roots of another format version', () => {
  for (const [version, make] of [
    ['1 (written by an earlier chunkpoint)', format1Root],
    ['3 (written by a newer chunkpoint)', format3Root],
  ] as const) {
    it(`format ${version}: every command refuses with FORMAT_UNSUPPORTED and nothing is changed`, async () => {
      const hasher = await loadHasher();
      const dir = await tempDir('format');
      const store = join(dir, 'store');
      const root = await make(store, hasher);
      const state = join(dir, 'state');
      await mkdir(state);
      await writeFile(join(state, '000001.sst'), 'new state');
      const before = await treeDigest(root);
      const job = ['--store', store, '--job', 'j'];
      for (const args of [['gc', ...job, '--grace', '0', '--retain', '1'], ['snapshot', state, ...job], ['restore', ...job, join(dir, 'out')], ['verify', ...job], ['inspect', ...job], ['copy', root, join(dir, 'copy', 'j')]]) {
        const r = await runCli(args);
        expect(r.code, `${args[0] ?? ''}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.stderr, args[0]).toContain('FORMAT_UNSUPPORTED');
        expect(r.stderr, args[0]).toMatch(/format [13]/);
        expect(r.stderr, args[0]).toContain('nothing was changed');
      }
      // list shows the checkpoint, marked, instead of failing.
      const list = await runCli(['list', ...job]);
      expect(list.code).toBe(0);
      expect(list.stdout).toContain('DAMAGED');
      expect(list.stdout).toMatch(/cannot be read: .*format [13]/);
      expect(await treeDigest(root)).toEqual(before);
      expect(await listFiles(join(dir, 'out'))).toEqual([]);
    });
  }
});

describe('the gc-versus-snapshot race (issue #15, shortened: the full 200 rounds are `node dist/scripts/race.js`)', () => {
  const seed = Number(process.env['CHUNKPOINT_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  it(`gc running beside a snapshot over orphaned packs damages no checkpoint, with grace 0 and the default (seed ${seed})`, async () => {
    const lines: string[] = [];
    const result = await race({ rounds: 2, graces: ['0', 'default'], seed, dir: join(await tempDir('race'), 'work'), log: (l) => lines.push(l) });
    expect(result.damaged, lines.join('\n')).toEqual([]);
    expect(result.rounds).toBe(2);
    // The rounds with grace 0 did collect the orphans: gc really ran against the snapshot.
    expect(result.gcRemovedPacks).toBeGreaterThan(0);
  });
});
