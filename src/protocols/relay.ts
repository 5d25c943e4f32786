/**
 * The hot path: bytes between a browser's WebSocket and a console server's TCP socket, with
 * backpressure both ways. Written by hand (not stream.pipeline over a WebSocket duplex) to keep
 * per-chunk work minimal:
 * - the VNC side is read with `onread` into one reusable buffer per session, bypassing the Readable
 *   stream machinery and the 64 KiB allocation Node makes for every read; the buffer is replaced
 *   only when ws had to queue a chunk (the queued chunk still points into it);
 * - the browser side is parsed by {@link ClientFrameReader} once relaying starts (see
 *   client-frames.ts: ws's Receiver would copy every frame that spans two reads), payload unmasked
 *   in place and written to the VNC socket as it arrives; ws keeps control frames, text and errors;
 * - handlers are bound once, send options are one frozen object, and pausing uses ws's own
 *   pause()/resume() and one flush callback.
 * View-only filtering, recording taps and bandwidth caps take their own branch off this path, so a
 * plain session pays one check per chunk for them.
 * A TLS hop to the VNC server (VeNCrypt) cannot use `onread` — Node ignores it for a TLSSocket
 * wrapping an existing socket — so that path reads 'data' events, whose chunks are fresh buffers.
 */
import type { OnReadOpts, Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import { takeOverClientFrames, type ClientFramesTakeover, type Unmask } from './client-frames.js';

/**
 * Bytes queued towards the browser before the VNC side is paused. With one read buffer on top,
 * this bounds what a session holds in user space however fast the VM draws and however slowly the
 * browser reads.
 */
export const DEFAULT_WS_HIGH_WATER_BYTES = 512 * 1024;

/**
 * The first read buffer for the VNC server: the greeting (12 bytes) and small updates fit, and an
 * idle console holds this much, packed with other small allocations — not the page of a 64 KiB
 * buffer that a 12-byte read would make resident (4 KiB per console: measured with the scale
 * benchmark, 17.5 → 14 KiB per idle console). The first read that fills it moves the session to
 * {@link READ_BUFFER_BYTES}.
 */
export const FIRST_READ_BUFFER_BYTES = 1024;

/** Read size once the VM sends more than a small update: allocated with allocUnsafeSlow, resident as far as reads fill it. */
export const READ_BUFFER_BYTES = 64 * 1024;

/**
 * Read size once the VM floods (a read filled the whole buffer): fewer, larger reads and WebSocket
 * frames mean fewer syscalls and wake-ups on every hop (the browser's too). Measured with the relay
 * benchmark (64 KiB writes from the VM): 64 KiB reads 753 MiB/s, 128 KiB 799, 256 KiB 833, 512 KiB 917.
 */
export const FLOOD_READ_BUFFER_BYTES = 256 * 1024;

const SEND_BINARY = Object.freeze({ binary: true, compress: false, fin: true });

/** Sees every byte relayed, in order (session recording). Called synchronously; `chunk` is only valid during the call. */
export interface RelayTap {
  toClient(chunk: Buffer): void;
  toServer(chunk: Buffer): void;
}

export interface RelayOptions {
  readonly ws: WebSocket;
  readonly wsHighWaterBytes?: number;
  /** Relay text frames' bytes like binary ones (serial: xterm.js's attach addon sends text). */
  readonly acceptText?: boolean;
  /** A text frame arrived and text is not accepted (RFB is binary only). */
  readonly onProtocolError: () => void;
  /**
   * Browser → server bytes pass through this first (view-only consoles): what to forward, or the
   * error to close the console with (`onFilterError`).
   */
  readonly clientFilter?: ((chunk: Buffer) => Buffer[] | Error) | undefined;
  readonly onFilterError?: ((err: Error) => void) | undefined;
  readonly tap?: RelayTap | undefined;
  /** `[console] max_bandwidth`: bytes per second each way; 0 or absent: no cap. */
  readonly maxBytesPerSecond?: number | undefined;
  /**
   * Unmasks browser frames for the relay's own frame reader (client-frames.ts `loadUnmask()`);
   * absent: browser bytes arrive through ws's 'message' events.
   */
  readonly unmask?: Unmask | undefined;
}

/**
 * A token bucket that shapes by pausing reads: `take(n)` spends n bytes and says how long the
 * reader must pause (0: no pause). Debt is allowed (a chunk is never split or dropped), so the
 * long-run rate is the cap and nothing is buffered beyond one read. Pure except for the clock.
 */
export class ByteRate {
  readonly #rate: number;
  readonly #burst: number;
  #allowance: number;
  #stamp: number;
  readonly #now: () => number;

  constructor(bytesPerSecond: number, now: () => number = () => performance.now()) {
    this.#rate = bytesPerSecond;
    this.#burst = Math.max(bytesPerSecond / 10, 1); // 100 ms worth: smooth, and a burst of keystrokes passes at once
    this.#allowance = this.#burst;
    this.#now = now;
    this.#stamp = now();
  }

  /** Spend `bytes`; the milliseconds to wait before reading again. */
  take(bytes: number): number {
    const now = this.#now();
    this.#allowance = Math.min(this.#burst, this.#allowance + ((now - this.#stamp) * this.#rate) / 1000);
    this.#stamp = now;
    this.#allowance -= bytes;
    return this.#allowance >= 0 ? 0 : Math.ceil((-this.#allowance * 1000) / this.#rate);
  }
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
  /** The size of the next read buffer: FIRST_READ_BUFFER_BYTES, then READ_BUFFER_BYTES, FLOOD_READ_BUFFER_BYTES, each once a read filled the one before. */
  #readSize = FIRST_READ_BUFFER_BYTES;
  #tcpPausedByUs = false;
  #running = false;
  #intercept: ((chunk: Buffer) => void) | undefined;
  readonly #clientFilter: RelayOptions['clientFilter'];
  readonly #onFilterError: (err: Error) => void;
  readonly #tap: RelayTap | undefined;
  readonly #downRate: ByteRate | undefined;
  readonly #upRate: ByteRate | undefined;
  /** Reading from the server paused by the bandwidth cap (its timer resumes it). */
  #downTimer: NodeJS.Timeout | undefined;
  #upTimer: NodeJS.Timeout | undefined;
  /** Reading from the browser paused because the server's TCP buffer is full (until 'drain'). */
  #wsPausedForDrain = false;
  readonly #unmask: Unmask | undefined;
  #takeover: ClientFramesTakeover | undefined;
  /** A takeover attempt is queued for after ws's Receiver finishes the current read. */
  #takeoverQueued = false;

  /** Pass to net.connect({ onread }) when creating the VNC-side socket. */
  readonly onread: OnReadOpts;

  constructor(options: RelayOptions) {
    this.#ws = options.ws;
    this.#highWater = options.wsHighWaterBytes ?? DEFAULT_WS_HIGH_WATER_BYTES;
    this.#onProtocolError = options.onProtocolError;
    this.#acceptText = options.acceptText === true;
    this.#clientFilter = options.clientFilter;
    this.#onFilterError = options.onFilterError ?? (() => this.#onProtocolError());
    this.#tap = options.tap;
    const cap = options.maxBytesPerSecond ?? 0;
    this.#downRate = cap > 0 ? new ByteRate(cap) : undefined;
    this.#upRate = cap > 0 ? new ByteRate(cap) : undefined;
    this.#unmask = options.unmask;
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
    this.#takeOverClientFrames();
    this.#ws.resume();
    tcp.resume();
  }

  /** Whether browser frames are read by the relay's own reader (not ws's Receiver). */
  get readsClientFrames(): boolean {
    return this.#takeover?.active === true;
  }

  #takeOverClientFrames(): void {
    if (this.#unmask === undefined || this.#takeover?.active === true || !this.#running) return;
    this.#takeover = takeOverClientFrames(this.#ws, this.#clientPayloadSink, this.#unmask);
  }

  /**
   * ws's Receiver was inside a frame when relaying started, so the takeover waits: a 'message' is
   * emitted from inside the Receiver's loop, and once that read is parsed (next tick, before any
   * other I/O) it may be between messages.
   */
  #queueTakeover(): void {
    if (this.#takeoverQueued || this.#unmask === undefined || this.#takeover?.active === true) return;
    this.#takeoverQueued = true;
    process.nextTick(() => {
      this.#takeoverQueued = false;
      this.#takeOverClientFrames();
    });
  }

  /** Browser messages that arrived before relaying started (kept by the session), in order, with the usual backpressure. */
  replay(messages: readonly Buffer[]): void {
    if (!this.#running) return;
    for (const m of messages) this.#onClientMessage(m, true);
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#downTimer);
    clearTimeout(this.#upTimer);
    this.#ws.off('message', this.#onClientMessage);
    this.#takeover?.release();
    this.#takeover = undefined;
    this.#tcp?.off('drain', this.#onServerDrain);
    this.#tcp?.off('data', this.#onServerData);
  }

  readonly #nextReadBuffer = (): Buffer => (this.#readBuffer ??= Buffer.allocUnsafeSlow(this.#readSize));

  /** Browser → VNC server. More than the high-water mark queued for the TCP socket pauses reading from the browser until 'drain'. */
  readonly #onClientMessage = (data: RawData, isBinary: boolean): void => {
    if (!isBinary && !this.#acceptText) {
      this.#onProtocolError();
      return;
    }
    if (this.#running && this.#takeover?.active !== true) this.#queueTakeover();
    this.#onClientBytes(data as Buffer); // binaryType 'nodebuffer': always one Buffer
  };

  /** Where the relay's frame reader puts browser payload; its read buffer is reused once the VNC socket holds none of it. */
  readonly #clientPayloadSink = {
    payload: (chunk: Buffer): void => this.#onClientBytes(chunk),
    released: (): boolean => this.#clientFilter === undefined && (this.#tcp?.writableLength ?? 0) === 0,
  };

  /** Browser → VNC server bytes, from a ws message or straight from the relay's frame reader. */
  readonly #onClientBytes = (chunk: Buffer): void => {
    if (this.#clientFilter !== undefined || this.#tap !== undefined || this.#upRate !== undefined) {
      this.#toServerSlow(chunk);
      return;
    }
    this.bytesToServer += chunk.length;
    const tcp = this.#tcp as Socket;
    tcp.write(chunk);
    // Not `write() === false`: a socket's high-water mark is 16 KiB, so every 64 KiB message would
    // stop reading the browser until the kernel took it all — one message in flight (measured: up
    // 300 MiB/s; with this, the same as down). Paused at the relay's own mark, resumed on 'drain'.
    if (tcp.writableLength > this.#highWater) {
      this.#wsPausedForDrain = true;
      this.#ws.pause();
    }
  };

  /** Browser → server with a view-only filter, a recording tap or a bandwidth cap: off the plain path. */
  #toServerSlow(chunk: Buffer): void {
    const parts = this.#clientFilter === undefined ? [chunk] : this.#clientFilter(chunk);
    if (parts instanceof Error) {
      this.#onFilterError(parts);
      return;
    }
    const tcp = this.#tcp as Socket;
    for (const part of parts) {
      this.bytesToServer += part.length;
      this.#tap?.toServer(part);
      tcp.write(part);
    }
    if (tcp.writableLength > this.#highWater) {
      this.#wsPausedForDrain = true;
      this.#ws.pause();
    }
    const wait = this.#upRate?.take(chunk.length) ?? 0;
    if (wait > 0 && this.#upTimer === undefined) {
      this.#ws.pause();
      this.#upTimer = setTimeout(() => {
        this.#upTimer = undefined;
        if (this.#running && !this.#wsPausedForDrain) this.#ws.resume();
      }, wait);
    }
  }

  readonly #onServerDrain = (): void => {
    this.#wsPausedForDrain = false;
    if (this.#upTimer === undefined) this.#ws.resume();
  };

  /** Server → browser bookkeeping off the plain path: the tap, and the cap's pause. True: keep reading. */
  #serverBytesSlow(chunk: Buffer): boolean {
    this.#tap?.toClient(chunk);
    const wait = this.#downRate?.take(chunk.length) ?? 0;
    if (wait === 0) return true;
    clearTimeout(this.#downTimer);
    this.#downTimer = setTimeout(() => {
      this.#downTimer = undefined;
      if (this.#running && !this.#tcpPausedByUs) this.#tcp?.resume();
    }, wait);
    return false;
  }

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
    const keepReading = this.#tap === undefined && this.#downRate === undefined ? true : this.#serverBytesSlow(chunk);
    const pause = this.#ws.bufferedAmount + bytes > this.#highWater;
    if (pause) {
      this.#tcpPausedByUs = true;
      this.#ws.send(chunk, SEND_BINARY, this.#onClientFlushed);
    } else {
      this.#ws.send(chunk, SEND_BINARY);
    }
    // The VM sends more than the buffer holds: read more at a time from now on.
    const grow = bytes === this.#readSize && this.#readSize < FLOOD_READ_BUFFER_BYTES;
    if (grow) this.#readSize = this.#readSize < READ_BUFFER_BYTES ? READ_BUFFER_BYTES : FLOOD_READ_BUFFER_BYTES;
    // ws queued the chunk instead of handing it to the kernel: it still points into our buffer,
    // so the next read must go to a fresh one.
    if (grow || this.#ws.bufferedAmount > 0) this.#readBuffer = undefined;
    return !pause && keepReading;
  };

  /** VNC server → browser for a 'data'-emitting socket: same backpressure as the onread path. */
  readonly #onServerData = (chunk: Buffer): void => {
    if (!this.#running) return;
    this.bytesToClient += chunk.length;
    if ((this.#tap !== undefined || this.#downRate !== undefined) && !this.#serverBytesSlow(chunk)) this.#tcp?.pause();
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
      if (this.#downTimer === undefined) this.#tcp?.resume();
    }
  };
}
