/**
 * The hot path: bytes between a browser's WebSocket and a console server's TCP socket, with
 * backpressure both ways. Written by hand (not stream.pipeline over a WebSocket duplex) to keep
 * per-chunk work minimal:
 * - the VNC side is read with `onread` into one reusable buffer per session, bypassing the Readable
 *   stream machinery and the 64 KiB allocation Node makes for every read; the buffer is replaced
 *   only when ws had to queue a chunk (the queued chunk still points into it);
 * - handlers are bound once, send options are one frozen object, and pausing uses ws's own
 *   pause()/resume() and one flush callback.
 * A TLS hop to the VNC server (VeNCrypt) cannot use `onread` — Node ignores it for a TLSSocket
 * wrapping an existing socket — so that path reads 'data' events, whose chunks are fresh buffers.
 */
import type { OnReadOpts, Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';

/**
 * Bytes queued towards the browser before the VNC side is paused. With one read buffer on top,
 * this bounds what a session holds in user space however fast the VM draws and however slowly the
 * browser reads.
 */
export const DEFAULT_WS_HIGH_WATER_BYTES = 512 * 1024;

/**
 * Largest single read from the VNC server. The buffer is allocated with allocUnsafeSlow on the
 * session's first read and its pages become resident only as far as reads fill them, so an idle
 * console costs a page or two, not the whole buffer.
 */
export const READ_BUFFER_BYTES = 64 * 1024;

const SEND_BINARY = Object.freeze({ binary: true, compress: false, fin: true });

export interface RelayOptions {
  readonly ws: WebSocket;
  readonly wsHighWaterBytes?: number;
  /** Relay text frames' bytes like binary ones (serial: xterm.js's attach addon sends text). */
  readonly acceptText?: boolean;
  /** A text frame arrived and text is not accepted (RFB is binary only). */
  readonly onProtocolError: () => void;
}

export class Relay {
  bytesToServer = 0;
  bytesToClient = 0;
  readonly #ws: WebSocket;
  readonly #highWater: number;
  readonly #onProtocolError: () => void;
  readonly #acceptText: boolean;
  #tcp: Socket | undefined;
  #readBuffer: Buffer | undefined;
  #tcpPausedByUs = false;
  #running = false;
  #intercept: ((chunk: Buffer) => void) | undefined;

  /** Pass to net.connect({ onread }) when creating the VNC-side socket. */
  readonly onread: OnReadOpts;

  constructor(options: RelayOptions) {
    this.#ws = options.ws;
    this.#highWater = options.wsHighWaterBytes ?? DEFAULT_WS_HIGH_WATER_BYTES;
    this.#onProtocolError = options.onProtocolError;
    this.#acceptText = options.acceptText === true;
    this.onread = { buffer: this.#nextReadBuffer, callback: this.#onServerRead };
  }

  /**
   * Before relaying: hand the VNC server's bytes to `fn` (the RFB security handshake) instead of
   * the browser. Chunks are copies: the read buffer is reused.
   */
  intercept(tcp: Socket, fn: (chunk: Buffer) => void): void {
    this.#tcp = tcp;
    this.#intercept = fn;
    tcp.resume();
  }

  /**
   * Start relaying over a connected socket: one created with {@link Relay.onread} (`'onread'`), or
   * one that emits 'data' (`'data'`: the TLS socket of a VeNCrypt connection).
   */
  start(tcp: Socket, reads: 'onread' | 'data' = 'onread'): void {
    this.#intercept = undefined;
    this.#tcp = tcp;
    this.#running = true;
    this.#ws.on('message', this.#onClientMessage);
    tcp.on('drain', this.#onServerDrain);
    if (reads === 'data') tcp.on('data', this.#onServerData);
    this.#ws.resume();
    tcp.resume();
  }

  /** Browser messages that arrived before relaying started (kept by the session), in order, with the usual backpressure. */
  replay(messages: readonly Buffer[]): void {
    if (!this.#running) return;
    for (const m of messages) this.#onClientMessage(m, true);
  }

  stop(): void {
    this.#running = false;
    this.#ws.off('message', this.#onClientMessage);
    this.#tcp?.off('drain', this.#onServerDrain);
    this.#tcp?.off('data', this.#onServerData);
  }

  readonly #nextReadBuffer = (): Buffer => (this.#readBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));

  /** Browser → VNC server. A full TCP buffer pauses reading from the browser until 'drain'. */
  readonly #onClientMessage = (data: RawData, isBinary: boolean): void => {
    if (!isBinary && !this.#acceptText) {
      this.#onProtocolError();
      return;
    }
    const chunk = data as Buffer; // binaryType 'nodebuffer': always one Buffer
    this.bytesToServer += chunk.length;
    if (!(this.#tcp as Socket).write(chunk)) this.#ws.pause();
  };

  readonly #onServerDrain = (): void => {
    this.#ws.resume();
  };

  /**
   * VNC server → browser, called by Node for every read into the session's buffer. Returning
   * false pauses the socket. When the WebSocket's queue would pass the high-water mark, this chunk
   * is sent with a flush callback and reading pauses; ws calls back once the chunk (and so all
   * before it) reached the kernel, and reading resumes.
   */
  readonly #onServerRead = (bytes: number, buffer: Uint8Array): boolean => {
    if (this.#intercept !== undefined) {
      this.#intercept(Buffer.from(buffer.subarray(0, bytes)));
      return true;
    }
    if (!this.#running) return false;
    this.bytesToClient += bytes;
    const chunk = (buffer as Buffer).subarray(0, bytes);
    const pause = this.#ws.bufferedAmount + bytes > this.#highWater;
    if (pause) {
      this.#tcpPausedByUs = true;
      this.#ws.send(chunk, SEND_BINARY, this.#onClientFlushed);
    } else {
      this.#ws.send(chunk, SEND_BINARY);
    }
    // ws queued the chunk instead of handing it to the kernel: it still points into our buffer,
    // so the next read must go to a fresh one.
    if (this.#ws.bufferedAmount > 0) this.#readBuffer = undefined;
    return !pause;
  };

  /** VNC server → browser for a 'data'-emitting socket: same backpressure as the onread path. */
  readonly #onServerData = (chunk: Buffer): void => {
    if (!this.#running) return;
    this.bytesToClient += chunk.length;
    if (this.#ws.bufferedAmount + chunk.length > this.#highWater) {
      this.#tcpPausedByUs = true;
      this.#ws.send(chunk, SEND_BINARY, this.#onClientFlushed);
      this.#tcp?.pause();
    } else {
      this.#ws.send(chunk, SEND_BINARY);
    }
  };

  readonly #onClientFlushed = (err?: Error | null): void => {
    // Streams call back with null (not undefined) on success.
    if (!err && this.#tcpPausedByUs && this.#running) {
      this.#tcpPausedByUs = false;
      this.#tcp?.resume();
    }
  };
}
