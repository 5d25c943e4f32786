/**
 * The hot path: bytes between a browser's WebSocket and a VNC server's TCP socket, with
 * backpressure both ways. Written by hand (not stream.pipeline over a WebSocket duplex) so that
 * nothing is allocated per chunk: handlers are bound once, send options are one frozen object,
 * and pausing uses ws's own pause()/resume() and one flush callback.
 */
import type { Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';

/**
 * Bytes queued towards the browser before the VNC side is paused. With one 64 KiB TCP read on top,
 * this bounds what a session holds in user space however fast the VM draws and however slowly the
 * browser reads.
 */
export const DEFAULT_WS_HIGH_WATER_BYTES = 512 * 1024;

const SEND_BINARY = Object.freeze({ binary: true, compress: false, fin: true });

export interface RelayOptions {
  readonly ws: WebSocket;
  readonly tcp: Socket;
  readonly wsHighWaterBytes?: number;
  /** A text frame arrived (the 'binary' subprotocol carries only binary frames). */
  readonly onProtocolError: () => void;
}

export class Relay {
  bytesToServer = 0;
  bytesToClient = 0;
  readonly #ws: WebSocket;
  readonly #tcp: Socket;
  readonly #highWater: number;
  readonly #onProtocolError: () => void;
  #tcpPausedByUs = false;

  constructor(options: RelayOptions) {
    this.#ws = options.ws;
    this.#tcp = options.tcp;
    this.#highWater = options.wsHighWaterBytes ?? DEFAULT_WS_HIGH_WATER_BYTES;
    this.#onProtocolError = options.onProtocolError;
  }

  start(): void {
    this.#ws.on('message', this.#onClientMessage);
    this.#tcp.on('data', this.#onServerData);
    this.#tcp.on('drain', this.#onServerDrain);
    this.#ws.resume();
    this.#tcp.resume();
  }

  stop(): void {
    this.#ws.off('message', this.#onClientMessage);
    this.#tcp.off('data', this.#onServerData);
    this.#tcp.off('drain', this.#onServerDrain);
  }

  /** Browser → VNC server. A full TCP buffer pauses reading from the browser until 'drain'. */
  readonly #onClientMessage = (data: RawData, isBinary: boolean): void => {
    if (!isBinary) {
      this.#onProtocolError();
      return;
    }
    const chunk = data as Buffer; // binaryType 'nodebuffer': always one Buffer
    this.bytesToServer += chunk.length;
    if (!this.#tcp.write(chunk)) this.#ws.pause();
  };

  readonly #onServerDrain = (): void => {
    this.#ws.resume();
  };

  /**
   * VNC server → browser. When the WebSocket's queue would pass the high-water mark, this chunk is
   * sent with a flush callback and the TCP side pauses; ws calls back once the chunk (and so all
   * before it) reached the kernel, and reading resumes.
   */
  readonly #onServerData = (chunk: Buffer): void => {
    this.bytesToClient += chunk.length;
    if (this.#ws.bufferedAmount + chunk.length > this.#highWater) {
      this.#tcp.pause();
      this.#tcpPausedByUs = true;
      this.#ws.send(chunk, SEND_BINARY, this.#onClientFlushed);
    } else {
      this.#ws.send(chunk, SEND_BINARY);
    }
  };

  readonly #onClientFlushed = (err?: Error | null): void => {
    // Streams call back with null (not undefined) on success.
    if (!err && this.#tcpPausedByUs) {
      this.#tcpPausedByUs = false;
      this.#tcp.resume();
    }
  };
}
