/**
 * VNC consoles: one TCP connection to the VNC server per session, optionally Nova's CONNECT tunnel,
 * then either a transparent relay or the RFB security proxy (authenticate to the server with the
 * configured scheme — VeNCrypt TLS included — and offer the browser None), then the relay.
 */
import type { Socket } from 'node:net';
import type { RawData } from 'ws';
import type { ConnectFn, ConsoleAttachment, ConsoleLink, ProtocolHandler } from '../../console/handler.js';
import type { ConnectInfo } from '../../console/types.js';
import { isPortholeError, PortholeError } from '../../errors.js';
import { Relay } from '../relay.js';
import { TunnelAnswer, tunnelRequest } from '../tunnel.js';
import { upstreamSocketError } from '../upstream-error.js';
import { ClientHandshake, ServerHandshake, type AuthScheme } from './handshake.js';
import { ViewOnlyFilter } from './view-only-filter.js';
import { describeTlsError, startUpstreamTls, type UpstreamTls } from '../upstream-tls.js';
import type { Unmask } from '../client-frames.js';

export interface VncHandlerOptions {
  readonly connect: ConnectFn;
  /** RFB security proxy: authenticate to the VNC server with one of these, offer the browser None. Absent: transparent relay. */
  readonly authSchemes?: readonly AuthScheme[] | undefined;
  /** TLS towards VNC servers for auth scheme vencrypt (read per session: certificates can be reloaded). */
  readonly upstreamTls?: (() => UpstreamTls | undefined) | undefined;
  readonly wsHighWaterBytes?: number | undefined;
  /** `[console] max_bandwidth`: bytes per second each way per session; 0: none. */
  readonly maxBytesPerSecond?: number | undefined;
  /** Unmasks browser frames for the relay's own frame reader (protocols/client-frames.ts); absent: ws parses them. */
  readonly unmask?: Unmask | undefined;
}

export class VncHandler implements ProtocolHandler {
  readonly protocol = 'vnc' as const;
  readonly serverName = 'VNC server';
  readonly acceptsText = false;
  readonly wantsPassword: boolean;
  readonly #options: VncHandlerOptions;

  constructor(options: VncHandlerOptions) {
    this.#options = options;
    this.wantsPassword = options.authSchemes?.includes('vnc') === true || options.authSchemes?.includes('vencrypt') === true;
  }

  attach(link: ConsoleLink): ConsoleAttachment {
    return new VncConnection(link, this.#options);
  }

  close(): void {}
}

type Phase = 'connecting' | 'negotiating' | 'relaying' | 'released';

/** The server side of one VNC session. */
class VncConnection implements ConsoleAttachment {
  readonly #link: ConsoleLink;
  readonly #options: VncHandlerOptions;
  readonly #relay: Relay;
  readonly #tcp: Socket;
  readonly #what: string;
  /** View-only consoles: what the browser may send the server. */
  readonly #viewOnly: ViewOnlyFilter | undefined;
  /** The TLS layer over #tcp after a VeNCrypt upgrade; handshake writes and relaying go through it. */
  #tls: Socket | undefined;
  #phase: Phase = 'connecting';

