/**
 * A raw TCP client (a remote-viewer channel through the HTTP CONNECT endpoint) behind the small
 * part of ws's WebSocket that sessions and protocol handlers use, so the same session lifecycle,
 * limits, protocol handlers and relay serve it: 'message' is each read, send() writes,
 * bufferedAmount is the socket's write queue, close() ends the socket (a raw stream carries no
 * close code: the code is logged and kept for the session's close line). Keepalive pings are
 * answered at once (TCP has its own keepalive, enabled here).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

export class SocketClient extends EventEmitter {
  readonly CONNECTING = 0;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;
  readyState: number = OPEN;
  readonly #socket: Socket;
  #closeCode = 1006;

  constructor(socket: Socket, head?: Buffer) {
    super();
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('data', (chunk: Buffer) => this.emit('message', chunk, true));
    socket.on('error', (err) => this.emit('error', err));
    socket.on('close', () => {
      this.readyState = CLOSED;
      this.emit('close', this.#closeCode, Buffer.alloc(0));
    });
    if (head !== undefined && head.length > 0) queueMicrotask(() => this.emit('message', head, true));
  }

  /** As ws: the WebSocket facade for code typed against ws (only the members listed in this file are used). */
  asWebSocket(): WebSocket {
    return this as unknown as WebSocket;
  }

  get bufferedAmount(): number {
    return this.#socket.writableLength;
  }

  send(data: Buffer, options?: unknown, cb?: (err?: Error | null) => void): void {
    const callback = typeof options === 'function' ? options as (err?: Error | null) => void : cb;
    if (this.readyState !== OPEN) {
      callback?.(new Error('socket is not open'));
      return;
    }
    this.#socket.write(data, callback);
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  ping(): void {
    queueMicrotask(() => this.emit('pong'));
  }

  close(code = 1000): void {
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    this.#closeCode = code;
    this.#socket.end();
  }

  terminate(): void {
    this.readyState = CLOSING;
    this.#socket.destroy();
  }
}
