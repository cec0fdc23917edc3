/**
 * The command line's words for what library texts name by API (`apiName`
 * in errors.ts): an option becomes the flag that sets it, a method the
 * command that runs it. The library never names a flag, since an embedder
 * has none; whatever the CLI prints of a library text (an error, a warning)
 * goes through here, and nothing else in the CLI rewords library texts.
 */
import type { ApiName } from '../errors.js';

/** A Record over ApiName: tsc refuses a name the library may use without the CLI having words for it. */
export const CLI_WORDS: Readonly<Record<ApiName, string>> = {
  store: '--store',
  job: '--job',
  task: '--task',
  threads: '--threads',
  leaseMs: '--lease',
  dropTasks: '--drop-task',
  keepMatching: '--keep-matching',
  overwrite: '--overwrite',
  'list()': "'chunkpoint list'",
  'drop()': "'chunkpoint drop'",
};

function isApiName(name: string): name is ApiName {
  return Object.hasOwn(CLI_WORDS, name);
}

/** A library text as the command line says it. Backquoted text that is not an API name (a path, a glob) is left alone. */
export function inCliWords(text: string): string {
  return text.replace(/`([^`\s]+)`/g, (quoted, name: string) => (isApiName(name) ? CLI_WORDS[name] : quoted));
}
