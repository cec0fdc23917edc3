/**
 * The native addons chunkpoint runs on, loaded through one guarded door.
 *
 * `lz4` is a node-gyp build against one Node ABI. Run under another Node
 * (an upgrade, a second version beside the first), or installed with its
 * install script skipped, its `require` fails deep inside the package with a
 * message about some `.node` file ("Module did not self-register", "was
 * compiled against a different Node.js version", "Cannot find module
 * 'lz4/build/Release/lz4.node'"). Here that failure becomes one line naming the
 * package, the Node that cannot load it and the command that fixes it,
 * thrown when this module is evaluated: at library load (the coordinator
 * imports the blob codec), before the CLI runs any command, and in each
 * worker thread, never from the middle of a task.
 */
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Lz4 from 'lz4';
import { InternalError } from './errors.js';

const require = createRequire(import.meta.url);

/** Where `npm install` / `npm rebuild` must run for chunkpoint's own dependencies: the package root. */
const PACKAGE_ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

/** The directory whose node_modules holds the package at `packageDir` (what `npm rebuild` must run in). */
function installRootOf(packageDir: string): string {
  const marker = `${sep}node_modules${sep}`;
  const at = packageDir.lastIndexOf(marker);
  return at < 0 ? PACKAGE_ROOT : packageDir.slice(0, at);
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split('\n')[0] ?? '').trim().replace(/\.$/, '');
}

/**
 * The error for a native package that cannot be loaded: one line, the
 * package, this Node, why (the loader's first line), and the fix.
 */
export function nativeModuleError(name: string, error: unknown): InternalError {
  let packageDir: string | undefined;
  try {
    packageDir = dirname(require.resolve(`${name}/package.json`));
  } catch {
    packageDir = undefined;
  }
  const node = `Node ${process.version} (modules ABI ${process.versions.modules})`;
  const message =
    packageDir === undefined
      ? `the native module '${name}' is not installed (${firstLine(error)}); install chunkpoint's dependencies: cd ${PACKAGE_ROOT} && npm install`
      : `the native module '${name}' does not load in ${node}: ${firstLine(error)}; rebuild it for this Node: cd ${installRootOf(packageDir)} && npm rebuild ${name}`;
  return new InternalError('NATIVE_MODULE', message, { cause: error, details: { module: name, node: process.version, abi: process.versions.modules } });
}

/**
 * `require` of the package `name`, or of `file` inside it, or the one-line
 * NATIVE_MODULE error above, which names the package either way.
 */
export function loadNative<T>(name: string, file?: string): T {
  try {
    return require(file === undefined ? name : `${name}/${file}`) as T;
  } catch (error) {
    throw nativeModuleError(name, error);
  }
}

/** The block functions chunkpoint uses, under the names the `lz4` package gives them. */
export interface Lz4Block {
  /** The largest block `encodeBlock` can write for `inputSize` bytes. */
  encodeBound: typeof Lz4.encodeBound;
  /** Compresses `input` into `output`: the block's length, or 0 when it would not fit. */
  encodeBlock: typeof Lz4.encodeBlock;
  /** Decompresses a block into `output`: its length, negative where a damaged block stops. */
  decodeBlock: typeof Lz4.decodeBlock;
}

/**
 * LZ4 block compression: the `lz4` package's native addon itself. The
 * package's entry point re-exports these very functions, but first loads its
 * stream codecs, a JavaScript LZ4 and a 64-bit integer library that chunkpoint
 * never uses: ~20 ms on this project's 2-core machines, paid by the main thread
 * and again by every worker thread before it can take its first chunk.
 */
export const lz4: Lz4Block = (() => {
  const addon = loadNative<{ compressBound: Lz4Block['encodeBound']; compress: Lz4Block['encodeBlock']; uncompress: Lz4Block['decodeBlock'] }>(
    'lz4',
    'build/Release/lz4.node',
  );
  return { encodeBound: addon.compressBound, encodeBlock: addon.compress, decodeBlock: addon.uncompress };
})();
