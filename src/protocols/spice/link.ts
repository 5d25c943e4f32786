/**
 * The SPICE link on the proxy's side (spice-protocol `SpiceLinkHeader`, `SpiceLinkMess`,
 * `SpiceLinkReply`; CONSOLE-FACTS §3.3): the browser's link message goes to the server as it is,
 * the server's reply (with its RSA public key) back to the browser, then the proxy replaces the
 * browser's ticket with its own — RSA-OAEP (SHA-1) of the real password — so a SPICE password never
 * reaches the browser. Written by hand: no maintained library speaks the SPICE link. Byte-fed and
 * resumable, like the RFB handshake: each step says how many bytes it still needs. Pure.
 */
import { constants, createPublicKey, publicEncrypt } from 'node:crypto';
import { PortholeError } from '../../errors.js';

export const SPICE_MAGIC = 0x51444552; // 'REDQ' little-endian
const HEADER_BYTES = 16;
/** Link messages are a few dozen bytes; anything near this is hostile. */
const MAX_LINK_BYTES = 4096;
const PUBKEY_BYTES = 162;
const TICKET_BYTES = 128;
const AUTH_SELECTION_CAP = 1 << 0; // SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION
const AUTH_SPICE = 1; // SPICE_COMMON_CAP_AUTH_SPICE as the auth mechanism

/** spice-protocol's link errors (`enums.js` of spice-html5). */
export const LINK_ERRORS: Readonly<Record<number, string>> = {
  0: 'OK', 1: 'ERROR', 2: 'INVALID_MAGIC', 3: 'INVALID_DATA', 4: 'VERSION_MISMATCH', 5: 'NEED_SECURED',
  6: 'NEED_UNSECURED', 7: 'PERMISSION_DENIED', 8: 'BAD_CONNECTION_ID', 9: 'CHANNEL_NOT_AVAILABLE',
};

/** A whole link message (header + body) if `buf` holds one; else how many bytes are missing. @throws PortholeError */
export function readLinkMessage(buf: Buffer, from: 'browser' | 'server'): { message: Buffer } | { need: number } {
  if (buf.length < HEADER_BYTES) return { need: HEADER_BYTES - buf.length };
  if (buf.readUInt32LE(0) !== SPICE_MAGIC) throw new PortholeError('PH_ERR_SPICE_LINK_FAILED', `the ${from} did not start a SPICE link (no REDQ magic)`);
  const size = buf.readUInt32LE(12);
  if (size > MAX_LINK_BYTES) throw new PortholeError('PH_ERR_SPICE_LINK_FAILED', `the ${from}'s SPICE link message claims ${size} bytes (more than ${MAX_LINK_BYTES})`);
  const total = HEADER_BYTES + size;
  return buf.length < total ? { need: total - buf.length } : { message: buf.subarray(0, total) };
}

/** What the proxy needs from the browser's `SpiceLinkMess`. */
export interface ClientLink {
  readonly channelType: number;
  readonly connectionId: number;
  /** The client offered AUTH_SELECTION: its ticket is preceded by a u32 auth mechanism. */
  readonly authSelection: boolean;
}

export function parseClientLink(message: Buffer): ClientLink {
  const body = message.subarray(HEADER_BYTES);
  if (body.length < 18) throw new PortholeError('PH_ERR_SPICE_LINK_FAILED', 'the browser\'s SPICE link message is too short');
  const numCommonCaps = body.readUInt32LE(6);
  const capsOffset = body.readUInt32LE(14);
  const caps = numCommonCaps > 0 && capsOffset + 4 <= body.length ? body.readUInt32LE(capsOffset) : 0;
  return { connectionId: body.readUInt32LE(0), channelType: body.readUInt8(4), authSelection: (caps & AUTH_SELECTION_CAP) !== 0 };
}

/** The server's `SpiceLinkReply`: its link error and RSA public key (DER SubjectPublicKeyInfo). */
export function parseServerReply(message: Buffer): { error: number; publicKey: Buffer } {
  const body = message.subarray(HEADER_BYTES);
  if (body.length < 4 + PUBKEY_BYTES) {
    const error = body.length >= 4 ? body.readUInt32LE(0) : 1;
    return { error: error === 0 ? 1 : error, publicKey: Buffer.alloc(0) };
  }
  return { error: body.readUInt32LE(0), publicKey: Buffer.from(body.subarray(4, 4 + PUBKEY_BYTES)) };
}

/** Bytes of the browser's ticket to read (and discard): the auth mechanism, when selected, and 128 bytes. */
export function clientTicketBytes(link: ClientLink): number {
  return (link.authSelection ? 4 : 0) + TICKET_BYTES;
}

/** @throws PortholeError when the browser asks for another mechanism (SASL) than the SPICE ticket. */
export function checkClientTicket(link: ClientLink, ticket: Buffer): void {
  if (link.authSelection && ticket.readUInt32LE(0) !== AUTH_SPICE) {
    throw new PortholeError('PH_ERR_SPICE_LINK_FAILED', `the browser asked for SPICE auth mechanism ${ticket.readUInt32LE(0)}; only the ticket (1) is supported`);
  }
}

/**
 * The proxy's own ticket: the auth mechanism (when the client selected it) and RSA-OAEP(SHA-1,
 * MGF1-SHA-1) of `password + "\0"`. An empty password is right for `disable-ticketing` (the
 * server still wants a valid ciphertext).
 */
export function proxyTicket(link: ClientLink, publicKey: Buffer, password: string | undefined): Buffer {
  const encrypted = publicEncrypt(
    { key: createPublicKey({ key: publicKey, format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    Buffer.from(`${password ?? ''}\0`, 'utf8'),
  );
  if (!link.authSelection) return encrypted;
  const mechanism = Buffer.alloc(4);
  mechanism.writeUInt32LE(AUTH_SPICE);
  return Buffer.concat([mechanism, encrypted]);
}

/** The link result's reason. Pure. */
export function linkResultError(code: number, channelType: number): PortholeError {
  const name = LINK_ERRORS[code] ?? `error ${code}`;
  if (code === 7) return new PortholeError('PH_ERR_SPICE_AUTH_FAILED', `the SPICE server answered PERMISSION_DENIED to the proxy's ticket (channel type ${channelType}): the console password the driver gave is wrong`);
  return new PortholeError('PH_ERR_SPICE_LINK_FAILED', `the SPICE server refused channel type ${channelType}: ${name}${code === 5 ? ' (the channel is secured: QEMU serves it only on tls-port)' : ''}`);
}
