/**
 * A WebSocket client for the relay benchmark that costs as little as a browser's native one, so
 * the proxies are measured, not the client: on a 2-core machine the `ws` package's client (a
 * 64 KiB copy to mask every message it sends, a copy to reassemble every frame it receives) costs
 * about as much CPU as the proxy it measures, and both proxies then come out at the client's speed.
 *
 * - Sends binary frames masked with a random key per connection, as a browser does (its key is
 *   random per frame; the proxy's work is the same). Not the all-zero key: legal, but `ws` skips
 *   unmasking for it, which no browser's traffic would let a proxy do. A large payload sent again
 *   (the bulk rows send one buffer over and over) is masked once and its masked copy reused, so
 *   the client pays nothing per message; header and payload go in one writev.
 * - Receives into one reusable 256 KiB buffer (plain sockets), parsing frame headers across reads
 *   and passing payload slices on, never joining; a slice is valid only during the callback.
 * Only what the benchmarks need: binary data frames, pings answered, close; no fragmentation, no extensions.
 */
import { randomBytes } from 'node:crypto';
import { connect, type OnReadOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { Conn } from './common.js';

/** An empty masked pong: what a keepalive needs (the proxy checks that one arrives, not its payload). */
const PONG = Buffer.from([0x8a, 0x80, 0, 0, 0, 0]);

/** The header of a masked binary frame with `key`. */
function frameHeader(length: number, key: Buffer): Buffer {
  if (length < 126) return Buffer.concat([Buffer.from([0x82, 0x80 | length]), key]);
  if (length < 65536) {
    const h = Buffer.alloc(8);
    h[0] = 0x82;
    h[1] = 0x80 | 126;
    h.writeUInt16BE(length, 2);
    key.copy(h, 4);
    return h;
  }
  const h = Buffer.alloc(14);
  h[0] = 0x82;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  key.copy(h, 10);
  return h;
}

/** A random masking key that is not all zeros. */
function maskKey(): Buffer {
  for (;;) {
    const key = randomBytes(4);
    if (key.readUInt32BE(0) !== 0) return key;
  }
}

/** `payload` masked with `key` (a new buffer). */
function masked(payload: Buffer, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = (payload[i] as number) ^ (key[i & 3] as number);
  return out;
}

/** The plain socket's read buffer (reused for every read) once the connection streams; FIRST_READ_BUFFER_BYTES before. */
export const READ_BUFFER_BYTES = 256 * 1024;
const FIRST_READ_BUFFER_BYTES = 4096;

/**
 * `onread` options for net.connect: every read into one reusable buffer, `onChunk` gets a slice
 * valid during the call. The buffer is small until a read fills it (the connection streams), so a
 * connection that only sets up (the setups row) costs no 256 KiB allocation.
 */
export function reusableReads(onChunk: (d: Buffer) => void): OnReadOpts {
  let readBuffer = Buffer.allocUnsafe(FIRST_READ_BUFFER_BYTES);
  return {
    buffer: () => readBuffer,
    callback: (n, buf) => {
      onChunk((buf as Buffer).subarray(0, n));
      if (n === buf.length && readBuffer.length < READ_BUFFER_BYTES) readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
      return true;
    },
  };
}

/** Payloads at least this large are masked once per connection and the masked copy reused. */
const REUSED_PAYLOAD_BYTES = 1024;

export interface LeanTls {
  /** For wss:// URLs: CA, and a session to resume. */
  readonly options: ConnectionOptions;
  /** Sessions (TLS 1.3 tickets) the server hands out, for the next connection to resume. */
  readonly onSession?: (session: Buffer) => void;
  /** Whether the handshake resumed a session. */
  readonly onSecure?: (resumed: boolean) => void;
}

export async function leanConn(url: string, origin: string, tls?: LeanTls): Promise<Conn> {
  const u = new URL(url);
  let onChunk: (d: Buffer) => void = () => {};
  // Plain sockets read into one reusable buffer (`onread`), as a browser's network stack reads
  // large chunks natively; tls.connect has no `onread`, so wss reads 'data' events.
  const s: Socket = u.protocol === 'wss:'
    ? tlsConnect({ host: u.hostname, port: Number(u.port), ...tls?.options })
    : connect({
      host: u.hostname, port: Number(u.port), noDelay: true,
      onread: reusableReads((d) => onChunk(d)),
    });
  if (u.protocol === 'wss:') s.on('data', (d: Buffer) => onChunk(d));
  if (tls?.onSession !== undefined) s.on('session', tls.onSession);
  await new Promise<void>((resolve, reject) => { s.once(u.protocol === 'wss:' ? 'secureConnect' : 'connect', resolve); s.once('error', reject); });
  if (tls?.onSecure !== undefined) tls.onSecure((s as TLSSocket).isSessionReused());
  s.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nOrigin: ${origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n`);
  let sink: ((d: Buffer) => void) | undefined;
  let early: Buffer[] = [];
  const deliver = (d: Buffer) => { if (sink) sink(d); else early.push(Buffer.from(d)); }; // a copy: the read buffer is reused
  // Frame parser state: a header split across reads (at most 10 bytes: server frames are unmasked), payload left in this frame.
  let header = Buffer.alloc(0);
  let left = 0;
  let opcode = 0;
  let upgraded = false;
  let http = Buffer.alloc(0);
  const onFrames = (d: Buffer) => {
    let at = 0;
    while (at < d.length) {
      if (left > 0) {
        const n = Math.min(left, d.length - at);
        if (opcode === 2 || opcode === 0) deliver(d.subarray(at, at + n));
        left -= n;
        at += n;
        continue;
      }
      const taken = Math.min(d.length - at, 10 - header.length);
      const cand = header.length === 0 ? d.subarray(at, at + taken) : Buffer.concat([header, d.subarray(at, at + taken)]);
      const len7 = cand.length < 2 ? -1 : (cand[1] as number) & 0x7f;
      const need = len7 < 0 ? 2 : 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0);
      if (cand.length < need) {
        header = Buffer.from(cand); // the rest of this read was all header
        return;
      }
      opcode = (cand[0] as number) & 0x0f;
      left = len7 === 126 ? cand.readUInt16BE(2) : len7 === 127 ? Number(cand.readBigUInt64BE(2)) : len7;
      at += need - header.length;
      header = Buffer.alloc(0);
      if (opcode === 8) {
        s.destroy();
        return;
      }
      // A ping (the proxy's keepalive) gets a pong, or the console is dropped as a dead browser.
      if (opcode === 9) s.write(PONG);
    }
  };
  onChunk = (d: Buffer) => {
    if (upgraded) return onFrames(d);
    http = Buffer.concat([http, d]);
    const end = http.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    if (!http.subarray(0, 12).toString().includes('101')) { s.destroy(); return undefined; }
    upgraded = true;
    const rest = http.subarray(end + 4);
    http = Buffer.alloc(0);
    opened();
    if (rest.length > 0) onFrames(rest);
    return undefined;
  };
  let opened: () => void = () => {};
  await new Promise<void>((resolve, reject) => {
    opened = resolve;
    s.once('close', () => reject(new Error('the proxy closed the connection before the upgrade')));
    s.once('error', reject);
  });
  s.on('error', () => s.destroy());
  const key = maskKey();
  const maskedOnce = new WeakMap<Buffer, Buffer>();
  const onWire = (d: Buffer): Buffer => {
    if (d.length < REUSED_PAYLOAD_BYTES) return masked(d, key);
    let m = maskedOnce.get(d);
    if (m === undefined) maskedOnce.set(d, (m = masked(d, key)));
    return m;
  };
  return {
    onData: (fn) => { sink = fn; for (const d of early) fn(d); early = []; },
    send: (d, written) => {
      s.cork();
      s.write(frameHeader(d.length, key));
      s.write(onWire(d), written === undefined ? undefined : () => written());
      s.uncork();
    },
    pauseReading: () => s.pause(),
    buffered: () => s.writableLength,
    done: new Promise<void>((r) => s.once('close', () => r())),
    destroy: () => s.destroy(),
  };
}
