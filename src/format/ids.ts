/**
 * Time-ordered unique ids (ULIDs: 48 bits of milliseconds, 80 random bits,
 * 26 characters of Crockford base32) for everything a writer creates under a
 * name: sessions, packs, manifests, temp files.
 *
 * Why names carry time: garbage collection decides an object's age from its
 * name, never from a store's mtime or LastModified (which a copy, a touch or
 * a restore from backup resets, and which come from another clock than the
 * writer's). Why random bits: two writers never produce the same name, so a
 * name is never reused and put-if-absent never has to arbitrate between two
 * different objects.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const ID_LENGTH = 26;
export const ID_PATTERN = '[0-9A-HJKMNP-TV-Z]{26}';
const ID_RE = new RegExp(`^${ID_PATTERN}$`);
/** The largest time a ULID can hold (2^48 - 1 ms, year 10889). */
const MAX_TIME = 2 ** 48 - 1;

/** A new id whose time part is `now` (milliseconds since the epoch). */
export function newId(now: number = Date.now()): string {
  if (!Number.isSafeInteger(now) || now < 0 || now > MAX_TIME) throw new RangeError(`cannot name an id after time ${now}`);
  let out = '';
  let time = now;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET.charAt(time % 32) + out;
    time = Math.floor(time / 32);
  }
  // 80 random bits: 16 characters of 5 bits each, taken from 10 random bytes.
  const random = randomBytes(10);
  let bits = 0;
  let value = 0;
  for (const byte of random) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET.charAt((value >>> bits) & 31);
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

export function isId(value: string): boolean {
  return ID_RE.test(value);
}

/** The creation time (ms since the epoch) an id carries, or undefined when it is not an id. */
export function idTime(id: string): number | undefined {
  if (!isId(id)) return undefined;
  let time = 0;
  for (let i = 0; i < 10; i++) time = time * 32 + ALPHABET.indexOf(id.charAt(i));
  return time;
}
