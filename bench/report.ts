/**
 * Benchmark results: the phases measured, the ratios the targets are
 * stated in, and their rendering as an aligned table.
 */
import { formatBytes, formatDuration } from '../src/units.js';

/**
 * 'server': what the S3 server serves for the same bytes with nothing else done (s3-server-limit.ts);
 * 'disk': what the disk takes when the same bytes are only written and synced (disk-limit.ts).
 */
export type Tool = 'chunkpoint' | 'tar|lz4' | 'borg' | 'restic' | 'ceiling' | 'server' | 'disk';

export interface Phase {
  id: string;
  label: string;
  dataset: string;
  tool: Tool;
  /** Logical state bytes the phase covers (the whole state, also for incremental runs). */
  bytes: number;
  /** Wall time of the whole command, process start included. */
  wallMs: number;
  /** chunkpoint's own duration (durationMs), without process start. */
  inProcessMs?: number;
  maxRssBytes?: number;
  /** CPU time (user + system) of the command. */
  cpuMs?: number;
  /** CPU time the S3 server's daemons (gateway, OSD, monitor) spent during the phase: on this machine they share the client's cores. */
  serverCpuMs?: number;
  storedBytes?: number;
  /** 1-minute load average when the phase started, and whether that was quiet (see measure.ts waitQuiet). */
  loadAtStart?: number;
  quietAtStart?: boolean;
  /** Share of CPU time stolen by the hypervisor during the phase. */
  steal?: number;
  /** Requests the S3 server served during the phase (its own counter). */
  requests?: number;
  details?: Record<string, unknown>;
}

export interface Comparison {
  /** What was compared: `<phase> / <peer phase>`. */
  name: string;
  phase: string;
  against: string;
  /** chunkpoint speed / other speed (>1: chunkpoint faster). */
  ratio: number;
}

export interface Target {
  name: string;
  /** Human text of what was measured. */
  measured: string;
  required: string;
  met: boolean | undefined;
  why?: string;
}

export function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

/** chunkpoint phases compare by their whole-process wall time with peers (also whole processes), by in-process time with the ceiling (which has no process start). */
export function compare(phases: readonly Phase[], id: string, againstId: string): Comparison | undefined {
  const a = phases.find((p) => p.id === id);
  const b = phases.find((p) => p.id === againstId);
  if (a === undefined || b === undefined) return undefined;
  const ratio = b.tool === 'ceiling' ? mbps(a.bytes, a.inProcessMs ?? a.wallMs) / mbps(b.bytes, b.wallMs) : mbps(a.bytes, a.wallMs) / mbps(b.bytes, b.wallMs);
  return { name: `${id} / ${againstId}`, phase: id, against: againstId, ratio };
}

export interface RowTargets {
  /** Phase id -> the target text and whether it was met. */
  [phase: string]: { text: string; met: boolean | undefined } | undefined;
}

const ratioText = (c: Comparison | undefined, percent = false): string => (c === undefined ? '-' : percent ? `${(c.ratio * 100).toFixed(0)}%` : `${c.ratio.toFixed(2)}x`);

export interface PeerIds {
  borg?: string;
  tar?: string;
  restic?: string;
  ceiling?: string;
  /** What the resource the phase is bound by gives with nothing else done: the S3 server, or the disk. */
  limit?: string;
}

export function renderTable(phases: readonly Phase[], peersOf: (id: string) => PeerIds, rowTargets: RowTargets): string {
  const header = ['phase', 'MB/s', 'time', 'in-proc', 'peak RSS', 'CPU', 'srv CPU', 'S3 req', 'load', 'steal', 'vs borg', 'vs tar|lz4', 'vs restic', 'vs ceiling', 'vs limit', 'target', 'result'];
  const rows = phases.map((p) => {
    const peers = peersOf(p.id);
    const t = rowTargets[p.id];
    return [
      `${p.dataset} ${p.label}`,
      mbps(p.bytes, p.wallMs).toFixed(0),
      formatDuration(p.wallMs),
      p.inProcessMs === undefined ? '-' : formatDuration(p.inProcessMs),
      p.maxRssBytes === undefined ? '-' : formatBytes(p.maxRssBytes),
      p.cpuMs === undefined ? '-' : `${(p.cpuMs / 1000).toFixed(1)} s`,
      p.serverCpuMs === undefined ? '-' : `${(p.serverCpuMs / 1000).toFixed(1)} s`,
      p.requests === undefined ? '-' : String(p.requests),
      // A phase that started on a busy machine is marked: its figure is noise.
      p.loadAtStart === undefined ? '-' : `${p.loadAtStart.toFixed(2)}${p.quietAtStart === false ? ' BUSY' : ''}`,
      p.steal === undefined ? '-' : `${(p.steal * 100).toFixed(0)}%`,
      peers.borg === undefined ? '-' : ratioText(compare(phases, p.id, peers.borg)),
      peers.tar === undefined ? '-' : ratioText(compare(phases, p.id, peers.tar)),
      peers.restic === undefined ? '-' : ratioText(compare(phases, p.id, peers.restic)),
      peers.ceiling === undefined ? '-' : ratioText(compare(phases, p.id, peers.ceiling), true),
      peers.limit === undefined ? '-' : ratioText(compare(phases, p.id, peers.limit), true),
      t?.text ?? '',
      t === undefined ? '' : t.met === undefined ? 'n/a' : t.met ? 'pass' : 'MISS',
    ];
  });
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 || i >= 15 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function renderTargets(targets: readonly Target[]): string {
  const rows = targets.map((t) => [t.met === undefined ? 'n/a ' : t.met ? 'pass' : 'MISS', t.name, t.measured, `(need ${t.required})`, t.why ?? '']);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i < 4 ? c.padEnd(widths[i] ?? 0) : c)).join('  ').trimEnd()).join('\n');
}
