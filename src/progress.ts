/**
 * Progress plumbing, a leaf every coordinator imports: a coordinator calls
 * `update` after every worker result with a function that builds its
 * figures; the sink decides when an event is due. The figures themselves
 * are each coordinator's own type; events.ts puts them into the event API.
 */

/** Default minimum time between two progress events of one operation. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 100;

/**
 * How a coordinator reports progress: it calls `update` after every worker
 * result with a function building the figures, which runs only when an event
 * is due, so the per-chunk cost of an unobserved operation is one comparison.
 */
export interface ProgressSink<P> {
  update(figures: () => P, force?: boolean): void;
}

export function throttledSink<P>(intervalMs: number, deliver: (figures: P) => void): ProgressSink<P> {
  let last = -Infinity;
  return {
    update(figures, force = false) {
      const now = performance.now();
      if (!force && now - last < intervalMs) return;
      last = now;
      deliver(figures());
    },
  };
}
