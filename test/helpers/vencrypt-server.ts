/**
 * QEMU's side of RFB 3.8 with VeNCrypt X509None, in Node: for the TLS benchmark and for tests that
 * need a VeNCrypt VNC server to do something QEMU cannot be made to do on demand (flood, sink,
 * count). The proxy-facing behaviour is what QEMU's tls-creds-x509 does; real-QEMU behaviour is
 * tested in test/integration/vencrypt.test.ts.
 */
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';

const GREETING = Buffer.from('RFB 003.008\n');
/** 800×600, 32 bpp true colour, name "bench". */
export const SERVER_INIT = Buffer.concat([
  Buffer.from([0x03, 0x20, 0x02, 0x58, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]), Buffer.from([0, 0, 0, 5]), Buffer.from('bench'),
]);
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };

/** Reads exact byte counts from a stream of chunks (the handshakes are strictly ordered). */
export class ByteReader {
  #buf = Buffer.alloc(0);
  #want: { n: number; resolve: (b: Buffer) => void } | undefined;
  readonly push = (d: Buffer): void => {
    this.#buf = Buffer.concat([this.#buf, d]);
    this.#flush();
  };
  read(n: number): Promise<Buffer> {
    return new Promise((resolve) => { this.#want = { n, resolve }; this.#flush(); });
  }
  rest(): Buffer {
    const r = this.#buf;
    this.#buf = Buffer.alloc(0);
    return r;
  }
  #flush(): void {
    if (this.#want && this.#buf.length >= this.#want.n) {
      const { n, resolve } = this.#want;
      this.#want = undefined;
      const out = this.#buf.subarray(0, n);
      this.#buf = this.#buf.subarray(n);
      resolve(out);
    }
  }
}

/**
 * Run the server side of the handshake on an accepted socket, up to and including ServerInit
 * inside TLS. Resolves with the TLS socket (flowing, no 'data' listener) and any bytes the client
 * sent after ClientInit.
 */
export async function acceptVencrypt(s: Socket, secureContext: SecureContext): Promise<{ tls: TLSSocket; early: Buffer }> {
  const plain = new ByteReader();
  s.on('data', plain.push);
  s.write(GREETING);
  await plain.read(12);
  s.write(Buffer.from([1, 19]));
  await plain.read(1);
  s.write(Buffer.from([0, 2]));
  await plain.read(2);
  s.write(Buffer.concat([Buffer.from([0, 1]), u32(260)]));
  await plain.read(4);
  s.off('data', plain.push);
  s.write(Buffer.from([1]));
  const tls = new TLSSocket(s, { isServer: true, secureContext });
  tls.on('error', () => tls.destroy());
  const inner = new ByteReader();
  tls.on('data', inner.push);
  tls.write(u32(0));
  await inner.read(1); // ClientInit
  tls.off('data', inner.push);
  tls.write(SERVER_INIT);
  return { tls, early: inner.rest() };
}

/** Browser side of the proxy's RFB security handshake (choosing None), up to ServerInit; returns bytes after it. */
export async function rfbClientHandshake(conn: { onData(fn: (d: Buffer) => void): void; send(d: Buffer): void }): Promise<Buffer> {
  const r = new ByteReader();
  conn.onData(r.push);
  await r.read(12);
  conn.send(GREETING);
  await r.read(2);
  conn.send(Buffer.from([1]));
  await r.read(4);
  conn.send(Buffer.from([1]));
  const init = await r.read(24);
  await r.read(init.readUInt32BE(20));
  return r.rest();
}
