/**
 * The RFB security proxy (as Nova's RFBSecurityProxy): Porthole authenticates to the VNC server
 * with the strongest scheme both allow, and offers the browser only "None" — the console token
 * already authenticated it, and passwords never reach the browser.
 *
 * Written here because no maintained library speaks the server side of RFB security for Node.
 * Both halves are resumable byte-fed state machines (noVNC's `_negotiate*` style): feed() takes a
 * chunk and returns what to send and whether the handshake is done, or "need more bytes". Every
 * length field is bounded; a hostile peer gets PH_ERR_RFB_HANDSHAKE, never a hang or a huge buffer.
 * RFC 6143 §7.1–7.2.
 */
import { PortholeError } from '../../errors.js';
import { ByteQueue } from './byte-queue.js';
import { vncAuthResponse } from './vnc-auth.js';

export type AuthScheme = 'none' | 'vnc' | 'vencrypt';

export const SECURITY_TYPES: Readonly<Record<AuthScheme, number>> = { none: 1, vnc: 2, vencrypt: 19 };
const SECURITY_NAMES: Readonly<Record<number, string>> = { 0: 'Invalid', 1: 'None', 2: 'VNCAuth', 5: 'RA2', 6: 'RA2ne', 16: 'Tight', 18: 'TLS', 19: 'VeNCrypt', 22: 'XVP', 30: 'AppleARD' };

/**
 * VeNCrypt sub-types Porthole accepts: X.509-verified TLS only (what QEMU offers with
 * tls-creds-x509). The anonymous-TLS ones (257–259) are refused: without a certificate the proxy
 * cannot tell the VNC server from a man in the middle.
 */
export const VENCRYPT_X509_NONE = 260;
export const VENCRYPT_X509_VNC = 261;
const VENCRYPT_NAMES: Readonly<Record<number, string>> = {
  256: 'Plain', 257: 'TLSNone', 258: 'TLSVnc', 259: 'TLSPlain', 260: 'X509None', 261: 'X509Vnc', 262: 'X509Plain', 263: 'TLSSASL', 264: 'X509SASL',
};
const VERSION_38 = Buffer.from('RFB 003.008\n', 'latin1');
const MAX_REASON_BYTES = 4096;
const MAX_HANDSHAKE_BYTES = 8192;

export interface StepResult {
  /** Bytes to write to the peer, in order. */
  readonly send: Buffer[];
  readonly done: boolean;
  /** Bytes received after the handshake ended (belong to the relay). */
  readonly rest?: Buffer;
  /**
   * VeNCrypt: after `send`, start TLS on the connection (as a client) and feed the decrypted bytes
   * from then on. Nothing may arrive in clear text before the TLS handshake.
   */
  readonly startTls?: boolean;
}

function fail(message: string): never {
  throw new PortholeError('PH_ERR_RFB_HANDSHAKE', message);
}

export function describeSecurityTypes(types: readonly number[]): string {
  return types.map((t) => `${t} ${SECURITY_NAMES[t] ?? 'unknown'}`).join(', ');
}

export function describeVencryptSubtypes(types: readonly number[]): string {
  return types.map((t) => `${t} ${VENCRYPT_NAMES[t] ?? 'unknown'}`).join(', ');
}

type ServerState =
  | 'version' | 'types-count' | 'types'
  | 'vencrypt-version' | 'vencrypt-ack' | 'vencrypt-subtypes-count' | 'vencrypt-subtypes' | 'vencrypt-accept' | 'tls'
  | 'challenge' | 'result' | 'reason-length' | 'reason' | 'done';

/** Porthole as an RFB 3.8 client of the VNC server. */
export class ServerHandshake {
  #state: ServerState = 'version';
  readonly #q = new ByteQueue(MAX_HANDSHAKE_BYTES);
  readonly #allowed: readonly AuthScheme[];
  readonly #password: string | undefined;
  #count = 0;
  #reasonLength = 0;
  #failureReason = '';
  chosen: AuthScheme | undefined;
  /** The VeNCrypt sub-type, when {@link chosen} is vencrypt. */
  vencryptSubtype: number | undefined;

