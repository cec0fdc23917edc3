/**
 * The `chunkpoint` command line: the command table and the one dispatcher
 * every command goes through (parsing, --help, output, exit status). Exit
 * codes: 0 success, 1 failure (one line `chunkpoint: <CODE>: …` on stderr),
 * 2 usage error.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { toChunkpointError, type ChunkpointError } from '../errors.js';
import { cache } from './cache.js';
import { UsageError, type Command, type Output, type Parsed, type Specs } from './command.js';
import { commit } from './commit.js';
import { copy } from './copy.js';
import { drop } from './drop.js';
import { gc } from './gc.js';
import { inspect } from './inspect.js';
import { list } from './list.js';
import { COMMON } from './options.js';
import { ProgressBar } from './progress-bar.js';
import { restore } from './restore.js';
import { snapshot } from './snapshot.js';
import { stress } from './stress.js';
import { renderPairs } from './table.js';
import { verify } from './verify.js';
import { inCliWords } from './wording.js';

/** In the order --help lists them. */
export const COMMANDS: Record<string, Command> = { snapshot, commit, restore, list, inspect, verify, gc, drop, copy, cache, stress };

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** `--name <arg>` and its explanation with the default, as aligned help lines. */
function optionLines(specs: Specs): [string, string][] {
  return Object.entries(specs).map(([name, spec]) => [
    `${spec.short === undefined ? '' : `-${spec.short}, `}--${name}${spec.arg === undefined ? '' : ` ${spec.arg}`}`,
    `${spec.help}${spec.multiple === true ? ', repeatable' : ''} (${spec.default === 'required' ? 'required' : `default: ${spec.default}`})`,
  ]);
}

function mainHelp(): string {
  const lines = ['usage: chunkpoint <command> [options]', '', 'commands:'];
  lines.push(...renderPairs(Object.entries(COMMANDS).map(([name, cmd]): [string, string] => [name, cmd.summary])));
  lines.push('', 'options of every command:', ...renderPairs([...optionLines(COMMON), ['--version', 'print the version and exit (chunkpoint --version)']]));
  lines.push('', 'Sizes take units (512KiB, 4MiB, 2GiB), durations too (30s, 10m, 2h, 7d).');
  lines.push("Exit status: 0 success, 1 failure (one line 'chunkpoint: <CODE>: ...' on stderr), 2 usage error.");
  lines.push("Run 'chunkpoint <command> --help' for a command's options.");
  return lines.join('\n');
}

function commandHelp(cmd: Command): string {
  const lines = [`usage: ${cmd.usage}`, '', cmd.summary];
  if (cmd.description !== undefined) lines.push('', cmd.description);
  if (cmd.positionals !== undefined) lines.push('', 'arguments:', ...renderPairs(cmd.positionals));
  lines.push('', 'options:', ...renderPairs(optionLines(cmd.options)));
  lines.push('', 'Sizes take units (512KiB, 4MiB, 2GiB), durations too (30s, 10m, 2h, 7d).');
  return lines.join('\n');
}

/** parseArgs' view of a command's options. */
function parseConfig(specs: Specs): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, spec] of Object.entries(specs)) {
    out[name] = { type: spec.type, ...(spec.multiple === true ? { multiple: true } : {}), ...(spec.short === undefined ? {} : { short: spec.short }) };
  }
  return out;
}

/** Runs the CLI and returns the exit code; never calls process.exit, so the pool shuts down cleanly. */
export async function main(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process): Promise<number> {
  // The AWS SDK prints a multi-line Node-version support notice on first use; it would
  // break the one-line error contract on stderr. Set before the worker threads copy the environment.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(`${mainHelp()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (cmd === undefined) {
    io.stderr.write(`chunkpoint: usage: unknown command '${name}'\n${mainHelp()}\n`);
    return 2;
  }
  const usage = (message: string): number => {
    io.stderr.write(`chunkpoint: usage: ${message}\n${cmd.usage}\nrun 'chunkpoint ${name} --help' for the options\n`);
    return 2;
  };
  let args: Parsed;
  try {
    args = parseArgs({ args: rest, options: parseConfig(cmd.options), allowPositionals: true, strict: true }) as Parsed;
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
  if (args.values['help'] === true) {
    io.stdout.write(`${commandHelp(cmd)}\n`);
    return 0;
  }
  const json = args.values['json'] === true;
  const lines: string[] = [];
  let failure: string | undefined;
  // Progress only for a person watching: never into a pipe or a log file, never mixed with --json.
  const watched = !json && args.values['no-progress'] !== true && (io.stderr as { isTTY?: boolean }).isTTY === true;
  const bar = watched ? new ProgressBar(io.stderr) : undefined;
  let statusShown = false;
  const out: Output = {
    json,
    print: (line) => lines.push(line),
    emit: (value) => lines.push(JSON.stringify(value)),
    announce: (line) => (json ? io.stderr : io.stdout).write(`${line}\n`),
    fail: (code, message) => (failure = `chunkpoint: ${code}: ${message}\n`),
    ...(bar === undefined ? {} : { onEvent: bar.onEvent }),
    ...(watched
      ? {
          status: (line: string) => {
            io.stderr.write(`\r\x1b[K${line}`);
            statusShown = true;
          },
        }
      : {}),
  };
  const endProgress = (): void => {
    bar?.stop();
    if (statusShown) io.stderr.write('\r\x1b[K');
  };
  try {
    const code = await cmd.run(args, out);
    endProgress();
    if (lines.length > 0) io.stdout.write(`${lines.join('\n')}\n`);
    if (failure !== undefined) io.stderr.write(failure);
    return code ?? 0;
  } catch (error) {
    endProgress();
    if (error instanceof UsageError) return usage(error.message);
    const cp: ChunkpointError = toChunkpointError(error);
    io.stderr.write(`chunkpoint: ${cp.code}: ${inCliWords(cp.message)}\n`);
    if (args.values['verbose'] === true && cp.stack !== undefined) io.stderr.write(`${cp.stack}\n`);
    return 1;
  }
}
