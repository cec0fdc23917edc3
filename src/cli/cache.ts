/** `chunkpoint cache stats|prune`: look after a local cache. */
import type { CacheOptions } from '../index.js';
import { formatBytes, parseDuration, parseSize } from '../units.js';
import { UsageError, withChunkpoint, type Command } from './command.js';
import { COMMON } from './options.js';

export const cache: Command = {
  summary: 'show or prune a local cache',
  usage: 'chunkpoint cache stats <dir> [options]\n       chunkpoint cache prune <dir> [--max-bytes <n>] [--ttl <time>] [options]',
  positionals: [['stats <dir> | prune <dir>', 'show the size of a local cache, or evict from it']],
  options: {
    'max-bytes': { type: 'string', arg: '<size>', help: 'prune: evict least recently used entries down to this size, e.g. 20GiB', default: 'no cap' },
    ttl: { type: 'string', arg: '<time>', help: 'prune: evict entries unused for this long, e.g. 7d', default: 'none' },
    ...COMMON,
  },
  async run(args, out) {
    const [action, dir, extra] = args.positionals;
    if ((action !== 'stats' && action !== 'prune') || dir === undefined || extra !== undefined) throw new UsageError("cache takes 'stats <dir>' or 'prune <dir>'");
    const options: CacheOptions = { dir };
    const maxBytes = args.values['max-bytes'];
    const ttl = args.values['ttl'];
    if (typeof maxBytes === 'string') options.maxBytes = parseSize(maxBytes, '--max-bytes');
    if (typeof ttl === 'string') options.ttlMs = parseDuration(ttl, '--ttl');
    if (action === 'stats') {
      if (options.maxBytes !== undefined || options.ttlMs !== undefined) throw new UsageError('--max-bytes and --ttl go with cache prune');
      const stats = await withChunkpoint(args, out, (cp) => cp.cacheStats(options));
      if (out.json) out.emit(stats);
      else {
        out.print(`cache ${stats.dir}`);
        out.print(`  ${stats.entries} chunks, ${formatBytes(stats.bytes)}; ${stats.checkpoints} checkpoint metadata copies, ${formatBytes(stats.checkpointBytes)} with their manifests`);
        if (stats.oldestUseMs !== undefined && stats.newestUseMs !== undefined) {
          out.print(`  least recently used ${new Date(stats.oldestUseMs).toISOString()}, most recently ${new Date(stats.newestUseMs).toISOString()}`);
        }
      }
      return;
    }
    if (options.maxBytes === undefined && options.ttlMs === undefined) throw new UsageError('cache prune needs --max-bytes and/or --ttl');
    const result = await withChunkpoint(args, out, (cp) => cp.cachePrune(options));
    if (out.json) out.emit(result);
    else out.print(`removed ${result.removedEntries} entries (${formatBytes(result.removedBytes)}); ${result.entries} chunks, ${formatBytes(result.bytes)}, and ${formatBytes(result.checkpointBytes)} of checkpoint copies remain`);
  },
};
