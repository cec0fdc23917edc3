/**
 * Command-line handling shared by the repository's scripts (demo, benches,
 * gc-bench): `--help` prints the usage, and a bad option is a usage error
 * (exit 2) that shows the usage instead of a Node stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export function parseScriptArgs<const T extends ParseArgsConfig>(usage: string, config: T): ReturnType<typeof parseArgs<T>> {
  const argv = config.args ?? process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${usage.trim()}\n`);
    process.exit(2);
  }
}
