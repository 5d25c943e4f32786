/**
 * One console connection, from the accepted upgrade to the last byte, whatever the protocol: a
 * small state machine with a single failure exit (noVNC's `_fail`), so every way a console ends
 * closes the WebSocket with the code that says why, and releases the server side (the protocol
 * handler's attachment) and timers exactly once.
 */
import { channel } from 'node:diagnostics_channel';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import type { ConsoleEvents, SessionIdentity } from '../console/events.js';
import type { ConsoleAttachment, ConsoleLink, ProtocolHandler } from '../console/handler.js';
import type { ConnectInfo, ConsoleProtocol } from '../console/types.js';
import { closeReasonFor, PortholeError } from '../errors.js';
import type { RegisteredSession, SessionInfo } from '../sessions/registry.js';
import type { Recordings, SessionRecording } from '../recording/recorder.js';

export type SessionState = 'authenticating' | 'connecting' | 'negotiating' | 'relaying' | 'closing' | 'closed';

const ALLOWED: Readonly<Record<SessionState, readonly SessionState[]>> = {
  authenticating: ['connecting', 'closing'],
  connecting: ['negotiating', 'relaying', 'closing'],
  negotiating: ['relaying', 'closing'],
  relaying: ['closing'],
  closing: ['closed'],
  closed: [],
};

/** Browser bytes kept while the console is still connecting or negotiating; more is a protocol error. */
export const MAX_EARLY_BYTES = 64 * 1024;

export const sessionOpenChannel = channel('porthole:session:open');
export const sessionCloseChannel = channel('porthole:session:close');

export interface ConsoleSessionOptions {
  readonly id: string;
  readonly ws: WebSocket;
  /** The console token, for re-checks in the store (revocation on other nodes). Never logged. */
  readonly token: string;
  /** The token's instance, known from construction so the session registry can index it. */
  readonly instance?: string | undefined;
  /** The proxy's logger; the session logs through one child of it with `logBindings` and the console's own. */
  readonly logger: Logger;
  /** What every line about this connection carries (session id, token log id, remote address). */
  readonly logBindings?: Record<string, unknown> | undefined;
  /** The browser's address (after trusted forwarded headers), for the session list. */
  readonly remote: string;
  /** The server side, chosen by the token's protocol. */
  readonly handler: ProtocolHandler;
  /** Sessions of one console (a SPICE console's channels), counted and closed together. */
  readonly group?: string | undefined;
  readonly connectTimeoutMs: number;
  /** Limit for the protocol's own handshake once connected. */
  readonly handshakeTimeoutMs: number;
  readonly onClosed: (session: ConsoleSession) => void;
  /** Metrics and audit of this gateway. */
  readonly events?: ConsoleEvents | undefined;
  /** Where recorded sessions are written (`"record": true` tokens, or all with `recordAll`). */
  readonly recordings?: Recordings | undefined;
  /** `[console] record`: record every session. */
  readonly recordAll?: boolean | undefined;
}

/** What the upgrade handler learned about the token before accepting the upgrade. */
export type SessionAuth =
  | { readonly ok: true; readonly connectInfo: ConnectInfo; readonly expiresAt?: number; readonly password?: string | undefined; readonly tlsPort?: number | undefined }
  | { readonly ok: false; readonly error: PortholeError };

/** The close code ws sent for one of its protocol errors (stored under its `status-code` symbol). Pure. */
export function wsErrorCloseCode(err: Error): number | undefined {
  const key = Object.getOwnPropertySymbols(err).find((s) => s.description === 'status-code');
  const value = key === undefined ? undefined : (err as unknown as Record<symbol, unknown>)[key];
  return typeof value === 'number' ? value : undefined;
}

