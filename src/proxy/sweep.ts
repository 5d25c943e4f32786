/**
 * Walks over every open console (heartbeat pings, token re-checks) in slices, giving the event loop
 * back between slices. At 8,000 consoles one synchronous walk of `ws.ping()` or of memory-store
 * look-ups (whose promises settle in the same microtask burst) held the loop for ~10 ms each time,
 * and 8,000 pongs coming back at once were another such burst (bench/scale, proxy pinned to one
 * CPU: idle event-loop p99 20 ms with both, 11–13 ms with neither).
 */

export interface SweepOptions {
  /** Items visited between two turns of the event loop. */
  readonly sliceSize: number;
  /**
   * 0: yield for one turn (setImmediate) between slices. > 0: wait this long, so work the visits
   * cause (pongs coming back) spreads over time too.
   */
  readonly pauseMs: number;
}

const DEFAULT_SWEEP: SweepOptions = { sliceSize: 256, pauseMs: 0 };

const pause = (ms: number): Promise<void> =>
  new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));

/**
 * Visit a snapshot of `items` (items added meanwhile wait for the next sweep), a slice at a time,
 * awaiting a visit that returns a promise, yielding to I/O between slices.
 */
export async function sweepInSlices<T>(items: Iterable<T>, visit: (item: T) => void | Promise<void>, options: SweepOptions = DEFAULT_SWEEP): Promise<void> {
  const snapshot = [...items];
  for (let i = 0; i < snapshot.length; i++) {
    if (i > 0 && i % options.sliceSize === 0) await pause(options.pauseMs);
    const pending = visit(snapshot[i] as T);
    if (pending !== undefined) await pending;
  }
}
