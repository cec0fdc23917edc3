/**
 * Where local directories really are, for the checks that keep a restore
 * target, a state directory, a job root and a cache from overlapping: paths
 * are compared after resolving links, and a path not created yet resolves
 * through its nearest existing ancestor.
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { errnoOf } from './errors.js';

/** The real path of `path`, or of its nearest existing ancestor followed by the rest. Other errors (ELOOP, EACCES) are thrown as they come. */
export async function resolvedPath(path: string): Promise<string> {
  const rest: string[] = [];
  let at = path;
  for (;;) {
    try {
      return join(await realpath(at), ...rest.reverse());
    } catch (error) {
      const code = errnoOf(error);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
      const parent = dirname(at);
      if (parent === at) return path;
      rest.push(basename(at));
      at = parent;
    }
  }
}

/** Whether `path` lies strictly inside `dir` (both resolved). */
export function isWithin(path: string, dir: string): boolean {
  return path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}
