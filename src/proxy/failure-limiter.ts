/**
 * Failed token guesses per source address in a sliding minute, to slow token guessing.
 *
 * A look-up is asynchronous (Redis, SQL), so checking the count before it and recording after it
 * let hundreds of simultaneous guesses through. Here every look-up holds a slot for its address
 * while it runs, and an address never has more look-ups running than it has failures left: the
 * rest wait their turn (in a bounded queue) instead of being refused, so many valid connects from
 * one NAT address all go through, and guesses stop at exactly `limit`. Only guesses count
 * (`release(address, true)`): a revoked or expired token is one the store knows.
 *
 * Bounded: at most `maxAddresses` addresses with failures (oldest dropped first) and at most
 * `maxWaiting` waiting attempts per address. Pure apart from the clock.
 */
export interface FailureLimiterOptions {
  readonly windowMs?: number;
  readonly maxAddresses?: number;
  readonly maxWaiting?: number;
  readonly now?: () => number;
}

interface AddressState {
  running: number;
  readonly waiting: Array<(granted: boolean) => void>;
}

export class FailureLimiter {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #maxAddresses: number;
  readonly #maxWaiting: number;
  readonly #now: () => number;
  readonly #failures = new Map<string, number[]>();
  readonly #active = new Map<string, AddressState>();

  constructor(limit: number, options: FailureLimiterOptions = {}) {
    this.#limit = limit;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxAddresses = options.maxAddresses ?? 10_000;
    this.#maxWaiting = options.maxWaiting ?? 256;
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

  /**
   * Wait for a look-up slot. Resolves false at once (or when its turn comes) if the address is
   * blocked or its queue is full; every `true` must be followed by exactly one release().
   */
  acquire(address: string): Promise<boolean> {
    if (this.#limit === 0) return Promise.resolve(true);
    if (this.blocked(address)) return Promise.resolve(false);
    let state = this.#active.get(address);
    if (!state) this.#active.set(address, (state = { running: 0, waiting: [] }));
    if (state.running + this.#recent(address).length < this.#limit) {
      state.running++;
      return Promise.resolve(true);
    }
    if (state.waiting.length >= this.#maxWaiting) return Promise.resolve(false);
    return new Promise((resolve) => state.waiting.push(resolve));
  }

  /** End a look-up; `guessed`: the token was unknown to the store (a guess). */
  release(address: string, guessed: boolean): void {
    if (this.#limit === 0) return;
    if (guessed) this.#record(address);
    const state = this.#active.get(address);
    if (!state) return;
    state.running--;
    const blocked = this.blocked(address);
    while (state.waiting.length > 0 && (blocked || state.running + this.#recent(address).length < this.#limit)) {
      const next = state.waiting.shift() as (granted: boolean) => void;
      if (!blocked) state.running++;
      next(!blocked);
    }
    if (state.running === 0 && state.waiting.length === 0) this.#active.delete(address);
  }

  #record(address: string): void {
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
