/**
 * What a command of the `chunkpoint` command line is: its options (from
 * which parsing and --help are both generated), its help text and its run
 * function, and the output it reports through. Every command, `stress`
 * included, is one such value in the command table (main.ts).
 */
import { Chunkpoint, type ErrorCode, type EventListener } from '../index.js';

/** A mistake in the command line itself: exit status 2, with the usage and a hint to --help. */
export class UsageError extends Error {}

/**
 * One option: how parseArgs reads it and how --help shows it. Help is
 * generated from this table, so no option can be accepted without being
 * listed with its default.
 */
export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** Value placeholder shown in help, e.g. `<size>`. */
  arg?: string;
  help: string;
  /** What applies when the option is absent: shown as `(default …)`; `required` for mandatory ones. */
  default: string;
}

export type Specs = Record<string, OptionSpec>;

export interface Command {
  summary: string;
  usage: string;
  /** Help paragraphs shown after the summary. */
  description?: string;
  /** Positional arguments for help: [name, meaning]. */
  positionals?: [string, string][];
  options: Specs;
  /** Resolves to the exit code when it is not 0 (a report was printed, but it reports a failure). */
  run(args: Parsed, out: Output): Promise<void | number>;
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export interface Output {
  json: boolean;
  /** A line of the report, printed on stdout when the command ends. */
  print(line: string): void;
  /** The report as one JSON object (--json). */
  emit(value: unknown): void;
  /** A line shown at once, before the report: on stdout, or on stderr with --json (stdout then holds only the JSON object). */
  announce(line: string): void;
  /** The one stderr line of a command that printed its report but failed. */
  fail(code: ErrorCode, message: string): void;
  /** Receives the API's events (drives the progress bar), when anyone listens. */
  onEvent?: EventListener;
  /** Replaces the one live status line on the terminal, when anyone watches; cleared when the command ends. */
  status?: (line: string) => void;
}

/** Runs `fn` with a Chunkpoint sized by --threads and listened to by the progress bar, and closes it. */
export async function withChunkpoint<T>(args: Parsed, out: Output, fn: (cp: Chunkpoint) => Promise<T>): Promise<T> {
  const threadsText = args.values['threads'];
  let threads: number | undefined;
  if (typeof threadsText === 'string') {
    threads = Number(threadsText);
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new UsageError(`--threads '${threadsText}' is not a whole number from 1 to 256`);
  }
  const cp = new Chunkpoint({ ...(threads === undefined ? {} : { threads }), ...(out.onEvent === undefined ? {} : { onEvent: out.onEvent }) });
  try {
    return await fn(cp);
  } finally {
    await cp.close();
  }
}
