/** `chunkpoint commit`: the next checkpoint of a multi-task job, from the task snapshots its tasks wrote. */
import { readFile } from 'node:fs/promises';
import { InvalidInputError, errnoOf } from '../errors.js';
import type { TaskSnapshot } from '../index.js';
import { UsageError, withChunkpoint, type Command } from './command.js';
import { COMMON, JOB, RETENTION, lifecycleOptions, requireJob } from './options.js';
import { printSnapshot } from './snapshot.js';

export const commit: Command = {
  summary: "commit the next checkpoint of a job from its tasks' snapshots (multi-task jobs)",
  usage: 'chunkpoint commit --store <dir> --job <jobId> <taskSnapshot.json>... [options]',
  positionals: [['<taskSnapshot.json>...', "files written by 'chunkpoint snapshot --task <id> --task-snapshot <file>', one per task"]],
  options: { ...JOB, ...RETENTION, ...COMMON },
  async run(args, out) {
    if (args.positionals.length === 0) throw new UsageError('commit needs at least one <taskSnapshot.json>');
    const job = requireJob(args);
    const parts: TaskSnapshot[] = [];
    for (const file of args.positionals) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        throw new InvalidInputError('TASK_SNAPSHOT_UNREADABLE', `cannot read task snapshot ${file} (${errnoOf(error) ?? String(error)}); check the path`, { cause: error });
      }
      try {
        // Validated in full by the commit; here only the syntax.
        parts.push(JSON.parse(text) as TaskSnapshot);
      } catch (error) {
        throw new InvalidInputError('INVALID_TASK_SNAPSHOT', `task snapshot ${file} is not JSON (${error instanceof Error ? error.message : String(error)}); pass the file 'snapshot --task-snapshot' wrote`, { cause: error });
      }
    }
    const result = await withChunkpoint(args, out, (cp) => cp.commit(job, parts, lifecycleOptions(args)));
    if (out.json) out.emit(result);
    else printSnapshot(result, `${job.store}/${job.job}`, out);
  },
};
