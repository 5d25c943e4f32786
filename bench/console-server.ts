/**
 * The stand-in VNC server of the relay and scale benchmarks: like QEMU it sends the RFB 3.8
 * greeting first, then the client's first message chooses what it does: `F` flood writes of
 * `chunkBytes`, `C` + u32 count that many bytes and answer one byte, `E` echo, anything else hold.
 */
import { createServer, type Server, type Socket } from 'node:net';

export const GREETING = Buffer.from('RFB 003.008\n');

/** The stand-in VNC server: greeting, then the first byte from the client chooses what it does. */
export function consoleServer(s: Socket, chunkBytes: number): void {
  s.setNoDelay(true);
  s.on('error', () => s.destroy());
  s.write(GREETING);
  const chunk = Buffer.alloc(chunkBytes, 0x42);
  let mode: 'wait' | 'count' | 'echo' | 'hold' = 'wait';
  let header = Buffer.alloc(0);
  let want = 0;
  let got = 0;
  const count = (n: number) => {
    got += n;
    if (got >= want && want > 0) {
      want = 0;
      s.write(Buffer.from([1]));
    }
  };
  s.on('data', (d: Buffer) => {
    if (mode === 'count') return count(d.length);
    if (mode === 'echo') return void s.write(d);
    if (mode === 'hold') return undefined;
    header = Buffer.concat([header, d]);
    const command = String.fromCharCode(header[0] as number);
    if (command === 'F') {
      mode = 'hold';
      const pump = () => { while (!s.destroyed) if (!s.write(chunk)) { s.once('drain', pump); return; } };
      pump();
    } else if (command === 'C') {
      if (header.length < 5) return undefined;
      mode = 'count';
      want = header.readUInt32BE(1);
      count(header.length - 5);
    } else if (command === 'E') {
      mode = 'echo';
      if (header.length > 1) s.write(header.subarray(1));
    } else mode = 'hold';
    return undefined;
  });
}

export async function listen(handler: (s: Socket) => void): Promise<Server> {
  const server = createServer({ noDelay: true }, handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

