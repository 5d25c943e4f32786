/**
 * Serial consoles (nova-serialproxy's job), with fan-out. QEMU's TCP serial server serves one
 * client at a time and queues a second client's keystrokes until the first leaves, so the proxy
 * owns the single upstream connection per serial port on this node and shares it: every viewer of
 * one port sees the same output, input from every viewer reaches the guest, and a viewer who joins
 * later first gets the last {@link SERIAL_SCROLLBACK_BYTES} of output since the connection opened.
 * The connection closes with its last viewer; QEMU drops what the guest prints while nobody is
 * attached (only a libvirt `<log file>` keeps it).
 *
 * Backpressure: the slowest viewer sets the pace (the upstream is paused while any viewer's queue
 * is above the high-water mark; a viewer that stops answering pings is dropped by the session's
 * keepalive), and a full upstream pauses every viewer's input. Memory per port is bounded by the
 * scrollback plus one high-water mark per viewer.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import type { ConnectFn, ConsoleAttachment, ConsoleLink, ProtocolHandler } from '../../console/handler.js';
import { isPortholeError, PortholeError } from '../../errors.js';
import { DEFAULT_WS_HIGH_WATER_BYTES } from '../relay.js';
import { TunnelAnswer, tunnelRequest } from '../tunnel.js';
import { upstreamSocketError } from '../upstream-error.js';
import { Scrollback } from './scrollback.js';

/** Output kept for viewers who join an open serial console. */
export const SERIAL_SCROLLBACK_BYTES = 64 * 1024;

const SEND_BINARY = Object.freeze({ binary: true, compress: false, fin: true });

export interface SerialHandlerOptions {
  readonly connect: ConnectFn;
  readonly logger: Logger;
  readonly wsHighWaterBytes?: number | undefined;
  readonly scrollbackBytes?: number | undefined;
}

export class SerialHandler implements ProtocolHandler {
  readonly protocol = 'serial' as const;
  readonly serverName = 'serial console';
  /** xterm.js's attach addon sends keystrokes as text frames; nova-serialproxy's 1003 for them is not copied. */
  readonly acceptsText = true;
  readonly wantsPassword = false;
  readonly #options: SerialHandlerOptions;
  readonly #ports = new Map<string, SerialPort>();

  constructor(options: SerialHandlerOptions) {
    this.#options = options;
  }

  /** Serial ports with an open upstream connection on this node (for tests and the session list). */
  get openPorts(): number {
    return this.#ports.size;
  }

