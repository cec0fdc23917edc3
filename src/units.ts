/** Human units for sizes and rates, in and out. */
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
  return `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${units[unit] ?? 'PiB'}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${((ms % 60_000) / 1000).toFixed(0)} s`;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses `500ms`, `30s`, `10m`, `2h`, `7d`, `1w` (a bare number is seconds). */
export function parseDuration(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match?.[2] === undefined || match[2] === '' ? 's' : match[2].toLowerCase();
  const factor = DURATION_UNITS[unit];
  if (match?.[1] === undefined || factor === undefined) {
    throw new InvalidInputError('INVALID_DURATION', `${what} '${text}' is not a duration; use e.g. 30s, 10m, 2h, 7d`);
  }
  const ms = Number(match[1]) * factor;
  if (!(ms > 0) || !Number.isFinite(ms)) throw new InvalidInputError('INVALID_DURATION', `${what} '${text}' must be a positive duration`);
  return ms;
}
