/**
 * The browser → server half of a relaying console's WebSocket, read here instead of by ws's
 * Receiver. Written by hand because the hot path demands it: ws's Receiver joins every frame that
 * spans two socket reads into a new buffer — with 64 KiB messages and 64 KiB reads that is a
 * 64 KiB copy and allocation for nearly every message — and pauses and resumes the socket after
 * every read larger than its 16 KiB high-water mark. Profiled on the relay benchmark's up row
 * (`node --cpu-prof`): the join alone 15 % of the proxy's busy time, the garbage it leaves another
 * 16 %. This reader unmasks payload in place, in the buffers Node hands us (each read is a fresh
 * buffer nobody else holds), and passes slices on: no copy, no allocation per frame.
 *
 * It takes only what a console's data needs — binary data frames (opcode 2, then continuations),
 * RSV bits clear, masked, within the message size limit — and gives control frames (close, ping,
 * pong; at most 125 bytes) whole to ws's Receiver, which answers them as before. Anything else is
 * handed back to ws's Receiver with the rest of the stream, so ws's own checks decide what it
 * means: text frames (xterm.js sends text), reserved opcodes, RSV bits, unmasked or oversized
 * frames. Handed back in the middle of a fragmented message, ws first gets a zero-length fragment
 * start, so its state is ours and it rejects a new data frame (1002) as it would have; a message
 * over the limit is handed back as a fragment that claims the limit plus one, which ws refuses
 * with 1009 before any payload.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/** Where the reader's output goes. */
export interface ClientFrameSink {
  /** Unmasked application bytes of binary data frames, in order. Valid after the call (nobody reuses it). */
  payload(chunk: Buffer): void;
  /** One whole control frame, still masked, for ws's Receiver. */
  control(frame: Buffer): void;
  /** The rest of the stream, from a frame header on, for ws's Receiver; the reader is done. */
  handBack(bytes: Buffer): void;
}

/** Unmasks `buffer` in place with the 4-byte `mask` starting at key index 0. */
export type Unmask = (buffer: Buffer, mask: Buffer) => void;

export function unmaskInJs(buffer: Buffer, mask: Buffer): void {
  for (let i = 0; i < buffer.length; i++) buffer[i] = (buffer[i] as number) ^ (mask[i & 3] as number);
}

/**
 * bufferutil's native unmask (the library ws itself uses, an optional dependency) for payloads
 * where a call beats the loop; the JS loop when it is not installed.
 */
export function loadUnmask(): Unmask {
  try {
    const native = (createRequire(import.meta.url)('bufferutil') as { unmask: Unmask }).unmask;
    return (buffer, mask) => (buffer.length < 32 ? unmaskInJs(buffer, mask) : native(buffer, mask));
  } catch {
    return unmaskInJs;
  }
}

type ReaderState = 'header' | 'payload' | 'control' | 'done';

const MAX_HEADER_BYTES = 14;
const MAX_CONTROL_FRAME_BYTES = 2 + 4 + 125;

/**
 * A byte-fed, resumable parser of client frames: feed it socket reads with {@link push}; any split
 * of the same bytes gives the same output. Pure apart from the sink it calls.
 */
export class ClientFrameReader {
  readonly #maxMessageBytes: number;
  readonly #sink: ClientFrameSink;
  readonly #unmask: Unmask;
  #state: ReaderState = 'header';
  // Scratch space from Node's shared pool (allocUnsafe of a few bytes: no ArrayBuffer of its own),
  // and the control frame's only once one arrives: every relaying console has a reader, and at
  // 8,000 idle consoles each of those ArrayBuffers is memory (scale benchmark).
  readonly #header = Buffer.allocUnsafe(MAX_HEADER_BYTES);
  #headerBytes = 0;
  #control: Buffer | undefined;
  #controlBytes = 0;
  #controlNeeded = 0;
  readonly #mask = Buffer.allocUnsafe(4);
  /** The mask rotated for a payload slice that starts at a key index other than 0. */
  readonly #rotated = Buffer.allocUnsafe(4);
  #payloadLeft = 0;
  #payloadAt = 0;
  #fin = false;
  /** A fragmented message is in progress (its first frame had FIN clear). */
  #inMessage = false;
  #messageBytes = 0;

  /** `maxMessageBytes` 0: no limit. */
  constructor(maxMessageBytes: number, sink: ClientFrameSink, unmask: Unmask = unmaskInJs) {
    this.#maxMessageBytes = maxMessageBytes;
    this.#sink = sink;
    this.#unmask = unmask;
  }

