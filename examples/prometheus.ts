// Feeding chunkpoint's events to Prometheus-style metrics: counters from the
// results of finished operations, gauges from progress events, rendered in
// the text exposition format (what a /metrics endpoint serves).
// Run: node dist/examples/prometheus.js <stateDir> <storeDir>
import { pathToFileURL } from 'node:url';
import { Chunkpoint, type ChunkpointEvent, type Operation } from 'chunkpoint';

type Labels = Record<string, string>;

interface Family {
  help: string;
  type: 'counter' | 'gauge';
  /** Series by their rendered label set. */
  series: Map<string, number>;
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export class ChunkpointMetrics {
  private readonly families = new Map<string, Family>();

  /** Pass as `new Chunkpoint({ onEvent: metrics.onEvent })`. */
  readonly onEvent = (e: ChunkpointEvent): void => {
    const operation = e.type.slice(0, e.type.indexOf('.')) as Operation;
    if (e.type === 'snapshot.progress' || e.type === 'restore.progress' || e.type === 'verify.progress' || e.type === 'copy.progress') {
      this.set('chunkpoint_progress_bytes', 'gauge', 'Bytes done by the running operation', { operation }, e.bytesDone);
      this.set('chunkpoint_progress_bytes_total', 'gauge', 'Bytes the running operation has to do', { operation }, e.bytesTotal);
    } else if (e.type === 'snapshot.committed') {
      this.add('chunkpoint_snapshot_bytes_read_total', 'State bytes read by snapshots', {}, e.result.bytesRead);
      this.add('chunkpoint_snapshot_bytes_written_total', 'Bytes written to the store by snapshots (blobs and metadata)', {}, e.result.bytesWritten);
      this.add('chunkpoint_snapshot_bytes_reused_total', 'State bytes reused from the previous checkpoint without reading', {}, e.result.bytesReused);
      this.add('chunkpoint_snapshot_chunks_total', 'Chunks handled by snapshots', { kind: 'new' }, e.result.chunksNew);
      this.add('chunkpoint_snapshot_chunks_total', 'Chunks handled by snapshots', { kind: 'deduplicated' }, e.result.chunksDeduped);
      this.set('chunkpoint_last_checkpoint_id', 'gauge', 'Id of the last checkpoint committed', { job: e.job }, e.result.checkpointId);
      this.set('chunkpoint_state_bytes', 'gauge', 'Logical size of the state in the last checkpoint', { job: e.job }, e.result.bytes);
      this.finished(operation, 'success', e.result.durationMs);
    } else if (e.type === 'restore.completed') {
      this.add('chunkpoint_restore_bytes_total', 'Stored bytes read by restores', { source: 'store' }, e.result.bytesFromRemote);
      this.add('chunkpoint_restore_bytes_total', 'Stored bytes read by restores', { source: 'cache' }, e.result.bytesFromCache);
      this.add('chunkpoint_restore_bytes_kept_total', 'Bytes of target files kept in place', {}, e.result.bytesKept);
      this.finished(operation, 'success', e.result.durationMs);
    } else if (e.type === 'gc.completed') {
      this.add('chunkpoint_gc_packs_removed_total', 'Packs removed by gc', {}, e.result.packsRemoved);
      this.add('chunkpoint_gc_bytes_freed_total', 'Bytes freed by gc', {}, e.result.bytesFreed);
      this.finished(operation, 'success', e.result.durationMs);
    } else if (e.type === 'verify.completed' || e.type === 'copy.completed') {
      this.finished(operation, 'success', e.result.durationMs);
    } else if (e.type.endsWith('.failed')) {
      this.finished(operation, 'failure', e.elapsedMs);
    }
  };

  /** The text exposition format, version 0.0.4. */
  render(): string {
    const lines: string[] = [];
    for (const [name, family] of [...this.families].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`);
      for (const [labels, value] of family.series) lines.push(`${name}${labels} ${value}`);
    }
    return `${lines.join('\n')}\n`;
  }

  private finished(operation: Operation, outcome: string, durationMs: number): void {
    this.add('chunkpoint_operations_total', 'Operations finished', { operation, outcome }, 1);
    this.set('chunkpoint_last_duration_seconds', 'gauge', 'Duration of the last finished operation', { operation }, durationMs / 1000);
    if (outcome === 'success') this.set('chunkpoint_progress_bytes', 'gauge', 'Bytes done by the running operation', { operation }, 0);
  }

  private add(name: string, help: string, labels: Labels, value: number): void {
    const series = this.family(name, 'counter', help).series;
    const key = labelText(labels);
    series.set(key, (series.get(key) ?? 0) + value);
  }

  private set(name: string, type: 'gauge', help: string, labels: Labels, value: number): void {
    this.family(name, type, help).series.set(labelText(labels), value);
  }

  private family(name: string, type: Family['type'], help: string): Family {
    let family = this.families.get(name);
    if (family === undefined) {
      family = { help, type, series: new Map() };
      this.families.set(name, family);
    }
    return family;
  }
}

// Run directly: one snapshot, then the metrics page.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [stateDir = 'db', store = '.chunkpoint-example/checkpoints'] = process.argv.slice(2);
  const metrics = new ChunkpointMetrics();
  const cp = new Chunkpoint({ onEvent: metrics.onEvent });
  try {
    await cp.snapshot(stateDir, { store, job: 'orders' });
  } finally {
    await cp.close();
  }
  process.stdout.write(metrics.render());
}
