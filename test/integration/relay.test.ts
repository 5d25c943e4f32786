/**
 * Relay behaviour that needs a misbehaving peer: a fake VNC server that floods (a real QEMU cannot
 * be made to send gigabytes on demand), a browser that stops reading, and hostile frames.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

interface Flood {
  server: Server;
  port: number;
  written: () => number;
  received: () => number;
  sockets: Set<Socket>;
}

/** Writes 64 KiB chunks as fast as the socket accepts them; counts what it received. */
async function startFloodServer(): Promise<Flood> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let written = 0;
  let received = 0;
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.on('data', (d) => { received += d.length; });
    const pump = () => {
      while (!sock.destroyed) {
        written += chunk.length;
        if (!sock.write(chunk)) {
          sock.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, written: () => written, received: () => received, sockets };
}

describe('relay with misbehaving peers', () => {
  let flood: Flood;
  let gw: TestGateway;

  before(async () => {
    flood = await startFloodServer();
    gw = await startTestGateway({
      ini: '[cache]\nbackend = memory\n[serial_console]\nenabled = true\nserialproxy_host = 127.0.0.1\nserialproxy_port = 0\n',
      builtin: [{ name: 'flood', host: '127.0.0.1', port: flood.port, serialPort: flood.port, protocol: 'vnc' }],
    });
  });

  after(async () => {
    await gw?.close();
    for (const s of flood?.sockets ?? []) s.destroy();
    await new Promise((r) => flood?.server.close(r));
  });

  async function open(protocol: 'vnc' | 'serial' = 'vnc'): Promise<WebSocket> {
    const token = (await gw.mint('flood', { protocol })).body.token as string;
    const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl, maxPayload: 0 });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return ws;
  }

  test('a browser that stops reading while the VM floods holds the VM back (bounded memory)', async () => {
    const ws = await open();
    let got = 0;
    ws.on('message', (d: Buffer) => { got += d.length; });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(got > 1024 * 1024, `relay moved data while the browser read (${got} bytes)`);
    ws.pause(); // the browser stops reading
    await new Promise((r) => setTimeout(r, 500));
    const stalledAt = flood.written();
    const heapBefore = process.memoryUsage().arrayBuffers;
    await new Promise((r) => setTimeout(r, 1500));
    const grew = flood.written() - stalledAt;
    // Only kernel socket buffers and the relay's high-water mark may absorb more; nothing unbounded.
    assert.ok(grew < 8 * 1024 * 1024, `VM kept writing ${grew} bytes while the browser was stalled`);
    assert.ok(process.memoryUsage().arrayBuffers - heapBefore < 16 * 1024 * 1024, 'proxy buffers stayed bounded');
    ws.resume();
    const before = got;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(got - before > 1024 * 1024, 'relay resumed after the browser read again');
    ws.terminate();
  });

  test('serial fan-out: one viewer that stops reading holds the shared upstream back (bounded), the other resumes once it leaves', async () => {
    const reader = await open('serial');
    const staller = await open('serial');
    let got = 0;
    reader.on('message', (d: Buffer) => { got += d.length; });
    staller.on('message', () => { /* reads until paused */ });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(got > 1024 * 1024, `serial output flowed (${got} bytes)`);
    staller.pause();
    await new Promise((r) => setTimeout(r, 500));
    const stalledAt = flood.written();
    const heapBefore = process.memoryUsage().arrayBuffers;
    await new Promise((r) => setTimeout(r, 1500));
    const grew = flood.written() - stalledAt;
    // The slowest viewer sets the pace: without the pause, the proxy would queue the flood for it.
    assert.ok(grew < 8 * 1024 * 1024, `the guest kept writing ${grew} bytes while a viewer was stalled`);
    assert.ok(process.memoryUsage().arrayBuffers - heapBefore < 16 * 1024 * 1024, 'proxy buffers stayed bounded');
    staller.terminate();
    await new Promise((r) => setTimeout(r, 300));
    const before = got;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(got - before > 1024 * 1024, 'output resumed for the remaining viewer');
    reader.terminate();
  });

  test('browser → VM bytes arrive in order and count', async () => {
    const ws = await open();
    ws.on('message', () => { /* drain the flood */ });
    const start = flood.received();
    const payload = Buffer.alloc(256 * 1024, 1);
    for (let i = 0; i < 16; i++) ws.send(payload);
    const deadline = Date.now() + 5000;
    while (flood.received() - start < 16 * payload.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(flood.received() - start, 16 * payload.length);
    ws.terminate();
  });

  test('oversized WebSocket messages close with 1009; text frames with 1003; the proxy keeps serving', async () => {
    const big = await open();
    big.on('message', () => { /* ignore */ });
    const bigClosed = new Promise<number>((r) => big.on('close', (code: number) => r(code)));
    big.on('error', () => { /* reported via close */ });
    big.send(Buffer.alloc(5 * 1024 * 1024));
    assert.equal(await bigClosed, 1009);

    const text = await open();
    text.on('message', () => { /* ignore */ });
    const textClosed = new Promise<number>((r) => text.on('close', (code: number) => r(code)));
    text.send('hello as text');
    assert.equal(await textClosed, 1003);

    const ok = await open();
    const first = await new Promise<Buffer>((r) => ok.once('message', r));
    assert.ok(first.length > 0);
    ok.terminate();
  });

  test('a browser that vanishes without a close frame releases the VM connection', async () => {
    const settle = Date.now() + 3000;
    while ((flood.sockets.size > 0 || gw.gateway.sessionCount > 0) && Date.now() < settle) await new Promise((r) => setTimeout(r, 20));
    const before = flood.sockets.size;
    assert.equal(before, 0, 'earlier sessions released their VM connections');
    const ws = await open();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(flood.sockets.size, before + 1);
    ws.terminate(); // TCP reset, no close frame
    const deadline = Date.now() + 3000;
    while (flood.sockets.size > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(flood.sockets.size, before);
    assert.equal(gw.gateway.sessionCount, 0);
  });
});

describe('close races', () => {
  test('browser and VNC server closing at the same moment, 300 times: no state-machine bug, no crash', async () => {
    // The VM side closes a moment after its greeting: sometimes before the browser's close frame,
    // sometimes while the proxy is answering it (readyState CLOSING), the case that once crashed.
    const greeter = createServer((s) => {
      s.on('error', () => s.destroy());
      s.write('RFB 003.008\n');
      setTimeout(() => s.end(), Math.floor(Math.random() * 4));
    });
    await new Promise<void>((r) => greeter.listen(0, '127.0.0.1', r));
    const gw = await startTestGateway({
      ini: '[cache]\nbackend = memory\n',
      builtin: [{ name: 'greeter', host: '127.0.0.1', port: (greeter.address() as AddressInfo).port, protocol: 'vnc' }],
    });
    try {
      const token = (await gw.mint('greeter')).body.token as string;
      for (let round = 0; round < 30; round++) {
        await Promise.all(Array.from({ length: 10 }, () => new Promise<void>((resolve) => {
          const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
          ws.on('message', () => ws.close(1000)); // the browser closes while the proxy closes with 4012
          ws.on('error', () => undefined);
          ws.on('close', () => resolve());
        })));
      }
      const deadline = Date.now() + 3000;
      while (gw.gateway.sessionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(gw.gateway.sessionCount, 0);
      assert.ok(!gw.logLines.some((l) => l.includes('illegal session transition')));
    } finally {
      await gw.close();
      await new Promise((r) => greeter.close(r));
    }
  });
});

describe('timeouts', () => {
  test('a VNC server that never answers the TCP handshake → 4011 after [console] connect_timeout', async () => {
    const { Socket } = await import('node:net');
    const gw = await startTestGateway({
      ini: '[console]\nconnect_timeout = 1\n[cache]\nbackend = memory\n',
      builtin: [{ name: 'blackhole', host: '127.0.0.1', port: 9, protocol: 'vnc' }],
      // A socket that is never connected stands in for a firewall that drops SYNs.
      extra: { connect: () => new Socket() },
    });
    try {
      const token = (await gw.mint('blackhole')).body.token as string;
      const started = Date.now();
      const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
      const [code, reason] = await new Promise<[number, string]>((r) => ws.on('close', (c: number, why: Buffer) => r([c, why.toString()])));
      assert.equal(code, 4011);
      assert.match(reason, /^PH_ERR_UPSTREAM_TIMEOUT/);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 900 && elapsed < 3000, `${elapsed} ms`);
    } finally {
      await gw.close();
    }
  });

  test('a browser that stops answering pings is dropped (PH_ERR_CLIENT_TIMEOUT); others keep their console', async () => {
    const holder = createServer((s) => { s.on('error', () => s.destroy()); s.write('RFB 003.008\n'); });
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const gw = await startTestGateway({
      ini: '[console]\nping_interval = 1\n[cache]\nbackend = memory\n',
      builtin: [{ name: 'idle', host: '127.0.0.1', port: (holder.address() as AddressInfo).port, protocol: 'vnc' }],
    });
    try {
      const token = (await gw.mint('idle')).body.token as string;
      const alive = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
      const dead = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
      await Promise.all([once(alive, 'message'), once(dead, 'message')]);
      dead.pause(); // a frozen tab: reads nothing, answers no ping
      // A paused client never reads the FIN, so watch the proxy's side: within two ping intervals.
      const deadline = Date.now() + 4000;
      while (gw.gateway.sessionCount > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(gw.gateway.sessionCount, 1, 'the silent browser was dropped, the answering one keeps its console');
      assert.ok(gw.logLines.some((l) => l.includes('PH_ERR_CLIENT_TIMEOUT')), 'the drop is logged with its code');
      dead.terminate();
      assert.equal(alive.readyState, WebSocket.OPEN);
      alive.close();
    } finally {
      await gw.close();
      await new Promise((r) => holder.close(r));
    }
  });
});
