/**
 * The live console sessions of this node, owned by the gateway: the proxy adds and removes them,
 * the API lists and closes them, revocation and shutdown close them by instance or all at once.
 * Protocol-neutral: a session is anything that can describe itself and be closed with a reason.
 */
import type { ConsoleProtocol, ConsoleRequester } from '../console/types.js';
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
  /** Connections of this console (a SPICE console has one per channel); 1 for VNC and serial. */
  readonly channels?: number;
  /** Who minted it: the API key's name, the user and project the caller named (Nova mode: the instance's project). */
  readonly who?: ConsoleRequester | undefined;
  /** A view-only console (no input passed). */
  readonly viewOnly?: boolean;
  /** The session's recording file (in `[console] record_dir`), when recorded. */
  readonly recording?: string;
}

export interface RegisteredSession {
  readonly id: string;
  /** Known when the session is added; does not change after (the registry indexes it). */
  readonly instance: string | undefined;
  /** Sessions with the same group are one console (SPICE's channels): counted, listed and closed as one. */
  readonly group?: string | undefined;
  /** Is this a console of an instance named (or with the UUID) in `keys`? */
  matchesInstance(keys: readonly string[]): boolean;
  info(): SessionInfo;
  /** Close with this reason (the client sees its close code). */
  fail(err: PortholeError): void;
}

export class SessionRegistry<S extends RegisteredSession = RegisteredSession> implements Iterable<S> {
  readonly #sessions = new Map<string, S>();
  // Indexes, so what every upgrade asks (consoles open, this group open?, consoles of this
  // instance) costs the same at 8,000 open as at 1: connections per console, consoles per instance.
  // A session's id, instance and group do not change once it is added.
  readonly #connections = new Map<string, number>();
  readonly #instanceConsoles = new Map<string, Set<string>>();

  add(session: S): void {
    if (this.#sessions.has(session.id)) this.remove(this.#sessions.get(session.id) as S);
    const key = keyOf(session);
    const instance = session.instance;
    this.#sessions.set(session.id, session);
    this.#connections.set(key, (this.#connections.get(key) ?? 0) + 1);
    if (instance !== undefined) {
      let keys = this.#instanceConsoles.get(instance);
      if (keys === undefined) this.#instanceConsoles.set(instance, keys = new Set());
      keys.add(key);
    }
  }

  remove(session: S): void {
    if (this.#sessions.get(session.id) !== session) return;
    const key = keyOf(session);
    const instance = session.instance;
    this.#sessions.delete(session.id);
    const left = (this.#connections.get(key) ?? 1) - 1;
    if (left > 0) {
      this.#connections.set(key, left);
      return;
    }
    this.#connections.delete(key);
    if (instance === undefined) return;
    const keys = this.#instanceConsoles.get(instance);
    keys?.delete(key);
    if (keys?.size === 0) this.#instanceConsoles.delete(instance);
  }

  /** Connections (a SPICE console's channels each count). */
  get size(): number {
    return this.#sessions.size;
  }

  /** Consoles: connections of one group count once. What the session limits count (every upgrade asks). */
  get consoles(): number {
    return this.#connections.size;
  }

  /** Is a console of this group open (its next channel is not a new console)? */
  hasGroup(group: string): boolean {
    return this.#connections.has(group);
  }

  find(id: string): S | undefined {
    return this.#sessions.get(id);
  }

  /** Consoles open for this instance (a group counts once). */
  countForInstance(instance: string): number {
    return this.#instanceConsoles.get(instance)?.size ?? 0;
  }

  /** One entry per console: a group's connections merged (the first one's id, bytes summed, `channels`). */
  list(): SessionInfo[] {
    const byKey = new Map<string, SessionInfo>();
    for (const s of this.#sessions.values()) {
      const info = s.info();
      const seen = byKey.get(keyOf(s));
      byKey.set(keyOf(s), seen === undefined ? { ...info, channels: 1 } : {
        ...seen, channels: (seen.channels ?? 1) + 1,
        bytesToClient: seen.bytesToClient + info.bytesToClient, bytesToServer: seen.bytesToServer + info.bytesToServer,
      });
    }
    return [...byKey.values()];
  }

  /** Close one console (every connection of its group); false when there is none with that id. */
  close(id: string, reason: PortholeError): boolean {
    const s = this.#sessions.get(id);
    if (s === undefined) return false;
    if (s.group === undefined) s.fail(reason);
    else this.closeGroup(s.group, reason);
    return true;
  }

  /** Close every connection of a group (one SPICE console's channels) with this reason. */
  closeGroup(group: string, reason: PortholeError): void {
    for (const s of [...this.#sessions.values()]) if (s.group === group) s.fail(reason);
  }

  /** Close every session of these instance names/UUIDs; how many consoles were closed (a group counts once). */
  closeInstances(keys: readonly string[], reason: () => PortholeError): number {
    const closed = new Set<string>();
    for (const s of [...this.#sessions.values()]) {
      if (s.matchesInstance(keys)) {
        s.fail(reason());
        closed.add(keyOf(s));
      }
    }
    return closed.size;
  }

  /** Close all (shutdown). */
  closeAll(reason: () => PortholeError): void {
    for (const s of [...this.#sessions.values()]) s.fail(reason());
  }

  [Symbol.iterator](): Iterator<S> {
    return this.#sessions.values();
  }
}

/** A session's console: its group, or itself (groups are `spice:…`, never `id:…`). */
function keyOf(s: RegisteredSession): string {
  return s.group ?? `id:${s.id}`;
}
