/** Human units for sizes, durations, rates, ratios and dates, in and out. */
import { InvalidInputError } from './errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** Parses `4194304`, `4MiB`, `1.5 GB`, `512k`. */
export function parseSize(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const factor = match?.[2] === undefined ? undefined : UNITS[match[2].toLowerCase()];
  if (match?.[1] === undefined || factor === undefined) {
    throw new InvalidInputError('INVALID_SIZE', `${what} '${text}' is not a size; use bytes or a unit such as 512KiB, 4MiB, 2GiB`);
  }
  const value = Math.round(Number(match[1]) * factor);
  if (!Number.isSafeInteger(value)) throw new InvalidInputError('INVALID_SIZE', `${what} '${text}' is too large`);
  return value;
}

export function formatBytes(n: number): string {
  const abs = Math.abs(n);
  if (abs < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = n / 1024;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  // One decimal everywhere: columns of sizes then line up on the decimal point.
  return `${value.toFixed(1)} ${units[unit] ?? 'PiB'}`;
}

/** A rate in bytes per second, e.g. `212.4 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(Number.isFinite(bytesPerSecond) ? bytesPerSecond : 0))}/s`;
}

/** A size ratio such as logical / stored: `1.95x`. */
export function formatRatio(ratio: number): string {
  return `${(Number.isFinite(ratio) ? ratio : 0).toFixed(2)}x`;
}

/** An ISO timestamp as local time, `2026-11-21 10:18:27`, the way operators read logs; `--json` keeps the ISO form. */
export function formatDate(iso: string | number): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The local UTC offset of a date, `+01:00`, for a header that states which local time the table shows. */
export function formatUtcOffset(iso: string | number): string {
  const minutes = -new Date(iso).getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${((ms % 60_000) / 1000).toFixed(0)} s`;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Parses `500ms`, `30s`, `10m`, `2h`, `7d`, `1w` (a bare number is seconds).
 * A duration must be positive unless `allowZero` (e.g. a grace period that
 * may be none), which accepts 0 in any unit (`0`, `0s`, `0.0h`) and nothing
 * else that is not a duration.
 */
export function parseDuration(text: string, what: string, options: { allowZero?: boolean } = {}): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match?.[2] === undefined || match[2] === '' ? 's' : match[2].toLowerCase();
  const factor = DURATION_UNITS[unit];
  if (match?.[1] === undefined || factor === undefined) {
    throw new InvalidInputError('INVALID_DURATION', `${what} '${text}' is not a duration; use e.g. 30s, 10m, 2h, 7d`);
  }
  const ms = Number(match[1]) * factor;
  if (ms === 0 && options.allowZero === true) return 0;
  if (!(ms > 0) || !Number.isFinite(ms)) throw new InvalidInputError('INVALID_DURATION', `${what} '${text}' must be a positive duration${options.allowZero === true ? ' or 0' : ''}`);
  return ms;
}
