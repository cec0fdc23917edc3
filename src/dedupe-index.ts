/**
 * The base checkpoint's reusable chunks, as an open-addressing hash table in
 * a SharedArrayBuffer: the coordinator builds it once per snapshot task, and
 * every worker looks chunks up in it directly (no message, no copy, no
 * request to the store). Dedupe is against the base only: a chunk is reused
 * when the checkpoint the snapshot builds on references it in a pack known
 * to be whole, never because an object of that name happens to exist.
 *
 * Layout: u32 capacity (a power of two), u32 reserved, then `capacity` slots
 * of 24 bytes: content key (16), raw length (u32 LE), value (u32 LE: entry
 * index + 1; 0 marks an empty slot). Keys are hashes already, so their first
 * four bytes pick the slot; collisions probe linearly.
 */
import { keyToBytes } from './format/content-key.js';

const HEADER = 8;
const SLOT = 24;

export function buildDedupeIndex(entries: readonly { key: string; rawLength: number }[]): SharedArrayBuffer {
  let capacity = 16;
  while (capacity < entries.length * 2) capacity *= 2;
  const table = new SharedArrayBuffer(HEADER + capacity * SLOT);
  const bytes = Buffer.from(table);
  bytes.writeUInt32LE(capacity, 0);
  for (const [i, entry] of entries.entries()) {
    const key = keyToBytes(entry.key);
    let slot = key.readUInt32LE(0) & (capacity - 1);
    for (;;) {
      const at = HEADER + slot * SLOT;
      const value = bytes.readUInt32LE(at + 20);
      if (value === 0) {
        key.copy(bytes, at);
        bytes.writeUInt32LE(entry.rawLength, at + 16);
        bytes.writeUInt32LE(i + 1, at + 20);
        break;
      }
      // The same chunk twice: the first entry stands.
      if (bytes.readUInt32LE(at + 16) === entry.rawLength && key.equals(bytes.subarray(at, at + 16))) break;
      slot = (slot + 1) & (capacity - 1);
    }
  }
  return table;
}

const views = new WeakMap<SharedArrayBuffer, Buffer>();

/** The entry index of a chunk in the table, or -1 when the base does not hold it. */
export function lookupDedupe(table: SharedArrayBuffer, key: Uint8Array, rawLength: number): number {
  let bytes = views.get(table);
  if (bytes === undefined) {
    bytes = Buffer.from(table);
    views.set(table, bytes);
  }
  const capacity = bytes.readUInt32LE(0);
  let slot = Buffer.from(key.buffer, key.byteOffset, 4).readUInt32LE(0) & (capacity - 1);
  for (let probes = 0; probes < capacity; probes++) {
    const at = HEADER + slot * SLOT;
    const value = bytes.readUInt32LE(at + 20);
    if (value === 0) return -1;
    if (bytes.readUInt32LE(at + 16) === rawLength && bytes.compare(key, 0, 16, at, at + 16) === 0) return value - 1;
    slot = (slot + 1) & (capacity - 1);
  }
  return -1;
}
