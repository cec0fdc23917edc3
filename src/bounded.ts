/**
 * Bounded concurrency, on either side of the thread boundary: how many
 * store reads, worker requests or file system calls one loop keeps in flight.
 */

/**
 * Runs `work` for every item with at most `limit` in flight, so the number of
 * pending descriptors stays bounded however large the state is. The first
 * failure stops new work, waits for what is in flight, and is rethrown.
 */
export async function forEachBounded<T>(items: Iterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]();
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    for (;;) {
      if (failure !== undefined) return;
      const next = iterator.next();
      if (next.done === true) return;
      try {
        await work(next.value);
      } catch (error) {
        failure ??= { error };
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, lane));
  if (failure !== undefined) throw failure.error;
}
