/**
 * Failed token attempts per source address in a sliding minute, to slow token guessing. Bounded:
 * at most `maxAddresses` entries; the oldest are dropped first. Pure apart from the clock.
 */
export class FailureLimiter {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #maxAddresses: number;
  readonly #now: () => number;
  readonly #failures = new Map<string, number[]>();

  constructor(limit: number, options: { windowMs?: number; maxAddresses?: number; now?: () => number } = {}) {
    this.#limit = limit;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxAddresses = options.maxAddresses ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  #recent(address: string): number[] {
    const cutoff = this.#now() - this.#windowMs;
    const list = (this.#failures.get(address) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) this.#failures.delete(address);
    else this.#failures.set(address, list);
    return list;
  }

  /** True when this address already used up its failures for the window. */
  blocked(address: string): boolean {
    return this.#limit > 0 && this.#recent(address).length >= this.#limit;
  }

  record(address: string): void {
    if (this.#limit === 0) return;
    const list = this.#recent(address);
    list.push(this.#now());
    this.#failures.delete(address); // re-insert: Map order is the eviction order
    this.#failures.set(address, list.slice(-this.#limit));
    if (this.#failures.size > this.#maxAddresses) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
  }
}
