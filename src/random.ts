/**
 * Seeded pseudo-random numbers, for everything that must replay exactly from
 * a printed seed: generated test state, fault injection, crash schedules.
 * Not for anything that needs unpredictability (use node:crypto there).
 */

/** mulberry32: tiny, fast, seedable; returns numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
