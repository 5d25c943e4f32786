/**
 * One console connection, from the accepted upgrade to the last byte: a small state machine with a
 * single failure exit (noVNC's `_fail`), so every way a console ends closes the WebSocket with the
 * code that says why, and releases the TCP side and timers exactly once.
 */
import { channel } from 'node:diagnostics_channel';
import type { OnReadOpts, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { closeReasonFor, isPortholeError, PortholeError } from '../errors.js';
import { ClientHandshake, ServerHandshake, type AuthScheme } from '../rfb/handshake.js';
import type { ConnectInfo, ConsoleProtocol } from '../console/types.js';
import type { RegisteredSession, SessionInfo } from '../sessions/registry.js';
import { Relay } from './relay.js';
import { describeTlsError, startUpstreamTls, type UpstreamTls } from './upstream-tls.js';

export type SessionState = 'authenticating' | 'connecting' | 'negotiating' | 'relaying' | 'closing' | 'closed';

const ALLOWED: Readonly<Record<SessionState, readonly SessionState[]>> = {
  authenticating: ['connecting', 'closing'],
  connecting: ['negotiating', 'relaying', 'closing'],
  negotiating: ['relaying', 'closing'],
  relaying: ['closing'],
  closing: ['closed'],
  closed: [],
};

/** Largest answer header to Nova's internal_access_path CONNECT. */
const MAX_TUNNEL_HEADER_BYTES = 4096;

/** Browser bytes kept while the console is still connecting or negotiating; more is a protocol error. */
export const MAX_EARLY_BYTES = 64 * 1024;

export const sessionOpenChannel = channel('porthole:session:open');
export const sessionCloseChannel = channel('porthole:session:close');

/** Opens the VNC-side socket; must pass `onread` through to net.connect (the relay reads with it). */
export type ConnectFn = (target: { host: string; port: number; onread: OnReadOpts }) => Socket;

export interface ConsoleSessionOptions {
  readonly id: string;
  readonly ws: WebSocket;
  /** The console token, for re-checks in the store (revocation on other nodes). Never logged. */
  readonly token: string;
  readonly logger: Logger;
  /** The browser's address (after trusted forwarded headers), for the session list. */
  readonly remote: string;
  readonly connect: ConnectFn;
  readonly connectTimeoutMs: number;
  readonly wsHighWaterBytes?: number;
  readonly onClosed: (session: ConsoleSession) => void;
  /** RFB security proxy: authenticate to the VNC server with one of these, offer the browser None. Absent: transparent relay. */
  readonly authSchemes?: readonly AuthScheme[];
  /** Limit for the whole RFB handshake (both sides). */
  readonly handshakeTimeoutMs: number;
  /** TLS towards VNC servers for auth scheme vencrypt (read per session: certificates can be reloaded). */
  readonly upstreamTls?: () => UpstreamTls | undefined;
}

/** What the upgrade handler learned about the token before accepting the upgrade. */
export type SessionAuth =
  | { readonly ok: true; readonly connectInfo: ConnectInfo; readonly expiresAt?: number; readonly vncPassword?: string | undefined }
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
  readonly #ws: WebSocket;
  #logger: Logger;
  readonly #options: ConsoleSessionOptions;
  #tcp: Socket | undefined;
  /** The TLS layer over #tcp after a VeNCrypt upgrade; relaying and handshake writes go through it. */
  #tls: Socket | undefined;
  #relay: Relay | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #expiresAt = Infinity;
  #lastBytes = 0;
  #lastActivityAt = Date.now();
  #early: Buffer[] = [];
  #earlyBytes = 0;

  constructor(options: ConsoleSessionOptions) {
    this.id = options.id;
    this.#ws = options.ws;
    this.#logger = options.logger;
    this.#options = options;
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

  get token(): string {
    return this.#options.token;
  }

  info(): SessionInfo {
    return {
      id: this.id, instance: this.#instance, protocol: this.#protocol, remote: this.#options.remote,
      started: new Date(this.startedAt).toISOString(), bytesToClient: this.#relay?.bytesToClient ?? 0,
      bytesToServer: this.#relay?.bytesToServer ?? 0, state: this.#state,
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
    if (!auth.ok) {
      this.fail(auth.error);
      return;
    }
    const info = auth.connectInfo;
    this.#instance = info.instance;
    this.#instanceUuid = info.instanceUuid;
    this.#protocol = info.protocol;
    this.#expiresAt = auth.expiresAt ?? Infinity;
    this.#logger = this.#logger.child({ instance: info.instance });
    this.#transition('connecting');
    this.#ws.on('message', this.#onEarlyMessage);
    this.#relay = new Relay({
      ws: this.#ws,
      ...(this.#options.wsHighWaterBytes === undefined ? {} : { wsHighWaterBytes: this.#options.wsHighWaterBytes }),
      onProtocolError: () => this.#closeClient(1003, 'PH_ERR_PROTOCOL: text frames are not accepted, use binary'),
    });
    const tcp = this.#options.connect({ host: info.host, port: info.port, onread: this.#relay.onread });
    this.#tcp = tcp;
    tcp.setNoDelay(true);
    tcp.pause();
    this.#connectTimer = setTimeout(() => {
      this.fail(new PortholeError('PH_ERR_UPSTREAM_TIMEOUT',
        `VNC server ${info.host}:${info.port} did not accept the connection within ${this.#options.connectTimeoutMs} ms`));
    }, this.#options.connectTimeoutMs);
    tcp.once('connect', () => {
      const next = (leftover?: Buffer) => {
        if (this.#options.authSchemes === undefined) this.#onServerConnected(info, leftover);
        else this.#negotiate(info, auth.vncPassword, leftover);
      };
      if (info.internalAccessPath === undefined) next();
      else this.#tunnel(info, info.internalAccessPath, next);
    });
    tcp.on('error', (err: NodeJS.ErrnoException) => this.#onServerError(err, info));
    tcp.on('close', () => {
      if (this.#state === 'negotiating' && this.#tls !== undefined) {
        // QEMU/GnuTLS hangs up without an alert when it rejects (or misses) the client certificate;
        // under TLS 1.3 that shows only after the proxy's side of the handshake completed.
        const configured = this.#options.upstreamTls?.()?.hasClientCertificate === true;
        this.fail(new PortholeError('PH_ERR_UPSTREAM_TLS',
          `VNC server ${info.host}:${info.port} closed the connection during the VeNCrypt TLS handshake; it probably requires a client certificate ` +
          (configured ? 'and did not accept the proxy\'s ([vnc] vencrypt_client_cert is not from a CA it trusts)' : 'and [vnc] vencrypt_client_cert is not set')));
      } else if (this.#state === 'relaying' || this.#state === 'negotiating') {
        this.fail(new PortholeError('PH_ERR_UPSTREAM_CLOSED', `VNC server ${info.host}:${info.port} closed the connection`));
      }
    });
  }

  /**
   * RFB security proxy: finish the server's handshake (authenticating with the allowed scheme),
   * then play an RFB server offering only None to the browser, then relay.
   */
  /**
   * Nova's `internal_access_path`: ask the console endpoint for `CONNECT <path>` and require a
   * 200 in its status line (as nova-novncproxy does), within the connect timeout. What follows the
   * answer's header belongs to the console and is passed on.
   */
  #tunnel(info: ConnectInfo, path: string, next: (leftover?: Buffer) => void): void {
    const tcp = this.#tcp as Socket;
    let head = Buffer.alloc(0);
    this.#relay?.intercept(tcp, (chunk) => {
      if (this.#state !== 'connecting') return;
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > MAX_TUNNEL_HEADER_BYTES) this.fail(new PortholeError('PH_ERR_UPSTREAM_UNREACHABLE', `CONNECT ${path} to ${info.host}:${info.port}: no end of header in ${MAX_TUNNEL_HEADER_BYTES} bytes`));
        return;
      }
      const status = head.toString('latin1', 0, head.indexOf('\r\n'));
      if (!status.includes('200')) {
        this.fail(new PortholeError('PH_ERR_UPSTREAM_UNREACHABLE', `CONNECT ${path} to ${info.host}:${info.port} was answered ${JSON.stringify(status.slice(0, 80))}, not 200`));
        return;
      }
      const rest = head.subarray(end + 4);
      next(rest.length > 0 ? rest : undefined);
    });
    tcp.write(`CONNECT ${path} HTTP/1.1\r\n\r\n`);
  }

  #negotiate(info: ConnectInfo, password: string | undefined, leftover?: Buffer): void {
    clearTimeout(this.#connectTimer);
    if (this.#state !== 'connecting') return;
    this.#transition('negotiating');
    const tcp = this.#tcp as Socket;
    const relay = this.#relay as Relay;
    const timeoutMs = this.#options.handshakeTimeoutMs;
    this.#connectTimer = setTimeout(() => this.fail(new PortholeError('PH_ERR_RFB_HANDSHAKE', `RFB handshake did not finish within ${timeoutMs} ms`)), timeoutMs);
    const server = new ServerHandshake(this.#options.authSchemes ?? ['none'], password);
    const client = new ClientHandshake();
    /** Where handshake bytes and, later, the browser's bytes go: the TCP socket, or TLS over it. */
    let upstream: Socket = tcp;
    const guard = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        this.fail(isPortholeError(err) ? err : new PortholeError('PH_ERR_RFB_HANDSHAKE', (err as Error).message, { cause: err }));
      }
    };
    const onClientBytes = (data: RawData, isBinary: boolean) => guard(() => {
      if (!isBinary) throw new PortholeError('PH_ERR_RFB_HANDSHAKE', 'the browser sent a text frame during the RFB handshake');
      const step = client.feed(data as Buffer);
      for (const b of step.send) this.#ws.send(b);
      if (!step.done) return;
      this.#ws.off('message', onClientBytes);
      this.#ws.pause();
      if (step.rest) upstream.write(step.rest);
      this.#logger.info({ auth: server.chosen, ...(server.vencryptSubtype === undefined ? {} : { vencryptSubtype: server.vencryptSubtype }) }, 'RFB security negotiated');
      this.#onServerConnected(info);
    });
    let serverDone = false;
    const onServerBytes = (chunk: Buffer) => guard(() => {
      if (this.#state !== 'negotiating') return;
      if (serverDone) throw new PortholeError('PH_ERR_RFB_HANDSHAKE', `the VNC server sent ${chunk.length} bytes before ClientInit`);
      const step = server.feed(chunk);
      for (const b of step.send) upstream.write(b);
      if (step.startTls) {
        upstream = this.#startTls(info, onServerBytes);
        return;
      }
      if (!step.done) return;
      serverDone = true;
      for (const b of client.start()) this.#ws.send(b);
      const early = this.#takeEarly();
      this.#ws.on('message', onClientBytes);
      while (early.length > 0 && this.#state === 'negotiating') onClientBytes(early.shift() as Buffer, true);
      if (early.length > 0) this.#relay?.replay(early); // after the handshake: the server's (ignored if the session failed)
    });
    relay.intercept(tcp, onServerBytes);
    if (leftover !== undefined) onServerBytes(leftover);
  }

  /**
   * VeNCrypt: the clear-text preamble is done; run TLS over the same TCP connection. From here the
   * TLS socket carries the rest of the handshake and the relay, and its failures (a certificate
   * that does not verify, a client certificate the server refused) close the console with 4020.
   */
  #startTls(info: ConnectInfo, onServerBytes: (chunk: Buffer) => void): Socket {
    const tls = this.#options.upstreamTls?.();
    if (tls === undefined) throw new PortholeError('PH_ERR_CONFIG_INVALID', 'auth scheme vencrypt needs [vnc] vencrypt_ca_certs');
    const tcp = this.#tcp as Socket;
    tcp.pause();
    const secure = startUpstreamTls(tcp, info.host, tls);
    this.#tls = secure;
    secure.on('data', onServerBytes);
    secure.on('error', (err: NodeJS.ErrnoException) => {
      const error = new PortholeError('PH_ERR_UPSTREAM_TLS', `TLS to VNC server ${info.host}:${info.port} failed: ${describeTlsError(err)}`, { cause: err });
      if (this.#state === 'relaying') this.fail(new PortholeError('PH_ERR_UPSTREAM_CLOSED', error.message, { cause: err }));
      else this.fail(error);
    });
    secure.once('secureConnect', () => {
      this.#logger.debug({ protocol: secure.getProtocol(), cipher: secure.getCipher().name }, 'TLS to the VNC server established');
    });
    return secure;
  }

  #onServerConnected(info: ConnectInfo, leftover?: Buffer): void {
    clearTimeout(this.#connectTimer);
    if (this.#state !== 'connecting' && this.#state !== 'negotiating') return;
    this.#transition('relaying');
    this.#lastActivityAt = Date.now();
    const early = this.#takeEarly();
    if (this.#tls === undefined) this.#relay?.start(this.#tcp as Socket);
    else {
      this.#tls.removeAllListeners('data');
      this.#relay?.start(this.#tls, 'data');
    }
    if (leftover !== undefined && this.#relay !== undefined) {
      this.#relay.bytesToClient += leftover.length;
      this.#ws.send(leftover); // console bytes that came with the CONNECT answer
    }
    this.#relay?.replay(early);
    this.#logger.info({ target: `${info.host}:${info.port}` }, 'console session relaying');
    if (sessionOpenChannel.hasSubscribers) sessionOpenChannel.publish({ id: this.id, instance: info.instance });
  }

  /**
   * A message from the browser before the console is connected. The WebSocket is read during
   * connecting and negotiating so that a browser that leaves is noticed at once (its close ends
   * the session and the VNC connection); what it sends meanwhile is kept, bounded, and delivered first.
   */
  readonly #onEarlyMessage = (data: RawData, isBinary: boolean): void => {
    if (!isBinary) {
      this.#closeClient(1003, 'PH_ERR_PROTOCOL: text frames are not accepted, use binary');
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

  #onServerError(err: NodeJS.ErrnoException, info: ConnectInfo): void {
    if (err.code === 'EMFILE' || err.code === 'ENFILE') {
      // Not the VM's fault: "VNC server unreachable" would send the person and the operator the wrong way.
      this.fail(new PortholeError('PH_ERR_PROXY_FD_EXHAUSTED', `cannot open a connection to ${info.host}:${info.port}: ${err.code} (the proxy's open-files limit is reached)`, { cause: err }));
    } else if (this.#state === 'connecting') {
      this.fail(new PortholeError('PH_ERR_UPSTREAM_UNREACHABLE', `cannot connect to VNC server ${info.host}:${info.port}: ${err.code ?? err.message}`, { cause: err }));
    } else if (this.#state === 'relaying') {
      this.fail(new PortholeError('PH_ERR_UPSTREAM_CLOSED', `VNC server ${info.host}:${info.port} connection failed: ${err.code ?? err.message}`, { cause: err }));
    }
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
    const bytes = (this.#relay?.bytesToClient ?? 0) + (this.#relay?.bytesToServer ?? 0);
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
    clearTimeout(this.#connectTimer);
    this.#relay?.stop();
    this.#tls?.destroy();
    this.#tcp?.destroy();
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
    const relay = this.#relay;
    this.#logger.info({
      closeCode: this.#closeCode,
      durationMs: Date.now() - this.startedAt,
      bytesToServer: relay?.bytesToServer ?? 0,
      bytesToClient: relay?.bytesToClient ?? 0,
    }, 'console session closed');
    if (sessionCloseChannel.hasSubscribers) sessionCloseChannel.publish({ id: this.id, instance: this.#instance, closeCode: this.#closeCode });
    this.#options.onClosed(this);
  }
}
