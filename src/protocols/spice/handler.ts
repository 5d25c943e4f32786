/**
 * SPICE consoles (nova-spicehtml5proxy's job): one WebSocket per SPICE channel (spice-html5 opens
 * main, then display, inputs, cursor… with the same token), each relayed to the SPICE server's
 * plain port after the proxy did the channel's link itself: the browser's ticket is thrown away and
 * the proxy's own (RSA-OAEP of the real password) sent instead — the SPICE analogue of the RFB
 * security proxy; Nova's proxy is a raw relay.
 */
import type { Socket } from 'node:net';
import type { RawData } from 'ws';
import type { ConnectFn, ConsoleAttachment, ConsoleLink, ProtocolHandler } from '../../console/handler.js';
import { isPortholeError, PortholeError } from '../../errors.js';
import { Relay } from '../relay.js';
import { upstreamSocketError } from '../upstream-error.js';
import { describeTlsError, startUpstreamTls, type UpstreamTls } from '../upstream-tls.js';
import type { Unmask } from '../client-frames.js';
import {
  checkClientTicket, clientTicketBytes, linkResultError, parseClientLink, parseServerReply, proxyTicket, readLinkMessage, type ClientLink,
} from './link.js';

/** SPICE_LINK_ERR_NEED_SECURED: the channel is served on the tlsPort only. */
const NEED_SECURED = 5;

/** Bytes either side may send before the link is done; a link is a few hundred. */
const MAX_HANDSHAKE_BYTES = 16 * 1024;

export interface SpiceHandlerOptions {
  readonly connect: ConnectFn;
  readonly wsHighWaterBytes?: number | undefined;
  /** `[console] max_bandwidth`, per channel connection; 0: none. */
  readonly maxBytesPerSecond?: number | undefined;
  /** Unmasks browser frames for the relay's own frame reader (protocols/client-frames.ts); absent: ws parses them. */
  readonly unmask?: Unmask | undefined;
  /** TLS towards SPICE servers' tlsPort (`[spice] ca_certs`), for the channels QEMU secures; absent: those are refused. */
  readonly tls?: (() => UpstreamTls | undefined) | undefined;
}

export class SpiceHandler implements ProtocolHandler {
  readonly protocol = 'spice' as const;
  readonly serverName = 'SPICE server';
  readonly acceptsText = false;
  /** Always: the ticket is the proxy's, with the driver's password (or an empty one without ticketing). */
  readonly wantsPassword = true;
  readonly #options: SpiceHandlerOptions;

  constructor(options: SpiceHandlerOptions) {
    this.#options = options;
  }

  attach(link: ConsoleLink): ConsoleAttachment {
    return new SpiceChannel(link, this.#options);
  }

  close(): void {}
}

type Phase = 'connecting' | 'client-link' | 'server-reply' | 'client-ticket' | 'server-result' | 'relaying' | 'released';

class SpiceChannel implements ConsoleAttachment {
  readonly #link: ConsoleLink;
  readonly #relay: Relay;
  readonly #options: SpiceHandlerOptions;
  #tcp: Socket;
  /** After a NEED_SECURED reply: TLS to the tlsPort carries this channel instead of #tcp. */
  #tls: Socket | undefined;
  /** The browser's link message, to send again over TLS. */
  #linkMessage: Buffer | undefined;
  #phase: Phase = 'connecting';
  #fromClient = Buffer.alloc(0);
  #fromServer = Buffer.alloc(0);
  #clientLink: ClientLink | undefined;
  #publicKey: Buffer | undefined;

