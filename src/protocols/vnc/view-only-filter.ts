/**
 * View-only VNC consoles, enforced by the proxy rather than the page: after the RFB handshake the
 * browser's bytes are parsed into client messages (RFC 6143 §7.5 and the extensions noVNC and QEMU
 * use) and only what a viewer needs reaches the VNC server. Input (KeyEvent, PointerEvent, QEMU's
 * extended key event), the clipboard (ClientCutText, extended clipboard included), power actions
 * (XVP) and desktop resizes are dropped; an unknown or malformed message closes the console
 * (PH_ERR_RFB_CLIENT_MESSAGE) instead of being passed blindly. ClientInit's shared flag is forced
 * to 1, so a viewer cannot disconnect the console's other users.
 *
 * Hand-written: no library parses the client side of RFB for a proxy. Byte-fed and resumable:
 * messages may span WebSocket frames. Passed messages are forwarded as slices of the frame they
 * came in (or of a small carry buffer when split); dropped payloads are skipped, never buffered,
 * so a 2 GiB ClientCutText costs nothing. Only view-only sessions pay for it.
 */
import { PortholeError } from '../../errors.js';

type Verdict = 'pass' | 'drop';

/** Client messages by type: fixed length, or a function of the header (undefined: need more bytes). */
interface MessageSpec {
  readonly name: string;
  readonly verdict: Verdict;
  /** Bytes needed to know the length. */
  readonly header: number;
  readonly length: (b: Buffer, at: number) => number | PortholeError;
}

const fixed = (name: string, verdict: Verdict, n: number): MessageSpec => ({ name, verdict, header: 1, length: () => n });

/** Longest message kept whole (SetEncodings with 65535 encodings is 262 144 bytes). */
const MAX_PASSED_MESSAGE = 4 + 4 * 0xffff;

export const CLIENT_MESSAGES: ReadonlyMap<number, MessageSpec> = new Map<number, MessageSpec>([
  [0, fixed('SetPixelFormat', 'pass', 20)],
  [2, { name: 'SetEncodings', verdict: 'pass', header: 4, length: (b, at) => 4 + 4 * b.readUInt16BE(at + 2) }],
  [3, fixed('FramebufferUpdateRequest', 'pass', 10)],
  [4, fixed('KeyEvent', 'drop', 8)],
  [5, fixed('PointerEvent', 'drop', 6)],
  // Length is signed: negative is the extended clipboard (its absolute value is the payload length).
  [6, { name: 'ClientCutText', verdict: 'drop', header: 8, length: (b, at) => 8 + Math.abs(b.readInt32BE(at + 4)) }],
  [150, fixed('EnableContinuousUpdates', 'pass', 10)],
  [248, { name: 'ClientFence', verdict: 'pass', header: 9, length: (b, at) => {
    const n = b.readUInt8(at + 8);
    return n > 64 ? new PortholeError('PH_ERR_RFB_CLIENT_MESSAGE', `ClientFence with ${n} bytes of payload (at most 64)`) : 9 + n;
  } }],
  [250, fixed('XVP (power action)', 'drop', 4)],
  [251, { name: 'SetDesktopSize', verdict: 'drop', header: 7, length: (b, at) => 8 + 16 * b.readUInt8(at + 6) }],
]);

/** QEMU's client message (type 255) by sub-type. */
function qemuMessage(b: Buffer, at: number, available: number): { spec: MessageSpec } | 'more' | PortholeError {
  if (available < 2) return 'more';
  const sub = b.readUInt8(at + 1);
  if (sub === 0) return { spec: fixed('QEMU extended KeyEvent', 'drop', 12) };
  if (sub === 1) {
    if (available < 4) return 'more';
    // QEMU audio: operation 2 (set format) carries 6 more bytes; 0/1 (enable/disable) none.
    return { spec: fixed('QEMU audio', 'pass', b.readUInt16BE(at + 2) === 2 ? 10 : 4) };
  }
  return new PortholeError('PH_ERR_RFB_CLIENT_MESSAGE', `unknown QEMU client message sub-type ${sub}`);
}

export class ViewOnlyFilter {
  /** Bytes of a message split across frames, not yet complete. */
  #carry: Buffer | undefined;
  /** Bytes of a dropped message still to skip. */
  #skip = 0;
  #clientInitSeen: boolean;
  /** Messages dropped, by name (for the log line at the end). */
  readonly dropped = new Map<string, number>();

  /** @param clientInitSeen false when the browser's ClientInit is still to come through this filter. */
  constructor(clientInitSeen = false) {
    this.#clientInitSeen = clientInitSeen;
  }

  /**
   * The parts of `chunk` to forward to the VNC server, in order.
   * @returns the slices, or the error to close the console with.
   */
  push(chunk: Buffer): Buffer[] | PortholeError {
    const out: Buffer[] = [];
    let at = 0;
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, chunk.length);
      this.#skip -= n;
      at = n;
    }
    let b = chunk;
    if (this.#carry !== undefined && at < chunk.length) {
      b = Buffer.concat([this.#carry, chunk.subarray(at)]);
      this.#carry = undefined;
      at = 0;
    }
    if (!this.#clientInitSeen && at < b.length) {
      this.#clientInitSeen = true;
      out.push(b[at] === 1 ? b.subarray(at, at + 1) : Buffer.from([1]));
      at++;
    }
    while (at < b.length) {
      const type = b.readUInt8(at);
      const available = b.length - at;
      let spec: MessageSpec | undefined;
      if (type === 255) {
        const q = qemuMessage(b, at, available);
        if (q instanceof PortholeError) return q;
        if (q === 'more') break;
        spec = q.spec;
      } else {
        spec = CLIENT_MESSAGES.get(type);
        if (spec === undefined) return new PortholeError('PH_ERR_RFB_CLIENT_MESSAGE', `unknown RFB client message type ${type}`);
      }
      if (available < spec.header) break;
      const length = spec.length(b, at);
      if (length instanceof PortholeError) return length;
      if (spec.verdict === 'drop') {
        this.dropped.set(spec.name, (this.dropped.get(spec.name) ?? 0) + 1);
        const here = Math.min(length, available);
        this.#skip = length - here;
        at += here;
        continue;
      }
      if (length > MAX_PASSED_MESSAGE) return new PortholeError('PH_ERR_RFB_CLIENT_MESSAGE', `${spec.name} of ${length} bytes`);
      if (available < length) break;
      out.push(b.subarray(at, at + length));
      at += length;
    }
    if (at < b.length) this.#carry = Buffer.from(b.subarray(at)); // a copy: `b` may be reused by the caller
    return out;
  }
}
