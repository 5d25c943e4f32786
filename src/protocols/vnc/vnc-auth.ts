/**
 * RFB "VNC Authentication" (security type 2, RFC 6143 §7.2.2): DES-encrypt the server's 16-byte
 * challenge with the password (8 bytes, zero-padded, each byte's bits reversed — a quirk of the
 * original implementation). Single DES is in OpenSSL 3's legacy provider only; 3DES-EDE with the
 * same key three times computes exactly single DES and is available everywhere.
 */
import { createCipheriv } from 'node:crypto';

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}

export function vncAuthResponse(password: string, challenge: Buffer): Buffer {
  if (challenge.length !== 16) throw new Error('VNC auth challenge must be 16 bytes');
  const key = Buffer.alloc(8);
  Buffer.from(password, 'latin1').copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) key[i] = reverseBits(key[i] ?? 0);
  const cipher = createCipheriv('des-ede3-ecb', Buffer.concat([key, key, key]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(challenge), cipher.final()]);
}