  constructor(link: ConsoleLink, options: SpiceHandlerOptions) {
    this.#link = link;
    this.#options = options;
    const { host, port } = link.info;
    const address = `${host}:${port}`;
    this.#relay = new Relay({
      ws: link.ws,
      ...(options.wsHighWaterBytes === undefined ? {} : { wsHighWaterBytes: options.wsHighWaterBytes }),
      onProtocolError: () => link.fail(new PortholeError('PH_ERR_PROTOCOL', 'the browser sent a text frame; SPICE channels take binary frames only')),
      maxBytesPerSecond: options.maxBytesPerSecond,
      unmask: options.unmask,
    });
    const tcp = options.connect({ host, port, onread: this.#relay.onread });
    this.#tcp = tcp;
    tcp.setNoDelay(true);
    tcp.pause();
    tcp.once('connect', () => this.#startLink());
    tcp.on('error', (err: NodeJS.ErrnoException) => {
      if (this.#phase !== 'released') link.fail(upstreamSocketError(err, 'SPICE server', address, this.#phase !== 'connecting'));
    });
    tcp.on('close', () => {
      if (this.#tls === undefined && this.#phase !== 'released' && this.#phase !== 'connecting') link.fail(new PortholeError('PH_ERR_UPSTREAM_CLOSED', `SPICE server ${address} closed the connection`));
    });
  }

  /** Where link bytes and, later, the browser's bytes go. */
  get #upstream(): Socket {
    return this.#tls ?? this.#tcp;
  }

  /**
   * The server answered NEED_SECURED: this channel is served only on the tlsPort. Link again there,
   * over TLS checked against `[spice] ca_certs`, with the browser's same link message.
   * @returns false when that is not possible (no tlsPort from the driver, or no CA configured).
   */
  #switchToTls(): boolean {
    const tls = this.#options.tls?.();
    const tlsPort = this.#link.tlsPort;
    if (tls === undefined || tlsPort === undefined || this.#linkMessage === undefined) return false;
    const { host } = this.#link.info;
    const plain = this.#tcp;
    this.#relay.stop();
    plain.removeAllListeners('close');
    plain.destroy();
    const tcp = this.#options.connect({ host, port: tlsPort });
    this.#tcp = tcp;
    tcp.on('error', (err: NodeJS.ErrnoException) => {
      if (this.#phase !== 'released') this.#link.fail(upstreamSocketError(err, 'SPICE server (tlsPort)', `${host}:${tlsPort}`, false));
    });
    tcp.once('connect', () => {
      const secure = startUpstreamTls(tcp, host, tls);
      this.#tls = secure;
      secure.on('data', this.#onServer);
      secure.on('error', (err: NodeJS.ErrnoException) => {
        this.#link.fail(new PortholeError('PH_ERR_UPSTREAM_TLS', `TLS to SPICE server ${host}:${tlsPort} failed: ${describeTlsError(err)}`, { cause: err }));
      });
      secure.on('close', () => {
        if (this.#phase !== 'released') this.#link.fail(new PortholeError('PH_ERR_UPSTREAM_CLOSED', `SPICE server ${host}:${tlsPort} (TLS) closed the connection`));
      });
      secure.once('secureConnect', () => secure.write(this.#linkMessage as Buffer));
    });
    this.#link.logger.debug({ tlsPort }, 'SPICE channel needs TLS: linking again on the tlsPort');
    return true;
  }

  get bytesToClient(): number {
    return this.#relay.bytesToClient;
  }

  get bytesToServer(): number {
    return this.#relay.bytesToServer;
  }

  release(): void {
    this.#phase = 'released';
    this.#link.ws.off('message', this.#onClient);
    this.#relay.stop();
    this.#tls?.destroy();
    this.#tcp.destroy();
  }

  #startLink(): void {
    if (this.#phase !== 'connecting') return;
    this.#phase = 'client-link';
    this.#link.negotiating(new PortholeError('PH_ERR_SPICE_LINK_FAILED', 'the SPICE link did not finish within the handshake timeout ([console] handshake_timeout)'));
    this.#relay.intercept(this.#tcp, this.#onServer);
    for (const m of this.#link.takeEarly()) this.#onClient(m, true);
    this.#link.ws.on('message', this.#onClient);
  }

  readonly #onClient = (data: RawData, isBinary: boolean): void => {
    if (!isBinary) {
      this.#link.fail(new PortholeError('PH_ERR_PROTOCOL', 'the browser sent a text frame during the SPICE link'));
      return;
    }
    this.#fromClient = Buffer.concat([this.#fromClient, data as Buffer]);
    this.#step();
  };

  readonly #onServer = (chunk: Buffer): void => {
    this.#fromServer = Buffer.concat([this.#fromServer, chunk]);
    this.#step();
  };

  /** Advance the link as far as the bytes so far allow; the one place failures of the link go out. */
  #step(): void {
    try {
      // Checked while still waiting for more: once the link result is in, what follows it is the console.
      const needMore = () => {
        if (this.#fromClient.length > MAX_HANDSHAKE_BYTES || (this.#phase !== 'server-result' && this.#fromServer.length > MAX_HANDSHAKE_BYTES)) {
          throw new PortholeError('PH_ERR_SPICE_LINK_FAILED', `more than ${MAX_HANDSHAKE_BYTES} bytes before the SPICE link was done`);
        }
      };
      for (;;) {
        if (this.#phase === 'client-link') {
          const read = readLinkMessage(this.#fromClient, 'browser');
          if ('need' in read) return needMore();
          this.#clientLink = parseClientLink(read.message);
          this.#linkMessage = Buffer.from(read.message);
          this.#upstream.write(read.message);
          this.#fromClient = this.#fromClient.subarray(read.message.length);
          this.#phase = 'server-reply';
        } else if (this.#phase === 'server-reply') {
          const read = readLinkMessage(this.#fromServer, 'server');
          if ('need' in read) return needMore();
          const reply = parseServerReply(read.message);
          this.#fromServer = this.#fromServer.subarray(read.message.length);
          if (reply.error === NEED_SECURED && this.#tls === undefined && this.#switchToTls()) {
            this.#fromServer = Buffer.alloc(0);
            return; // the reply comes again over TLS
          }
          if (reply.error !== 0) throw linkResultError(reply.error, this.#clientLink?.channelType ?? -1);
          this.#publicKey = reply.publicKey;
          this.#link.ws.send(read.message); // the browser encrypts its ticket with it: thrown away below
          this.#phase = 'client-ticket';
        } else if (this.#phase === 'client-ticket') {
          const link = this.#clientLink as ClientLink;
          const n = clientTicketBytes(link);
          if (this.#fromClient.length < n) return needMore();
          checkClientTicket(link, this.#fromClient.subarray(0, n));
          this.#fromClient = this.#fromClient.subarray(n);
          this.#upstream.write(proxyTicket(link, this.#publicKey as Buffer, this.#link.password));
          this.#phase = 'server-result';
        } else if (this.#phase === 'server-result') {
          if (this.#fromServer.length < 4) return needMore();
          const result = this.#fromServer.readUInt32LE(0);
          if (result !== 0) throw linkResultError(result, this.#clientLink?.channelType ?? -1);
          this.#relayNow();
          return;
        } else {
          return;
        }
      }
    } catch (err) {
      this.#link.fail(isPortholeError(err) ? err : new PortholeError('PH_ERR_SPICE_LINK_FAILED', (err as Error).message, { cause: err }));
    }
  }

  #relayNow(): void {
    this.#phase = 'relaying';
    const link = this.#link;
    link.ws.off('message', this.#onClient);
    link.relaying();
    link.logger.debug({ channelType: this.#clientLink?.channelType }, 'SPICE channel linked with the proxy\'s ticket');
    const fromServer = this.#fromServer; // the link result and whatever followed it
    const fromClient = this.#fromClient;
    this.#fromServer = Buffer.alloc(0);
    this.#fromClient = Buffer.alloc(0);
    if (this.#tls === undefined) this.#relay.start(this.#tcp);
    else {
      this.#tls.off('data', this.#onServer);
      this.#relay.start(this.#tls, 'data');
    }
    this.#relay.bytesToClient += fromServer.length;
    link.ws.send(fromServer);
    if (fromClient.length > 0) this.#relay.replay([fromClient]);
  }
}