export class ConsoleSession implements RegisteredSession {
  readonly id: string;
  readonly startedAt = Date.now();
  #state: SessionState = 'authenticating';
  #protocol: ConsoleProtocol | undefined;
  #alive = true;
  #instance: string | undefined;
  #instanceUuid: string | undefined;
  #closeCode: number | undefined;
  #failCode: string | undefined;
  #who: ConnectInfo['who'];
  #relayed = false;
  readonly #ws: WebSocket;
  #logger: Logger;
  readonly #options: ConsoleSessionOptions;
  #attachment: ConsoleAttachment | undefined;
  /** The connect timeout, then the handshake timeout. */
  #timer: NodeJS.Timeout | undefined;
  #expiresAt = Infinity;
  #lastBytes = 0;
  #lastActivityAt = Date.now();
  #early: Buffer[] = [];
  #earlyBytes = 0;
  #viewOnly = false;
  #recording: SessionRecording | undefined;

  constructor(options: ConsoleSessionOptions) {
    this.id = options.id;
    this.#ws = options.ws;
    // Replaced in begin() (called right after construction) by the session's one child logger.
    this.#logger = options.logger;
    this.#options = options;
    this.#instance = options.instance;
    this.#ws.on('pong', () => { this.#alive = true; });
    this.#ws.on('error', (err) => this.#onClientError(err));
    this.#ws.on('close', (code: number) => this.#onClientClosed(code));
  }

  get state(): SessionState {
    return this.#state;
  }

  get instance(): string | undefined {
    return this.#instance;
  }

  get group(): string | undefined {
    return this.#options.group;
  }

  get token(): string {
    return this.#options.token;
  }

