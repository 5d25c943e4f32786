/**
 * The one interface between the protocol-neutral session (proxy/session.ts) and a console protocol
 * (protocols/vnc, protocols/serial, …). The session owns the client side: the WebSocket's life,
 * the state table, timers, early messages, limits and the single failure exit. A handler owns the
 * server side: connecting, the protocol's own handshake, relaying. The gateway registers handlers
 * by protocol; the proxy never imports a protocol folder. Types only.
 */
import type { OnReadOpts, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { PortholeError } from '../errors.js';
import type { ConnectInfo, ConsoleProtocol } from './types.js';

/** Opens a TCP connection to a console server; passes `onread` through to net.connect when given (the relay reads with it). */
export type ConnectFn = (target: { host: string; port: number; onread?: OnReadOpts | undefined }) => Socket;

/** What the session hands a protocol handler for one client. */
export interface ConsoleLink {
  readonly sessionId: string;
  /** The client's WebSocket (binaryType 'nodebuffer'), open. */
  readonly ws: WebSocket;
  /** Where the console lives: from the token store only. */
  readonly info: ConnectInfo;
  /** The console's password (VNC or SPICE), when the driver gave one (only asked for when the handler wants it). */
  readonly password?: string | undefined;
  /** SPICE: the server's TLS port, from the driver at connect time (channels QEMU secures are only there). */
  readonly tlsPort?: number | undefined;
  readonly logger: Logger;
  /** This session's recording, when it is recorded: the handler shows it every byte between client and server, handshakes included. */
  readonly recorder?: SessionRecorder | undefined;
  /**
   * The client's messages that arrived before the console was ready, in order; the session stops
   * keeping them. From then on the handler reads the WebSocket itself.
   */
  takeEarly(): Buffer[];
  /** Connected; the protocol's own handshake runs now, within the handshake timeout (then `timeoutError`). */
  negotiating(timeoutError: PortholeError): void;
  /** Bytes flow both ways from here on. */
  relaying(): void;
  /** End the session with this reason (idempotent; the client sees the error's close code). */
  fail(err: PortholeError): void;
}

/** Where a recorded session's bytes go (one file per session). Calls are synchronous; chunks are valid only during the call. */
export interface SessionRecorder {
  toClient(chunk: Buffer): void;
  toServer(chunk: Buffer): void;
}

/** A handler's side of one session. */
export interface ConsoleAttachment {
  /** Counters read by the session list and the idle timeout (never by the hot path's caller). */
  readonly bytesToClient: number;
  readonly bytesToServer: number;
  /** Release the server side: sockets, listeners, timers. Idempotent; called on every way a session ends. */
  release(): void;
}

export interface ProtocolHandler {
  readonly protocol: ConsoleProtocol;
  /** The server side as people call it, for messages: `VNC server`, `serial console`. */
  readonly serverName: string;
  /** May clients send text frames? (RFB is binary only; a serial terminal may send text.) */
  readonly acceptsText: boolean;
  /** Should the proxy ask the driver for the console's VNC password before attaching? */
  readonly wantsPassword: boolean;
  /** Start the server side of a session (state `connecting`); reports back through `link`. */
  attach(link: ConsoleLink): ConsoleAttachment;
  /** Drop what the handler holds across sessions (shared upstreams), at shutdown. */
  close(): void;
}
