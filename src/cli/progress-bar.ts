/**
 * The CLI's live progress bar (stderr, terminals only). It is driven by the
 * same events the API hands to embedders, so what an operator watches and
 * what a runtime's metrics record cannot disagree. cli-progress draws it:
 * line clearing, redraw throttling and terminal width are its business.
 */
import { createRequire } from 'node:module';
import type CliProgress from 'cli-progress';
import type { ChunkpointEvent } from '../index.js';
import { formatBytes, formatRate } from '../units.js';

/** What one bar shows, mapped from an operation's progress event. */
interface Frame {
  label: string;
  /** Bytes done and total; absent for operations without a total (gc). */
  value?: number;
  total?: number;
  /** Count shown after the sizes, e.g. `12/31 files`. */
  items: string;
}

function frameOf(event: ChunkpointEvent): Frame | undefined {
  if (event.type === 'snapshot.progress') return { label: 'snapshot', value: event.bytesDone, total: event.bytesTotal, items: `${event.filesDone}/${event.filesTotal} files` };
  if (event.type === 'restore.progress') return { label: 'restore', value: event.bytesDone, total: event.bytesTotal, items: `${event.filesDone}/${event.filesTotal} files` };
  if (event.type === 'verify.progress') {
    return { label: 'verify', value: event.bytesDone, total: event.bytesTotal, items: `${event.blobsDone}/${event.blobsTotal} blobs${event.problems > 0 ? `, ${event.problems} damaged` : ''}` };
  }
  if (event.type === 'copy.progress') return { label: 'copy', value: event.bytesDone, total: event.bytesTotal, items: `${event.objectsDone}/${event.objectsTotal} objects` };
  if (event.type === 'gc.progress') return { label: 'gc', items: `${event.objectsScanned} objects scanned, ${event.packsRemoved + event.incompleteRemoved} to remove (${formatBytes(event.bytesFreed)})` };
  return undefined;
}

const ENDS = new Set<ChunkpointEvent['type']>([
  'snapshot.stored',
  'snapshot.committed',
  'snapshot.failed',
  'restore.completed',
  'restore.failed',
  'verify.completed',
  'verify.failed',
  'copy.completed',
  'copy.failed',
  'gc.completed',
  'gc.failed',
]);

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const require = createRequire(import.meta.url);

export class ProgressBar {
  /**
   * Loaded when a bar is made, not when the CLI starts: it takes ~20 ms on
   * this project's 2-core machines, and a command whose stderr is not a
   * terminal (a runtime's, a script's, the bench's) never draws one.
   */
  private readonly cliProgress = require('cli-progress') as typeof CliProgress;
  private bar: CliProgress.SingleBar | undefined;
  /** Where the bar started: rate and ETA count only work done while it ran (reused files arrive at once). */
  private startValue = 0;
  private startedAt = 0;

  constructor(private readonly stream: NodeJS.WritableStream) {}

  readonly onEvent = (event: ChunkpointEvent): void => {
    if (ENDS.has(event.type)) {
      this.stop();
      return;
    }
    const frame = frameOf(event);
    if (frame === undefined) return;
    const total = frame.total ?? 0;
    const value = frame.value ?? 0;
    if (this.bar === undefined) {
      this.startValue = value;
      this.startedAt = performance.now();
      this.bar = new this.cliProgress.SingleBar({
        stream: this.stream,
        format: frame.total === undefined ? '{label} {items} | {elapsed}' : '{label} [{bar}] {percentage}% | {done} / {size} | {rate} | ETA {remaining} | {items}',
        barsize: 24,
        // The events are throttled already; this caps terminal writes when a burst arrives.
        fps: 10,
        hideCursor: false,
        clearOnComplete: false,
        stopOnComplete: false,
        barCompleteChar: '#',
        barIncompleteChar: '-',
        linewrap: false,
      });
      this.bar.start(Math.max(total, 1), value, this.payload(frame, value, total));
      return;
    }
    if (total > 0) this.bar.setTotal(total);
    this.bar.update(value, this.payload(frame, value, total));
  };

  /** Leaves the last frame on screen (where it stopped is useful after a failure too) and ends the line. */
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private payload(frame: Frame, value: number, total: number): Record<string, string> {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const rate = seconds > 0.05 ? (value - this.startValue) / seconds : NaN;
    return {
      label: frame.label.padEnd(8),
      items: frame.items,
      done: formatBytes(value),
      size: formatBytes(total),
      rate: Number.isFinite(rate) ? formatRate(rate) : '-- /s',
      // Not 'eta': cli-progress's own tokens override the payload's.
      remaining: value >= total ? '0s' : formatEta((total - value) / rate),
      elapsed: formatEta(seconds),
    };
  }
}