  info(): SessionInfo {
    return {
      id: this.id, instance: this.#instance, protocol: this.#protocol, remote: this.#options.remote,
      started: new Date(this.startedAt).toISOString(), bytesToClient: this.#attachment?.bytesToClient ?? 0,
      bytesToServer: this.#attachment?.bytesToServer ?? 0, state: this.#state,
      ...(this.#who === undefined ? {} : { who: this.#who }),
      ...(this.#viewOnly ? { viewOnly: true } : {}),
      ...(this.#recording === undefined ? {} : { recording: this.#recording.name }),
    };
  }

  /** What this session's events say of it. */
  #identity(): SessionIdentity {
    return {
      id: this.id, instance: this.#instance, instanceUuid: this.#instanceUuid, protocol: this.#protocol, remote: this.#options.remote, who: this.#who,
      viewOnly: this.#viewOnly || undefined, recording: this.#recording?.name,
    };
  }

  /** Is this a console of an instance named (or with the UUID) in `keys`? */
  matchesInstance(keys: readonly string[]): boolean {
    return (this.#instance !== undefined && keys.includes(this.#instance)) || (this.#instanceUuid !== undefined && keys.includes(this.#instanceUuid));
  }

  /**
   * The one place the state changes. An illegal transition is a bug: it is logged (tests fail on
   * that line) and ignored, rather than thrown from a socket event where it would take down every
   * console of the process.
   */
  #transition(to: SessionState): boolean {
    if (!ALLOWED[this.#state].includes(to)) {
      this.#logger.error({ code: 'PH_ERR_INTERNAL' }, `bug: illegal session transition ${this.#state} → ${to}`);
      return false;
    }
    this.#logger.debug(`session ${this.#state} → ${to}`);
    this.#state = to;
    return true;
  }

  /** Start with the outcome of the token check (done before the upgrade was accepted). */
  begin(auth: SessionAuth): void {
    const bindings = this.#options.logBindings ?? {};
    if (!auth.ok) {
      this.#logger = this.#options.logger.child(bindings);
      this.fail(auth.error);
      return;
    }
    const info = auth.connectInfo;
    this.#instance = info.instance;
    this.#instanceUuid = info.instanceUuid;
    this.#protocol = info.protocol;
    this.#expiresAt = auth.expiresAt ?? Infinity;
    this.#who = info.who;
    this.#viewOnly = info.viewOnly === true;
    this.#logger = this.#options.logger.child({ ...bindings, instance: info.instance, ...(info.who === undefined ? {} : { who: info.who }), ...(this.#viewOnly ? { viewOnly: true } : {}) });
    const recordings = this.#options.recordings;
    if (info.record === true || this.#options.recordAll === true) {
      try {
        if (recordings === undefined) throw new PortholeError('PH_ERR_RECORDING_UNAVAILABLE', 'this proxy does not record consoles');
        this.#recording = recordings.open({ id: this.id, instance: info.instance, protocol: info.protocol, startedAt: this.startedAt }, (err) => this.fail(err));
        this.#logger = this.#logger.child({ recording: this.#recording.name });
      } catch (err) {
        this.fail(err instanceof PortholeError ? err : new PortholeError('PH_ERR_RECORDING_UNAVAILABLE', (err as Error).message, { cause: err }));
        return;
      }
    }
    this.#transition('connecting');
    this.#ws.on('message', this.#onEarlyMessage);
    const what = `${this.#options.handler.serverName} ${info.host}:${info.port}`;
    this.#timer = setTimeout(() => {
      this.fail(new PortholeError('PH_ERR_UPSTREAM_TIMEOUT', `${what} did not accept the connection within ${this.#options.connectTimeoutMs} ms`));
    }, this.#options.connectTimeoutMs);
    const link: ConsoleLink = {
      sessionId: this.id,
      ws: this.#ws,
      info,
      password: auth.password,
      tlsPort: auth.tlsPort,
      logger: this.#logger,
      recorder: this.#recording,
      takeEarly: () => this.#takeEarly(),
      negotiating: (timeoutError) => {
        clearTimeout(this.#timer);
        if (this.#state !== 'connecting' || !this.#transition('negotiating')) return;
        this.#timer = setTimeout(() => this.fail(timeoutError), this.#options.handshakeTimeoutMs);
      },
      relaying: () => {
        clearTimeout(this.#timer);
        if ((this.#state !== 'connecting' && this.#state !== 'negotiating') || !this.#transition('relaying')) return;
        this.#lastActivityAt = Date.now();
        this.#logger.info({ target: `${info.host}:${info.port}` }, 'console session relaying');
        this.#relayed = true;
        this.#options.events?.sessionOpened({ ...this.#identity(), protocol: info.protocol, setupSeconds: (Date.now() - this.startedAt) / 1000 });
        if (sessionOpenChannel.hasSubscribers) sessionOpenChannel.publish({ id: this.id, instance: info.instance, protocol: info.protocol });
      },
      fail: (err) => this.fail(err),
    };
    this.#attachment = this.#options.handler.attach(link);
  }

  /**
   * A message from the browser before the console is connected. The WebSocket is read during
   * connecting and negotiating so that a browser that leaves is noticed at once (its close ends
   * the session and the server connection); what it sends meanwhile is kept, bounded, and delivered first.
   */
  readonly #onEarlyMessage = (data: RawData, isBinary: boolean): void => {
    if (!isBinary && !this.#options.handler.acceptsText) {
      this.fail(new PortholeError('PH_ERR_PROTOCOL', `the browser sent a text frame; ${this.#protocol ?? 'this'} consoles take binary frames only`));
      return;
    }
    const chunk = data as Buffer; // binaryType 'nodebuffer'
    this.#earlyBytes += chunk.length;
    if (this.#earlyBytes > MAX_EARLY_BYTES) {
      this.fail(new PortholeError('PH_ERR_PROTOCOL', `the browser sent more than ${MAX_EARLY_BYTES} bytes before the console was connected`));
      return;
    }
    this.#early.push(chunk);
  };

  #takeEarly(): Buffer[] {
    this.#ws.off('message', this.#onEarlyMessage);
    const early = this.#early;
    this.#early = [];
    return early;
  }

  /**
   * Limits tick from the proxy's shared once-a-second timer: idle timeout (no byte either way,
   * read from the relay's counters so the hot path does no timekeeping) and token expiry.
   */
  checkLimits(now: number, idleTimeoutMs: number, enforceExpiry: boolean): void {
    if (this.#state !== 'relaying') return;
    if (enforceExpiry && now >= this.#expiresAt) {
      this.fail(new PortholeError('PH_ERR_SESSION_EXPIRED'));
      return;
    }
    const bytes = (this.#attachment?.bytesToClient ?? 0) + (this.#attachment?.bytesToServer ?? 0);
    if (bytes !== this.#lastBytes) {
      this.#lastBytes = bytes;
      this.#lastActivityAt = now;
    } else if (idleTimeoutMs > 0 && now - this.#lastActivityAt >= idleTimeoutMs) {
      this.fail(new PortholeError('PH_ERR_SESSION_IDLE', `no traffic for ${Math.round((now - this.#lastActivityAt) / 1000)} s`));
    }
  }

  /** Keepalive tick from the proxy's one shared timer: ping, or give up on a silent browser. */
  heartbeat(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    if (!this.#alive) {
      this.fail(new PortholeError('PH_ERR_CLIENT_TIMEOUT'));
      this.#ws.terminate();
      return;
    }
    this.#alive = false;
    this.#ws.ping();
  }

  /** Immediate stop for shutdown stragglers: no close handshake. */
  destroy(): void {
    this.#releaseServer();
    this.#ws.terminate();
  }

  /** The one failure exit: log, close the browser side with the error's code, drop the TCP side. */
  fail(err: PortholeError): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#failCode ??= err.code;
    const clientMistake = err.httpStatus < 500 && err.code !== 'PH_ERR_CLIENT_TIMEOUT';
    const level = clientMistake || err.code === 'PH_ERR_SHUTTING_DOWN' ? 'info' : 'error';
    this.#logger[level]({ code: err.code, state: this.#state }, err.message);
    this.#closeClient(err.wsCloseCode, closeReasonFor(err.code));
  }

  #closeClient(code: number, reason: string): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#transition('closing');
    this.#closeCode = code;
    this.#releaseServer();
    if (this.#ws.readyState === this.#ws.OPEN || this.#ws.readyState === this.#ws.CONNECTING) {
      // Read again (the socket may be paused for backpressure or before connecting) so the
      // browser's answering close frame arrives and the TCP connection ends promptly.
      this.#ws.resume();
      this.#ws.close(code, reason);
    } else if (this.#ws.readyState === this.#ws.CLOSED) {
      this.#finish();
    }
    // CLOSING: the browser started the close; its 'close' event finishes the session.
  }

  #releaseServer(): void {
    clearTimeout(this.#timer);
    this.#attachment?.release();
    this.#recording?.close();
  }

  /**
   * The browser broke the WebSocket protocol (message too big: 1009, too many fragments: 1008,
   * invalid UTF-8: 1007, bad framing: 1002); ws has sent that close code. Record it, so the session's
   * close line says 1009 rather than the 1006 of a peer that then just hangs up.
   */
  #onClientError(err: Error): void {
    const sent = wsErrorCloseCode(err);
    if (sent !== undefined && this.#closeCode === undefined) this.#closeCode = sent;
    this.#logger.info({ code: 'PH_ERR_PROTOCOL', wsError: (err as { code?: unknown }).code, closeCode: sent }, `browser broke the WebSocket protocol: ${err.message}`);
  }

  #onClientClosed(code: number): void {
    if (this.#state === 'closed') return;
    if (this.#state !== 'closing') {
      this.#transition('closing');
      this.#closeCode ??= code;
      this.#releaseServer();
    }
    this.#finish();
  }

  #finish(): void {
    if (this.#state === 'closed') return;
    this.#transition('closed');
    const attachment = this.#attachment;
    this.#logger.info({
      closeCode: this.#closeCode,
      durationMs: Date.now() - this.startedAt,
      bytesToServer: attachment?.bytesToServer ?? 0,
      bytesToClient: attachment?.bytesToClient ?? 0,
    }, 'console session closed');
    this.#options.events?.sessionClosed({
      ...this.#identity(), relayed: this.#relayed, closeCode: this.#closeCode, errorCode: this.#failCode, durationMs: Date.now() - this.startedAt,
      bytesToClient: attachment?.bytesToClient ?? 0, bytesToServer: attachment?.bytesToServer ?? 0,
    });
    if (sessionCloseChannel.hasSubscribers) sessionCloseChannel.publish({ id: this.id, instance: this.#instance, protocol: this.#protocol, closeCode: this.#closeCode });
    this.#options.onClosed(this);
  }
}