  get #usedPassword(): boolean {
    return this.chosen === 'vnc' || this.vencryptSubtype === VENCRYPT_X509_VNC;
  }

  constructor(allowed: readonly AuthScheme[], password: string | undefined) {
    this.#allowed = allowed;
    this.#password = password;
  }

  feed(chunk: Buffer): StepResult {
    this.#q.push(chunk);
    const send: Buffer[] = [];
    for (;;) {
      switch (this.#state) {
        case 'version': {
          if (!this.#q.has(12)) return { send, done: false };
          const v = this.#q.take(12).toString('latin1');
          const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(v);
          if (!m) fail(`the VNC server did not greet with an RFB version (got ${JSON.stringify(v.slice(0, 12))})`);
          if (Number(m[1]) < 3 || (Number(m[1]) === 3 && Number(m[2]) < 8)) fail(`the VNC server speaks ${v.trim()}; 3.8 is required`);
          send.push(VERSION_38);
          this.#state = 'types-count';
          break;
        }
        case 'types-count':
          if (!this.#q.has(1)) return { send, done: false };
          this.#count = this.#q.take(1)[0] ?? 0;
          this.#state = this.#count === 0 ? 'reason-length' : 'types';
          this.#failureReason = 'the VNC server refused the connection';
          break;
        case 'types': {
          if (!this.#q.has(this.#count)) return { send, done: false };
          const offered = [...this.#q.take(this.#count)];
          const chosen = this.#allowed.find((s) => offered.includes(SECURITY_TYPES[s]) && (s !== 'vnc' || this.#password !== undefined));
          if (chosen === undefined) {
            throw new PortholeError('PH_ERR_RFB_NO_COMMON_AUTH',
              `the VNC server offers security types [${describeSecurityTypes(offered)}]; allowed: ${this.#allowed.join(', ')}` +
              (offered.includes(2) && this.#allowed.includes('vnc') && this.#password === undefined ? ' (no VNC password is known for this instance)' : ''));
          }
          this.chosen = chosen;
          send.push(Buffer.from([SECURITY_TYPES[chosen]]));
          this.#state = chosen === 'vnc' ? 'challenge' : chosen === 'vencrypt' ? 'vencrypt-version' : 'result';
          break;
        }
        // VeNCrypt (https://github.com/rfbproto/rfbproto, "VeNCrypt"): version 0.2, sub-type list, then TLS.
        case 'vencrypt-version': {
          if (!this.#q.has(2)) return { send, done: false };
          const [major, minor] = this.#q.take(2);
          if (major !== 0 || (minor ?? 0) < 2) fail(`the VNC server speaks VeNCrypt ${major ?? '?'}.${minor ?? '?'}; 0.2 is required`);
          send.push(Buffer.from([0, 2]));
          this.#state = 'vencrypt-ack';
          break;
        }
        case 'vencrypt-ack':
          if (!this.#q.has(1)) return { send, done: false };
          if (this.#q.take(1)[0] !== 0) fail('the VNC server refused VeNCrypt version 0.2');
          this.#state = 'vencrypt-subtypes-count';
          break;
        case 'vencrypt-subtypes-count':
          if (!this.#q.has(1)) return { send, done: false };
          this.#count = this.#q.take(1)[0] ?? 0;
          if (this.#count === 0) fail('the VNC server offers no VeNCrypt sub-types');
          this.#state = 'vencrypt-subtypes';
          break;
        case 'vencrypt-subtypes': {
          if (!this.#q.has(4 * this.#count)) return { send, done: false };
          const raw = this.#q.take(4 * this.#count);
          const offered = Array.from({ length: this.#count }, (_, i) => raw.readUInt32BE(4 * i));
          // X509Vnc adds the VNC password inside the TLS tunnel: preferred when the password is known.
          const subtype = offered.includes(VENCRYPT_X509_VNC) && this.#password !== undefined ? VENCRYPT_X509_VNC
            : offered.includes(VENCRYPT_X509_NONE) ? VENCRYPT_X509_NONE : undefined;
          if (subtype === undefined) {
            throw new PortholeError('PH_ERR_RFB_NO_COMMON_AUTH',
              `the VNC server offers VeNCrypt sub-types [${describeVencryptSubtypes(offered)}]; Porthole accepts 260 X509None and 261 X509Vnc` +
              (offered.includes(VENCRYPT_X509_VNC) ? ' (no VNC password is known for this instance)' : ''));
          }
          this.vencryptSubtype = subtype;
          const choice = Buffer.alloc(4);
          choice.writeUInt32BE(subtype, 0);
          send.push(choice);
          this.#state = 'vencrypt-accept';
          break;
        }
        case 'vencrypt-accept':
          if (!this.#q.has(1)) return { send, done: false };
          if (this.#q.take(1)[0] !== 1) fail(`the VNC server rejected VeNCrypt sub-type ${describeVencryptSubtypes([this.vencryptSubtype ?? 0])}`);
          if (this.#q.length > 0) fail('the VNC server sent clear-text bytes where the TLS handshake should start');
          this.#state = 'tls';
          return { send, done: false, startTls: true };
        case 'tls':
          // Everything from here arrives decrypted; the caller feeds it after the TLS handshake.
          this.#state = this.vencryptSubtype === VENCRYPT_X509_VNC ? 'challenge' : 'result';
          break;
        case 'challenge':
          if (!this.#q.has(16)) return { send, done: false };
          send.push(vncAuthResponse(this.#password ?? '', this.#q.take(16)));
          this.#state = 'result';
          break;
        case 'result': {
          if (!this.#q.has(4)) return { send, done: false };
          const result = this.#q.take(4).readUInt32BE(0);
          if (result === 0) {
            this.#state = 'done';
            const rest = this.#q.rest();
            return rest.length > 0 ? { send, done: true, rest } : { send, done: true };
          }
          this.#failureReason = this.#usedPassword ? 'the VNC server rejected the password' : 'the VNC server rejected the connection';
          this.#state = 'reason-length';
          break;
        }
        case 'reason-length':
          if (!this.#q.has(4)) return { send, done: false };
          this.#reasonLength = this.#q.take(4).readUInt32BE(0);
          if (this.#reasonLength > MAX_REASON_BYTES) fail(`${this.#failureReason} (reason length ${this.#reasonLength} exceeds ${MAX_REASON_BYTES})`);
          this.#state = 'reason';
          break;
        case 'reason': {
          if (!this.#q.has(this.#reasonLength)) return { send, done: false };
          const reason = this.#q.take(this.#reasonLength).toString('utf8').replace(/[^\x20-\x7e]/g, '?');
          throw new PortholeError(this.#usedPassword ? 'PH_ERR_RFB_AUTH_FAILED' : 'PH_ERR_RFB_HANDSHAKE', `${this.#failureReason}: ${reason}`);
        }
        case 'done':
          return { send, done: true };
      }
    }
  }
}

type ClientState = 'version' | 'choice' | 'done';

/** Porthole as an RFB 3.8 server towards the browser, offering only None. */
export class ClientHandshake {
  #state: ClientState = 'version';
  readonly #q = new ByteQueue(MAX_HANDSHAKE_BYTES);

  /** What to send first (the server greeting). */
  start(): Buffer[] {
    return [VERSION_38];
  }

  feed(chunk: Buffer): StepResult {
    this.#q.push(chunk);
    const send: Buffer[] = [];
    for (;;) {
      switch (this.#state) {
        case 'version': {
          if (!this.#q.has(12)) return { send, done: false };
          const v = this.#q.take(12).toString('latin1');
          if (!/^RFB 003\.00[78]\n$/.test(v)) fail(`the browser answered with an unsupported RFB version ${JSON.stringify(v)}`);
          send.push(Buffer.from([1, SECURITY_TYPES.none]));
          this.#state = 'choice';
          break;
        }
        case 'choice': {
          if (!this.#q.has(1)) return { send, done: false };
          const choice = this.#q.take(1)[0];
          if (choice !== SECURITY_TYPES.none) fail(`the browser chose security type ${choice ?? '?'}, only 1 (None) was offered`);
          send.push(Buffer.from([0, 0, 0, 0])); // SecurityResult OK
          this.#state = 'done';
          const rest = this.#q.rest();
          return rest.length > 0 ? { send, done: true, rest } : { send, done: true };
        }
        case 'done':
          return { send, done: true };
      }
    }
  }
}