  attach(link: ConsoleLink): ConsoleAttachment {
    const { host, port, internalAccessPath } = link.info;
    const key = `${host}:${port}:${internalAccessPath ?? ''}`;
    let serial = this.#ports.get(key);
    if (serial === undefined) {
      serial = new SerialPort(link.info.host, link.info.port, internalAccessPath, this.#options, this.acceptsText, () => this.#ports.delete(key));
      this.#ports.set(key, serial);
    }
    return serial.join(link);
  }

  close(): void {
    for (const serial of [...this.#ports.values()]) serial.destroy(new PortholeError('PH_ERR_SHUTTING_DOWN'));
  }
}

type PortState = 'connecting' | 'open' | 'closed';

/** One upstream connection to a serial port, shared by its viewers. */
class SerialPort {
  readonly #what: string;
  readonly #tcp: Socket;
  readonly #highWater: number;
  readonly #scrollback: Scrollback;
  readonly #viewers = new Set<SerialViewer>();
  /** Viewers whose WebSocket queue is above the high-water mark: the upstream waits for them. */
  readonly #blocked = new Set<SerialViewer>();
  readonly #onEmpty: () => void;
  readonly #logger: Logger;
  #state: PortState = 'connecting';
  /** The upstream's write buffer is full: viewers' input waits for 'drain'. */
  #inputPaused = false;

  /** Whether viewers' text frames are keystrokes (else the session fails with 1003, as nova-serialproxy). */
  readonly acceptsText: boolean;

  constructor(host: string, port: number, internalAccessPath: string | undefined, options: SerialHandlerOptions, acceptsText: boolean, onEmpty: () => void) {
    this.acceptsText = acceptsText;
    this.#what = `serial console ${host}:${port}`;
    this.#highWater = options.wsHighWaterBytes ?? DEFAULT_WS_HIGH_WATER_BYTES;
    this.#scrollback = new Scrollback(options.scrollbackBytes ?? SERIAL_SCROLLBACK_BYTES);
    this.#onEmpty = onEmpty;
    this.#logger = options.logger.child({ serial: `${host}:${port}` });
    const tcp = options.connect({ host, port });
    this.#tcp = tcp;
    tcp.setNoDelay(true);
    tcp.once('connect', () => {
      if (internalAccessPath === undefined) this.#open();
      else this.#tunnel(internalAccessPath, host, port);
    });
    tcp.on('error', (err: NodeJS.ErrnoException) => this.destroy(upstreamSocketError(err, 'serial console', `${host}:${port}`, this.#state === 'open')));
    tcp.on('close', () => this.destroy(new PortholeError('PH_ERR_UPSTREAM_CLOSED', `${this.#what} closed the connection`)));
    tcp.on('drain', () => {
      this.#inputPaused = false;
      for (const v of this.#viewers) v.ws.resume();
    });
  }

  join(link: ConsoleLink): SerialViewer {
    const viewer = new SerialViewer(this, link);
    this.#viewers.add(viewer);
    if (this.#state === 'open') this.#start(viewer);
    return viewer;
  }

  leave(viewer: SerialViewer): void {
    if (!this.#viewers.delete(viewer)) return;
    this.#unblock(viewer);
    if (this.#viewers.size === 0 && this.#state !== 'closed') {
      this.#state = 'closed';
      this.#tcp.destroy();
      this.#onEmpty();
      this.#logger.debug('last viewer left: serial connection closed');
    }
  }

  /** The upstream is gone (or shutdown): every viewer's session ends with this reason. */
  destroy(err: PortholeError): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#tcp.destroy();
    this.#onEmpty();
    for (const v of [...this.#viewers]) v.link.fail(err);
  }

  /** Browser → guest. A full upstream pauses every viewer until 'drain'. */
  write(chunk: Buffer): void {
    if (this.#state !== 'open') return;
    if (!this.#tcp.write(chunk) && !this.#inputPaused) {
      this.#inputPaused = true;
      for (const v of this.#viewers) v.ws.pause();
    }
  }

  #tunnel(path: string, host: string, port: number): void {
    const answer = new TunnelAnswer(`CONNECT ${path} to ${host}:${port}`);
    const onHead = (chunk: Buffer) => {
      try {
        const step = answer.feed(chunk);
        if (!step.done) return;
        this.#tcp.off('data', onHead);
        this.#open(step.rest);
      } catch (err) {
        this.destroy(isPortholeError(err) ? err : new PortholeError('PH_ERR_UPSTREAM_UNREACHABLE', (err as Error).message));
      }
    };
    this.#tcp.on('data', onHead);
    this.#tcp.write(tunnelRequest(path));
  }

  #open(leftover?: Buffer): void {
    if (this.#state !== 'connecting') return;
    this.#state = 'open';
    this.#logger.info({ viewers: this.#viewers.size }, 'serial connection open');
    this.#tcp.on('data', this.#onOutput);
    if (leftover !== undefined) this.#onOutput(leftover);
    for (const v of [...this.#viewers]) this.#start(v);
  }

  /** A viewer goes live: scrollback first, then its early keystrokes, then it reads its own WebSocket. */
  #start(viewer: SerialViewer): void {
    viewer.link.relaying();
    const history = this.#scrollback.snapshot();
    if (history.length > 0) this.#send(viewer, history);
    if (this.#inputPaused) viewer.ws.pause();
    for (const m of viewer.link.takeEarly()) viewer.onMessage(m);
    viewer.listen();
  }

  readonly #onOutput = (chunk: Buffer): void => {
    this.#scrollback.push(chunk);
    for (const v of this.#viewers) if (v.live) this.#send(v, chunk);
  };

  #send(viewer: SerialViewer, chunk: Buffer): void {
    viewer.bytesToClient += chunk.length;
    viewer.link.recorder?.toClient(chunk);
    if (viewer.ws.bufferedAmount + chunk.length <= this.#highWater) {
      viewer.ws.send(chunk, SEND_BINARY);
      return;
    }
    const first = this.#blocked.size === 0;
    this.#blocked.add(viewer);
    if (first) this.#tcp.pause();
    viewer.ws.send(chunk, SEND_BINARY, (err?: Error | null) => {
      if (!err) this.#unblock(viewer);
    });
  }

  #unblock(viewer: SerialViewer): void {
    if (this.#blocked.delete(viewer) && this.#blocked.size === 0 && this.#state === 'open') this.#tcp.resume();
  }
}

/** One viewer of a shared serial port: the session's attachment. */
class SerialViewer implements ConsoleAttachment {
  bytesToClient = 0;
  bytesToServer = 0;
  /** View-only: keystrokes not passed. */
  droppedBytes = 0;
  live = false;
  readonly link: ConsoleLink;
  readonly ws: WebSocket;
  readonly #port: SerialPort;

  constructor(port: SerialPort, link: ConsoleLink) {
    this.#port = port;
    this.link = link;
    this.ws = link.ws;
  }

  listen(): void {
    this.live = true;
    this.ws.on('message', this.#onMessage);
  }

  /** Binary and text frames alike: both carry the keystrokes' bytes. A view-only viewer's are dropped. */
  onMessage(data: Buffer): void {
    if (this.link.info.viewOnly === true) {
      this.droppedBytes += data.length;
      return;
    }
    this.bytesToServer += data.length;
    this.link.recorder?.toServer(data);
    this.#port.write(data);
  }

  readonly #onMessage = (data: RawData, isBinary: boolean): void => {
    if (!isBinary && !this.#port.acceptsText) {
      this.link.fail(new PortholeError('PH_ERR_PROTOCOL', 'the browser sent a text frame; this serial console takes binary frames only'));
      return;
    }
    this.onMessage(data as Buffer); // binaryType 'nodebuffer'
  };

  release(): void {
    if (this.live && this.droppedBytes > 0) this.link.logger.info({ droppedBytes: this.droppedBytes }, 'view-only serial console: keystrokes from the viewer were not passed');
    this.live = false;
    this.ws.off('message', this.#onMessage);
    this.#port.leave(this);
  }
}