  constructor(link: ConsoleLink, options: VncHandlerOptions) {
    this.#link = link;
    this.#options = options;
    const info = link.info;
    this.#what = `VNC server ${info.host}:${info.port}`;
    const viewOnly = info.viewOnly === true ? new ViewOnlyFilter() : undefined;
    this.#viewOnly = viewOnly;
    this.#relay = new Relay({
      ws: link.ws,
      ...(options.wsHighWaterBytes === undefined ? {} : { wsHighWaterBytes: options.wsHighWaterBytes }),
      onProtocolError: () => link.fail(new PortholeError('PH_ERR_PROTOCOL', 'the browser sent a text frame; VNC consoles take binary frames only')),
      clientFilter: viewOnly === undefined ? undefined : (chunk) => viewOnly.push(chunk),
      onFilterError: (err) => link.fail(err as PortholeError),
      tap: link.recorder,
      maxBytesPerSecond: options.maxBytesPerSecond,
      unmask: options.unmask,
    });
    const tcp = options.connect({ host: info.host, port: info.port, onread: this.#relay.onread });
    this.#tcp = tcp;
    tcp.setNoDelay(true);
    tcp.pause();
    tcp.once('connect', () => {
      const next = (leftover?: Buffer) => {
        // View-only needs the security proxy: the filter starts at the browser's ClientInit.
        if (options.authSchemes === undefined && viewOnly === undefined) this.#relayNow(leftover);
        else this.#negotiate(info, link.password, leftover);
      };
      if (info.internalAccessPath === undefined) next();
      else this.#tunnel(info.internalAccessPath, next);
    });
    tcp.on('error', (err: NodeJS.ErrnoException) => {
      // While negotiating, the 'close' that follows names the failure better.
      if (this.#phase === 'connecting' || this.#phase === 'relaying' || err.code === 'EMFILE' || err.code === 'ENFILE') {
        link.fail(upstreamSocketError(err, 'VNC server', `${info.host}:${info.port}`, this.#phase !== 'connecting'));
      }
    });
    tcp.on('close', () => {
      if (this.#phase === 'negotiating' && this.#tls !== undefined) {
        // QEMU/GnuTLS hangs up without an alert when it rejects (or misses) the client certificate;
        // under TLS 1.3 that shows only after the proxy's side of the handshake completed.
        const configured = options.upstreamTls?.()?.hasClientCertificate === true;
        link.fail(new PortholeError('PH_ERR_UPSTREAM_TLS',
          `${this.#what} closed the connection during the VeNCrypt TLS handshake; it probably requires a client certificate ` +
          (configured ? 'and did not accept the proxy\'s ([vnc] vencrypt_client_cert is not from a CA it trusts)' : 'and [vnc] vencrypt_client_cert is not set')));
      } else if (this.#phase === 'relaying' || this.#phase === 'negotiating') {
        link.fail(new PortholeError('PH_ERR_UPSTREAM_CLOSED', `${this.#what} closed the connection`));
      }
    });
  }

  get bytesToClient(): number {
    return this.#relay.bytesToClient;
  }

  get bytesToServer(): number {
    return this.#relay.bytesToServer;
  }

  release(): void {
    if (this.#viewOnly !== undefined && this.#viewOnly.dropped.size > 0 && this.#phase !== 'released') {
      this.#link.logger.info({ dropped: Object.fromEntries(this.#viewOnly.dropped) }, 'view-only console: input from the viewer was not passed');
    }
    this.#phase = 'released';
    this.#relay.stop();
    this.#tls?.destroy();
    this.#tcp.destroy();
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#link.fail(isPortholeError(err) ? err : new PortholeError('PH_ERR_RFB_HANDSHAKE', (err as Error).message, { cause: err }));
    }
  }

  #tunnel(path: string, next: (leftover?: Buffer) => void): void {
    const answer = new TunnelAnswer(`CONNECT ${path} to ${this.#link.info.host}:${this.#link.info.port}`);
    this.#relay.intercept(this.#tcp, (chunk) => this.#guard(() => {
      if (this.#phase !== 'connecting') return;
      const step = answer.feed(chunk);
      if (step.done) next(step.rest);
    }));
    this.#tcp.write(tunnelRequest(path));
  }

  /**
   * RFB security proxy: finish the server's handshake (authenticating with the allowed scheme),
   * then play an RFB server offering only None to the browser, then relay.
   */
  #negotiate(info: ConnectInfo, password: string | undefined, leftover?: Buffer): void {
    if (this.#phase !== 'connecting') return;
    this.#phase = 'negotiating';
    const link = this.#link;
    const ws = link.ws;
    link.negotiating(new PortholeError('PH_ERR_RFB_HANDSHAKE', 'RFB handshake did not finish within the handshake timeout ([console] handshake_timeout)'));
    const server = new ServerHandshake(this.#options.authSchemes ?? ['none'], password);
    const client = new ClientHandshake();
    const recorder = link.recorder;
    const toBrowser = (b: Buffer) => {
      recorder?.toClient(b);
      ws.send(b);
    };
    /** Where handshake bytes and, later, the browser's bytes go: the TCP socket, or TLS over it. */
    let upstream: Socket = this.#tcp;
    const onClientBytes = (data: RawData, isBinary: boolean) => this.#guard(() => {
      if (!isBinary) throw new PortholeError('PH_ERR_RFB_HANDSHAKE', 'the browser sent a text frame during the RFB handshake');
      const step = client.feed(data as Buffer);
      if (recorder !== undefined) {
        const used = (data as Buffer).subarray(0, (data as Buffer).length - (step.rest?.length ?? 0));
        if (used.length > 0) recorder.toServer(used);
      }
      for (const b of step.send) toBrowser(b);
      if (!step.done) return;
      ws.off('message', onClientBytes);
      ws.pause();
      if (step.rest) this.#browserBytesAfterHandshake(step.rest, upstream);
      link.logger.info({ auth: server.chosen, ...(server.vencryptSubtype === undefined ? {} : { vencryptSubtype: server.vencryptSubtype }) }, 'RFB security negotiated');
      this.#relayNow();
    });
    let serverDone = false;
    const onServerBytes = (chunk: Buffer) => this.#guard(() => {
      if (this.#phase !== 'negotiating') return;
      if (serverDone) throw new PortholeError('PH_ERR_RFB_HANDSHAKE', `the VNC server sent ${chunk.length} bytes before ClientInit`);
      const step = server.feed(chunk);
      for (const b of step.send) upstream.write(b);
      if (step.startTls) {
        upstream = this.#startTls(info, onServerBytes);
        return;
      }
      if (!step.done) return;
      serverDone = true;
      for (const b of client.start()) toBrowser(b);
      const early = link.takeEarly();
      ws.on('message', onClientBytes);
      while (early.length > 0 && this.#phase === 'negotiating') onClientBytes(early.shift() as Buffer, true);
      if (early.length > 0) this.#relay.replay(early); // after the handshake: the server's (ignored if the session failed)
    });
    this.#relay.intercept(this.#tcp, onServerBytes);
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
    this.#tcp.pause();
    const secure = startUpstreamTls(this.#tcp, info.host, tls);
    this.#tls = secure;
    secure.on('data', onServerBytes);
    secure.on('error', (err: NodeJS.ErrnoException) => {
      const message = `TLS to ${this.#what} failed: ${describeTlsError(err)}`;
      this.#link.fail(this.#phase === 'relaying'
        ? new PortholeError('PH_ERR_UPSTREAM_CLOSED', message, { cause: err })
        : new PortholeError('PH_ERR_UPSTREAM_TLS', message, { cause: err }));
    });
    secure.once('secureConnect', () => {
      this.#link.logger.debug({ protocol: secure.getProtocol(), cipher: secure.getCipher().name }, 'TLS to the VNC server established');
    });
    return secure;
  }

  /** The browser's first bytes after the handshake (its ClientInit, maybe more): through the view-only filter and the recorder like the relay's. */
  #browserBytesAfterHandshake(bytes: Buffer, upstream: Socket): void {
    const parts = this.#viewOnly === undefined ? [bytes] : this.#viewOnly.push(bytes);
    if (parts instanceof PortholeError) throw parts;
    for (const p of parts) {
      this.#relay.bytesToServer += p.length;
      this.#link.recorder?.toServer(p);
      upstream.write(p);
    }
  }

  #relayNow(leftover?: Buffer): void {
    if (this.#phase !== 'connecting' && this.#phase !== 'negotiating') return;
    this.#phase = 'relaying';
    const link = this.#link;
    link.relaying();
    const early = link.takeEarly();
    if (this.#tls === undefined) this.#relay.start(this.#tcp);
    else {
      this.#tls.removeAllListeners('data');
      this.#relay.start(this.#tls, 'data');
    }
    link.logger.debug({ browserFrames: this.#relay.readsClientFrames ? 'relay' : 'ws' }, 'relaying');
    if (leftover !== undefined) {
      this.#relay.bytesToClient += leftover.length;
      link.recorder?.toClient(leftover);
      link.ws.send(leftover); // console bytes that came with the CONNECT answer
    }
    this.#relay.replay(early);
  }
}
