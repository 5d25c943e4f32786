/**
 * `[console] max_bandwidth`: a flooding console server through a 1 MiB/s cap delivers 1 MiB/s
 * (±20%) to the viewer, and the server could write only what the cap let through plus socket
 * buffers (the proxy paused reading; it did not read ahead into memory). The viewer's uploads are
 * shaped the same way. Transparent relay to a stand-in server that floods after the RFB greeting.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const MiB = 1024 * 1024;
const CAP = MiB;
const SECONDS = 4;

describe('bandwidth cap', () => {
  let server: Server;
  let gw: TestGateway;
  const sockets = new Set<Socket>();
  /** What the stand-in managed to hand to the kernel, and what it received. */
  let written = 0;
  let received = 0;
  let mode: 'flood' | 'sink' = 'flood';

  before(async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    server = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      s.on('data', (d: Buffer) => { received += d.length; });
      s.write('RFB 003.008\n');
      if (mode === 'sink') return;
      const pump = () => {
        while (!s.destroyed) {
          written += chunk.length;
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    gw = await startTestGateway({ builtin: [{ name: 'flood', host: '127.0.0.1', port, protocol: 'vnc' }], ini: `[console]\nmax_bandwidth = 1M\n` });
  });

  after(async () => {
    await gw?.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const open = async () => {
    const minted = await gw.mint('flood');
    const ws = new WebSocket(`${gw.wsUrl}?token=${minted.body.token as string}`, ['binary'], { origin: gw.proxyUrl, perMessageDeflate: false });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return ws;
  };

  test('server → viewer: 1 MiB/s ± 20% from a flooding server, and the proxy read only what it sent on', async (t) => {
    mode = 'flood';
    written = 0;
    const ws = await open();
    let got = 0;
    ws.on('message', (d: Buffer) => { got += d.length; });
    await new Promise((r) => setTimeout(r, 500)); // past the start-up burst
    const start = { got, at: performance.now() };
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const rate = (got - start.got) / ((performance.now() - start.at) / 1000);
    const held = written - got;
    ws.close();
    t.diagnostic(`down: ${(rate / MiB).toFixed(3)} MiB/s, server ahead by ${(held / MiB).toFixed(2)} MiB`);
    assert.ok(rate > 0.8 * CAP && rate < 1.2 * CAP, `delivered ${(rate / MiB).toFixed(3)} MiB/s through a 1 MiB/s cap`);
    // Without pausing, a fast reader would get the flood at full speed (hundreds of MB/s here).
    assert.ok(held < 16 * MiB, `the server could write only ${(held / MiB).toFixed(1)} MiB more than the viewer got (socket buffers)`);
  });

  test('viewer → server: uploads shaped to 1 MiB/s ± 20% by pausing the WebSocket, nothing dropped', async (t) => {
    mode = 'sink';
    received = 0;
    const ws = await open();
    const chunk = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    let sending = true;
    const pump = () => {
      while (sending && ws.readyState === ws.OPEN && ws.bufferedAmount < 4 * MiB) {
        ws.send(chunk);
        sent += chunk.length;
      }
      if (sending) setTimeout(pump, 5);
    };
    pump();
    await new Promise((r) => setTimeout(r, 500));
    const start = { received, at: performance.now() };
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const rate = (received - start.received) / ((performance.now() - start.at) / 1000);
    sending = false;
    ws.close();
    t.diagnostic(`up: ${(rate / MiB).toFixed(3)} MiB/s`);
    assert.ok(rate > 0.8 * CAP && rate < 1.2 * CAP, `the server got ${(rate / MiB).toFixed(3)} MiB/s from a viewer sending as fast as it could`);
    assert.ok(sent - received < 24 * MiB, 'the viewer was held back (its own buffer and the sockets), not buffered by the proxy');
  });
});
