/**
 * The live console sessions of this node, owned by the gateway: the proxy adds and removes them,
 * the API lists and closes them, revocation and shutdown close them by instance or all at once.
 * Protocol-neutral: a session is anything that can describe itself and be closed with a reason.
 */
import type { ConsoleProtocol } from '../console/types.js';
import type { PortholeError } from '../errors.js';

/** What `GET /v1/sessions` shows of one session. No token, not even its hash. */
export interface SessionInfo {
  readonly id: string;
  readonly instance: string | undefined;
  readonly protocol: ConsoleProtocol | undefined;
  readonly remote: string;
  /** ISO 8601. */
  readonly started: string;
  readonly bytesToClient: number;
  readonly bytesToServer: number;
  readonly state: string;
}

export interface RegisteredSession {
  readonly id: string;
  readonly instance: string | undefined;
  /** Is this a console of an instance named (or with the UUID) in `keys`? */
  matchesInstance(keys: readonly string[]): boolean;
  info(): SessionInfo;
  /** Close with this reason (the client sees its close code). */
  fail(err: PortholeError): void;
}

export class SessionRegistry<S extends RegisteredSession = RegisteredSession> implements Iterable<S> {
  readonly #sessions = new Map<string, S>();

  add(session: S): void {
    this.#sessions.set(session.id, session);
  }

  remove(session: S): void {
    if (this.#sessions.get(session.id) === session) this.#sessions.delete(session.id);
  }

  get size(): number {
    return this.#sessions.size;
  }

  find(id: string): S | undefined {
    return this.#sessions.get(id);
  }

  countForInstance(instance: string): number {
    let n = 0;
    for (const s of this.#sessions.values()) if (s.instance === instance) n++;
    return n;
  }

  list(): SessionInfo[] {
    return [...this.#sessions.values()].map((s) => s.info());
  }

  /** Close one session; false when there is none with that id. */
  close(id: string, reason: PortholeError): boolean {
    const s = this.#sessions.get(id);
    if (s === undefined) return false;
    s.fail(reason);
    return true;
  }

  /** Close every session of these instance names/UUIDs; how many were closed. */
  closeInstances(keys: readonly string[], reason: () => PortholeError): number {
    let closed = 0;
    for (const s of [...this.#sessions.values()]) {
      if (s.matchesInstance(keys)) {
        s.fail(reason());
        closed++;
      }
    }
    return closed;
  }

  /** Close all (shutdown). */
  closeAll(reason: () => PortholeError): void {
    for (const s of [...this.#sessions.values()]) s.fail(reason());
  }

  [Symbol.iterator](): Iterator<S> {
    return this.#sessions.values();
  }
}
