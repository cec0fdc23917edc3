/**
 * The native addons chunkpoint runs on, loaded through one guarded door.
 *
 * `lz4` is a node-gyp build against one Node ABI. Run under another Node
 * (an upgrade, a second version beside the first), or installed with its
 * install script skipped, its `require` fails deep inside the package with a
 * message about some `.node` file ("Module did not self-register", "was
 * compiled against a different Node.js version", "Cannot find module
 * '../build/Release/xxhash'"). Here that failure becomes one line naming the
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

/** `require(name)`, or the one-line NATIVE_MODULE error above. */
export function loadNative<T>(name: string): T {
  try {
    return require(name) as T;
  } catch (error) {
    throw nativeModuleError(name, error);
  }
}

/** LZ4 block compression (the `lz4` package's native binding). */
export const lz4 = loadNative<typeof Lz4>('lz4');
