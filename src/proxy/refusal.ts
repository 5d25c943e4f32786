/**
 * Refusing a WebSocket upgrade so that the console page can show why (a close code), at almost no
 * cost to the proxy. Written by hand rather than with ws: a ws connection keeps reading and
 * buffering the peer's frames (up to maxPayload each) until the peer answers the close or ws's
 * 30 s close timeout fires, which let unauthenticated clients hold memory and session slots. Here
 * a refusal is one write — the 101 answer, one close frame (RFC 6455 §5.5.1) and our FIN — on a
 * socket that is never read again and is destroyed within REFUSAL_LINGER_MS.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** How long a refused socket may stay open for the close frame and FIN to reach the browser. */
export const REFUSAL_LINGER_MS = 1000;

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * A close frame: FIN + opcode 8, unmasked (server to client), 2-byte code, reason ≤ 123 bytes;
 * without a code, an empty close frame (RFC 6455 §5.5.1 allows no body). Pure.
 */
export function closeFrame(code: number | undefined, reason: string): Buffer {
  if (code === undefined) return Buffer.from([0x88, 0x00]);
  const text = Buffer.from(reason, 'utf8').subarray(0, 123);
  const frame = Buffer.allocUnsafe(4 + text.length);
  frame[0] = 0x88;
  frame[1] = 2 + text.length;
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  return frame;
}

/** The 101 answer to a valid WebSocket upgrade request (RFC 6455 §4.2.2). Pure. */
export function acceptResponse(key: string, protocol: string | undefined): string {
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
  return 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n${protocol === undefined ? '' : `Sec-WebSocket-Protocol: ${protocol}\r\n`}\r\n`;
}

/**
 * Accept the upgrade only to close it at once with `code`/`reason` (no code: an empty close frame). The caller has checked that
 * the request is a well-formed upgrade (ws's own checks run for accepted upgrades only).
 */
export function refuseUpgrade(req: IncomingMessage, socket: Duplex, protocol: string | undefined, code: number | undefined, reason: string): void {
  socket.pause();
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(Buffer.concat([Buffer.from(acceptResponse(key, protocol), 'latin1'), closeFrame(code, reason)]));
  const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
