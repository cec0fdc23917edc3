/**
 * Field-by-field validation of decoded JSON: every stored or handed-over
 * structure (metadata, manifests, sessions, task snapshots) goes through one
 * of these before a single field is used, and refuses the whole thing on the
 * first problem, naming the field.
 */
import { CorruptDataError } from '../errors.js';
import { checkStoredName } from './names.js';

export class Validator {
  constructor(
    private readonly where: string,
    private readonly error: (message: string) => Error = (message) => new CorruptDataError('METADATA_INVALID', `${message}; it cannot be used`),
  ) {}

  fail(path: string, why: string): never {
    throw this.error(`${this.where}: field ${path} ${why}`);
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path, 'is not an object');
    return value as Record<string, unknown>;
  }

  array(value: unknown, path: string, maxLength = Number.MAX_SAFE_INTEGER): unknown[] {
    if (!Array.isArray(value)) this.fail(path, 'is not an array');
    if (value.length > maxLength) this.fail(path, `has more than ${maxLength} entries`);
    return value;
  }

  string(value: unknown, path: string, maxLength = 4096): string {
    if (typeof value !== 'string') this.fail(path, 'is not a string');
    if (value.length > maxLength) this.fail(path, `is longer than ${maxLength} characters`);
    return value;
  }

  int(value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) this.fail(path, 'is not an integer');
    if (value < min || value > max) this.fail(path, `is ${value}, outside ${min}..${max}`);
    return value;
  }

  /** A finite number within [min, max]. */
  number(value: unknown, path: string, min = -Number.MAX_VALUE, max = Number.MAX_VALUE): number {
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(path, 'is not a finite number');
    if (value < min || value > max) this.fail(path, `is ${value}, outside ${min}..${max}`);
    return value;
  }

  bool(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') this.fail(path, 'is not a boolean');
    return value;
  }

  /** An ISO date string; returns its time in ms. */
  date(value: unknown, path: string): number {
    const text = this.string(value, path, 64);
    const ms = Date.parse(text);
    if (Number.isNaN(ms)) this.fail(path, 'is not a date');
    return ms;
  }

  name(value: unknown, path: string): string {
    return checkStoredName(this.string(value, path), `${this.where}: field ${path}`);
  }

  matches(value: unknown, path: string, re: RegExp, what: string): string {
    const text = this.string(value, path, 512);
    if (!re.test(text)) this.fail(path, `is not ${what}`);
    return text;
  }
}

/** mtimes are milliseconds since the epoch: a file dated before 1900 or after 9999 is not a real file. */
export const MIN_MTIME_MS = -2_208_988_800_000;
export const MAX_MTIME_MS = 253_402_300_799_999;