  /** Between messages: no frame begun, no fragmented message open. */
  get atMessageBoundary(): boolean {
    return this.#state === 'header' && this.#headerBytes === 0 && !this.#inMessage;
  }

  get done(): boolean {
    return this.#state === 'done';
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.#state) {
        case 'payload': at = this.#takePayload(chunk, at); break;
        case 'header': at = this.#takeHeader(chunk, at); break;
        case 'control': at = this.#takeControl(chunk, at); break;
        case 'done': return;
      }
    }
  }

  /** Hand back now (the caller stops relaying): only sensible at a message boundary. */
  handBackNow(): void {
    if (this.#state !== 'done') this.#handBack(Buffer.alloc(0), 0, 0);
  }

  #takePayload(chunk: Buffer, at: number): number {
    const n = Math.min(this.#payloadLeft, chunk.length - at);
    const slice = chunk.subarray(at, at + n);
    const offset = this.#payloadAt & 3;
    let key = this.#mask;
    if (offset !== 0) {
      for (let i = 0; i < 4; i++) this.#rotated[i] = this.#mask[(i + offset) & 3] as number;
      key = this.#rotated;
    }
    this.#unmask(slice, key);
    this.#payloadLeft -= n;
    this.#payloadAt += n;
    if (this.#payloadLeft === 0) this.#endFrame();
    this.#sink.payload(slice);
    return at + n;
  }

  #endFrame(): void {
    this.#state = 'header';
    if (this.#fin) {
      this.#inMessage = false;
      this.#messageBytes = 0;
    } else {
      this.#inMessage = true;
    }
  }

  #takeHeader(chunk: Buffer, at: number): number {
    const start = at;
    const earlier = this.#headerBytes;
    if (this.#headerBytes < 2) {
      const n = Math.min(2 - this.#headerBytes, chunk.length - at);
      chunk.copy(this.#header, this.#headerBytes, at, at + n);
      this.#headerBytes += n;
      at += n;
      if (this.#headerBytes < 2) return at;
    }
    const b0 = this.#header[0] as number;
    const b1 = this.#header[1] as number;
    const opcode = b0 & 0x0f;
    const clean = (b0 & 0x70) === 0 && (b1 & 0x80) !== 0; // RSV clear, masked
    const len7 = b1 & 0x7f;
    const isData = clean && (this.#inMessage ? opcode === 0 : opcode === 2);
    const isControl = clean && opcode >= 8 && opcode <= 10 && (b0 & 0x80) !== 0 && len7 <= 125;
    if (!isData && !isControl) return this.#handBack(chunk, start, Math.min(earlier, 2));
    if (isControl) {
      this.#state = 'control';
      this.#controlNeeded = 6 + len7;
      this.#control ??= Buffer.allocUnsafe(MAX_CONTROL_FRAME_BYTES);
      this.#header.copy(this.#control, 0, 0, 2);
      this.#controlBytes = 2;
      this.#headerBytes = 0;
      return at;
    }
    const needed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + 4;
    const n = Math.min(needed - this.#headerBytes, chunk.length - at);
    chunk.copy(this.#header, this.#headerBytes, at, at + n);
    this.#headerBytes += n;
    at += n;
    if (this.#headerBytes < needed) return at;
    const length = len7 === 126 ? this.#header.readUInt16BE(2)
      : len7 === 127 ? this.#header.readUInt32BE(2) * 2 ** 32 + this.#header.readUInt32BE(6)
        : len7;
    if (this.#maxMessageBytes > 0 && this.#messageBytes + length > this.#maxMessageBytes) {
      return this.#handBackOversize(chunk, at);
    }
    this.#header.copy(this.#mask, 0, needed - 4, needed);
    this.#fin = (b0 & 0x80) !== 0;
    this.#messageBytes += length;
    this.#payloadLeft = length;
    this.#payloadAt = 0;
    this.#headerBytes = 0;
    if (length === 0) this.#endFrame();
    else this.#state = 'payload';
    return at;
  }

  #takeControl(chunk: Buffer, at: number): number {
    const control = this.#control as Buffer;
    const n = Math.min(this.#controlNeeded - this.#controlBytes, chunk.length - at);
    chunk.copy(control, this.#controlBytes, at, at + n);
    this.#controlBytes += n;
    if (this.#controlBytes === this.#controlNeeded) {
      this.#state = 'header';
      // A copy: ws may keep what it is given (a ping's payload goes back out in the pong).
      this.#sink.control(Buffer.from(control.subarray(0, this.#controlBytes)));
    }
    return at + n;
  }

  /**
   * Give ws the header begun so far (`earlier` bytes of it came in previous chunks, the rest from
   * `start` in this one) and everything after it; in mid-message, after a zero-length fragment start.
   */
  #handBack(chunk: Buffer, start: number, earlier: number): number {
    const parts: Buffer[] = [];
    if (this.#inMessage) parts.push(Buffer.from([0x02, 0x80, 0, 0, 0, 0]));
    if (earlier > 0) parts.push(Buffer.from(this.#header.subarray(0, earlier)));
    parts.push(chunk.subarray(start));
    this.#state = 'done';
    this.#sink.handBack(Buffer.concat(parts));
    return chunk.length;
  }

  /** A fragment start that claims one byte over the limit: ws refuses it with 1009, as it would the real message. */
  #handBackOversize(chunk: Buffer, at: number): number {
    const claim = Buffer.alloc(MAX_HEADER_BYTES);
    claim[0] = 0x02;
    claim[1] = 0x80 | 127;
    claim.writeBigUInt64BE(BigInt(this.#maxMessageBytes + 1), 2);
    this.#state = 'done';
    this.#sink.handBack(Buffer.concat([claim, chunk.subarray(at)]));
    return chunk.length;
  }
}

/** The parts of ws's WebSocket and Receiver the takeover reads (not public API: checked before use). */
interface ReceiverInternals {
  write?: unknown;
  _bufferedBytes?: unknown;
  _state?: unknown;
  _fragmented?: unknown;
  _maxPayload?: unknown;
}
interface WebSocketInternals {
  _socket?: Socket;
  _receiver?: ReceiverInternals;
}

export interface ClientFramesTakeover {
  /** Still reading: false once the stream went back to ws (a frame the reader does not take, or released). */
  readonly active: boolean;
  /**
   * The relay stopped: payload from now on is dropped, control frames still reach ws (the close
   * handshake finishes), and ws gets the stream back at the next message boundary.
   */
  release(): void;
}

const DROP = (): void => {};

/**
 * Take a WebSocket's socket reads away from ws's Receiver and parse them with a
 * {@link ClientFrameReader}; binary payload goes to `onPayload`. Undefined when that cannot be done
 * now, and the caller keeps relaying ws's 'message' events: ws's internals are not the ones this was
 * written against (another ws version), the socket has other readers, or the Receiver is inside a
 * frame (try again once it is between messages).
 */
export interface ClientPayloadSink {
  /** Unmasked binary payload, in order (see {@link ClientFrameSink.payload}). */
  payload(chunk: Buffer): void;
  /** Whether nothing handed to `payload` is still referenced (written through to the kernel), so the read buffer can be reused. */
  released(): boolean;
}

/** A read at least this big (the browser is streaming) moves the socket onto the reader's own read buffer. */
export const OWN_BUFFER_AFTER_READ_BYTES = 32 * 1024;
/** That buffer's size: bigger reads than Node's 64 KiB, so fewer reads and wake-ups per byte. */
export const OWN_READ_BUFFER_BYTES = 256 * 1024;
/** While earlier reads are still queued towards the server, the next read goes after them in the same buffer, if this much is left. */
const MIN_READ_BYTES = 64 * 1024;

interface SocketInternals {
  _handle?: { useUserBuffer?: unknown } | null;
  encrypted?: unknown;
}

/**
 * Make Node read the socket into `first` and call `onRead(bytes, buffer)` instead of allocating a
 * fresh 64 KiB buffer per read and emitting 'data' — what `net.connect({ onread })` does for
 * sockets we create, done here for one the HTTP server accepted (Node offers no public way). Why:
 * at hundreds of MiB/s those allocations are external memory that drives a full GC every ~100 ms
 * (`--trace-gc`: "external memory pressure"). Uses the socket's own kBuffer/kBufferCb/kBufferGen
 * slots (looked up by name, as net.Socket sets them on every socket) and the handle's
 * useUserBuffer; false, and nothing changed, if they are not there (another Node) or the socket
 * is TLS (its reads come decrypted, from another path).
 */
function readIntoOwnBuffer(socket: Socket, first: Buffer, onRead: (bytes: number, buffer: Uint8Array) => boolean, next: () => Uint8Array): boolean {
  const internals = socket as unknown as SocketInternals & Record<symbol, unknown>;
  const handle = internals._handle;
  if (internals.encrypted === true || handle === undefined || handle === null || typeof handle.useUserBuffer !== 'function') return false;
  if (socket.readableLength > 0) return false;
  const slot = (name: string): symbol | undefined => Object.getOwnPropertySymbols(socket).find((k) => k.description === name);
  const kBuffer = slot('kBuffer');
  const kBufferCb = slot('kBufferCb');
  const kBufferGen = slot('kBufferGen');
  if (kBuffer === undefined || kBufferCb === undefined || kBufferGen === undefined || internals[kBuffer] !== null) return false;
  internals[kBuffer] = first;
  internals[kBufferCb] = onRead;
  internals[kBufferGen] = next;
  (handle.useUserBuffer as (buffer: Uint8Array) => void).call(handle, first);
  return true;
}

export function takeOverClientFrames(ws: WebSocket, sink: ClientPayloadSink, unmask: Unmask): ClientFramesTakeover | undefined {
  const { _socket: socket, _receiver: receiver } = ws as unknown as WebSocketInternals;
  if (socket === undefined || receiver === undefined || typeof receiver.write !== 'function') return undefined;
  if (ws.readyState !== ws.OPEN || ws.extensions !== '') return undefined;
  // Between frames, no fragmented message open, nothing buffered (0 is the Receiver's GET_INFO state).
  if (receiver._bufferedBytes !== 0 || receiver._state !== 0 || receiver._fragmented !== 0) return undefined;
  const listeners = socket.listeners('data');
  if (listeners.length !== 1) return undefined;
  const wsOnData = listeners[0] as (this: Socket, chunk: Buffer) => void;
  const maxPayload = typeof receiver._maxPayload === 'number' ? receiver._maxPayload : 0;

  let deliver = (chunk: Buffer): void => sink.payload(chunk);
  let released = false;
  /** The stream went back to ws; with our own read buffer, reads still come here and are passed on as copies. */
  let handedBack = false;
  /**
   * The own read buffer once the browser streams. Reads start at its beginning when nothing of it
   * is still queued towards the server; otherwise after the last read (a new buffer when less than
   * MIN_READ_BYTES is left). So what it pins is about what is queued — bounded by the relay's
   * high-water mark — and never a whole buffer per small read.
   */
  let ownBuffer: Buffer | undefined;
  let ownBufferUsed = 0;
  const onData = (chunk: Buffer): void => {
    if (handedBack) {
      wsOnData.call(socket, chunk);
      return;
    }
    reader.push(chunk);
    if (released) {
      if (reader.atMessageBoundary) reader.handBackNow();
      return;
    }
    if (ownBuffer === undefined && chunk.length >= OWN_BUFFER_AFTER_READ_BYTES && !reader.done) {
      const first = Buffer.allocUnsafeSlow(OWN_READ_BUFFER_BYTES);
      if (readIntoOwnBuffer(socket, first, onOwnRead, nextOwnBuffer)) {
        ownBuffer = first;
        socket.off('data', onData);
      }
    }
  };
  const onOwnRead = (bytes: number, buffer: Uint8Array): boolean => {
    const own = ownBuffer as Buffer;
    ownBufferUsed = buffer.byteOffset - own.byteOffset + bytes;
    const chunk = (buffer as Buffer).subarray(0, bytes);
    onData(handedBack ? Buffer.from(chunk) : chunk);
    return true; // pausing is ws.pause() → socket.pause(), which stops the handle's reads
  };
  const nextOwnBuffer = (): Uint8Array => {
    let own = ownBuffer as Buffer;
    if (handedBack || released || sink.released()) return own; // nothing of it referenced: from the start
    if (own.length - ownBufferUsed < MIN_READ_BYTES) {
      ownBuffer = own = Buffer.allocUnsafeSlow(OWN_READ_BUFFER_BYTES);
      return own;
    }
    return own.subarray(ownBufferUsed);
  };
  // ws's own 'close' listener gives a paused socket's unread bytes to its Receiver; ours runs
  // first and reads them, so they are parsed here, where the frame boundaries are known.
  const onClose = (): void => {
    if (!handedBack && socket.readableLength > 0) onData(socket.read(socket.readableLength) as Buffer);
  };
  const handBack = (bytes: Buffer): void => {
    handedBack = true;
    socket.off('close', onClose);
    if (ownBuffer === undefined) {
      socket.off('data', onData);
      socket.on('data', wsOnData);
    }
    if (bytes.length > 0) wsOnData.call(socket, ownBuffer === undefined ? bytes : Buffer.from(bytes));
  };
  const reader = new ClientFrameReader(maxPayload, {
    payload: (chunk) => deliver(chunk),
    control: (frame) => wsOnData.call(socket, frame),
    handBack,
  }, unmask);
  socket.off('data', wsOnData);
  socket.on('data', onData);
  socket.prependListener('close', onClose);
  return {
    get active() {
      return !reader.done;
    },
    release() {
      released = true;
      deliver = DROP;
      if (reader.atMessageBoundary) reader.handBackNow();
    },
  };
}
