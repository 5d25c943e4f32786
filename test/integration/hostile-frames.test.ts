/** Hostile WebSocket input against the proxy: fragmented frames, invalid close frames, ping floods, garbage. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

/** A client-to-server frame, masked as RFC 6455 §5.3 requires. */
function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]) : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, len >> 8, len & 255]);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] = (masked[i] ?? 0) ^ (mask[i % 4] ?? 0);
  return Buffer.concat([head, mask, masked]);
}

/** Raw upgrade; resolves with the socket once the 101 arrived. */
async function rawUpgrade(gw: TestGateway, token: string): Promise<{ socket: Socket; received: () => Buffer }> {
  const port = Number(new URL(gw.proxyUrl).port);
  const socket = connect({ host: '127.0.0.1', port });
  let buf = Buffer.alloc(0);
  socket.on('data', (d) => { buf = Buffer.concat([buf, d]); });
  socket.on('error', () => undefined);
  socket.write(`GET /websockify?token=${token} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n`);
  const deadline = Date.now() + 5000;
  while (!buf.includes('\r\n\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.match(buf.toString('latin1'), /^HTTP\/1\.1 101/);
  const start = buf.indexOf('\r\n\r\n') + 4;
  return { socket, received: () => buf.subarray(start) };
}

/** A VNC-server stand-in that echoes, keeping what it got in `echoed`. */
async function echoServer(echoed: Buffer[]): Promise<Server> {
  const echo = createServer((s) => { s.on('error', () => s.destroy()); s.on('data', (d) => { echoed.push(d); s.write(d); }); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  return echo;
}

describe('hostile WebSocket frames', () => {
  let echo: Server;
  let gw: TestGateway;
  let token: string;
  const echoed: Buffer[] = [];

  before(async () => {
    echo = await echoServer(echoed);
    gw = await startTestGateway({ ini: '[cache]\nbackend = memory\n', builtin: [{ name: 'echo', host: '127.0.0.1', port: (echo.address() as AddressInfo).port, protocol: 'vnc' }] });
    token = (await gw.mint('echo')).body.token as string;
  });
  after(async () => {
    await gw?.close();
    await new Promise((r) => echo.close(r));
  });

  test('a fragmented binary message is reassembled and relayed as one', async () => {
    const { socket } = await rawUpgrade(gw, token);
    echoed.length = 0;
    socket.write(frame(0x2, Buffer.from('RFB '), false));
    socket.write(frame(0x0, Buffer.from('003.'), false));
    socket.write(frame(0x0, Buffer.from('008\n'), true));
    const deadline = Date.now() + 3000;
    while (Buffer.concat(echoed).length < 12 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(Buffer.concat(echoed).toString(), 'RFB 003.008\n');
    socket.destroy();
  });

  test('a close frame with an invalid UTF-8 reason gets close 1007, and nothing crashes', async () => {
    const { socket, received } = await rawUpgrade(gw, token);
    socket.write(frame(0x8, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from([0xc3, 0x28])])));
    const deadline = Date.now() + 3000;
    while (socket.readable && Date.now() < deadline && received().length < 4) await new Promise((r) => setTimeout(r, 10));
    const close = received();
    assert.equal(close[0], 0x88, 'a close frame came back');
    assert.equal(close.readUInt16BE(2), 1007);
    socket.destroy();
  });

  test('unmasked client frames and reserved opcodes are protocol errors (1002)', async () => {
    for (const bad of [Buffer.from([0x82, 0x02, 0x41, 0x42]), frame(0x3, Buffer.from('x'))]) {
      const { socket, received } = await rawUpgrade(gw, token);
      socket.write(bad);
      const deadline = Date.now() + 3000;
      while (received().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(received().readUInt16BE(2), 1002);
      socket.destroy();
    }
  });

  test('a ping flood neither crashes the proxy nor starves other consoles', async () => {
    const flooder = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
    await new Promise((r) => flooder.once('open', r));
    flooder.on('error', () => undefined);
    for (let i = 0; i < 20_000; i++) flooder.ping(Buffer.alloc(125, 1));
    const other = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
    await new Promise((r) => other.once('open', r));
    const reply = new Promise<string>((r) => other.once('message', (d: Buffer) => r(d.toString())));
    other.send(Buffer.from('still here'));
    assert.equal(await reply, 'still here');
    other.close();
    flooder.terminate();
    const health = await fetch(`${gw.proxyUrl}/healthz`);
    assert.equal(health.status, 200);
  });

  test('garbage instead of an HTTP request gets 400 and the proxy keeps serving', async () => {
    const port = Number(new URL(gw.proxyUrl).port);
    const answer = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => s.write(randomBytes(2048)));
      let got = '';
      s.on('data', (d) => { got += d.toString('latin1'); });
      s.on('error', () => resolve(got));
      s.on('close', () => resolve(got));
    });
    assert.match(answer, /^HTTP\/1\.1 400/);
    assert.equal((await fetch(`${gw.proxyUrl}/healthz`)).status, 200);
  });
});

/**
 * Once a console relays, browser frames are read by the relay's own reader, not ws's Receiver
 * (protocols/client-frames.ts): the same protocol checks must hold there, and payload must come
 * out exact however the frames are split.
 */
describe('browser frames while relaying (the relay reads them itself)', () => {
  let echo: Server;
  let gw: TestGateway;
  let token: string;
  const echoed: Buffer[] = [];

  before(async () => {
    echo = await echoServer(echoed);
    gw = await startTestGateway({
      ini: '[cache]\nbackend = memory\n[console]\nmax_message_size = 65536\n', debug: true,
      builtin: [{ name: 'echo', host: '127.0.0.1', port: (echo.address() as AddressInfo).port, protocol: 'vnc' }],
    });
    token = (await gw.mint('echo')).body.token as string;
  });
  after(async () => {
    await gw?.close();
    await new Promise((r) => echo.close(r));
  });

  /** An upgraded socket whose console is relaying: one message went through and came back. */
  async function relaying(): Promise<{ socket: Socket; received: () => Buffer }> {
    const conn = await rawUpgrade(gw, token);
    conn.socket.write(frame(0x2, Buffer.from('hello')));
    const deadline = Date.now() + 3000;
    while (!conn.received().includes('hello') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(conn.received().includes('hello'), 'relaying');
    return conn;
  }

  async function closeCode(received: () => Buffer, from: number): Promise<number> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const at = received().indexOf(0x88, from);
      if (at >= 0 && received().length >= at + 4) return received().readUInt16BE(at + 2);
      if (Date.now() > deadline) return -1;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  test('the relay reads the frames of a relaying console (not ws)', async () => {
    const { socket } = await relaying();
    assert.ok(gw.logLines.some((l) => l.includes('"browserFrames":"relay"')), 'debug log says the relay reads browser frames');
    socket.destroy();
  });

  test('a 200 KiB stream in odd-sized writes and frames, a ping inside a fragmented message: payload exact, the ping answered', async () => {
    const { socket, received } = await relaying();
    echoed.length = 0;
    const data = randomBytes(200_000);
    const wire = Buffer.concat([
      frame(0x2, data.subarray(0, 1000), false), frame(0x9, Buffer.from('ping!')), frame(0x0, data.subarray(1000, 60_000), true),
      frame(0x2, data.subarray(60_000, 120_000)), frame(0x2, data.subarray(120_000, 180_000)), frame(0x2, data.subarray(180_000)),
    ]);
    for (let at = 0; at < wire.length; at += 4093) socket.write(wire.subarray(at, at + 4093));
    const deadline = Date.now() + 5000;
    while (Buffer.concat(echoed).length < data.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(Buffer.concat(echoed).equals(data), 'the VNC server got exactly the payload');
    assert.ok(received().includes(Buffer.from([0x8a, 5, ...Buffer.from('ping!')])), 'pong with the ping\'s payload');
    socket.destroy();
  });

  test('16 MiB streamed in 64 KiB messages to a VNC server that reads slowly arrives exact (the relay reuses its read buffer only once the server took the bytes)', async () => {
    const { createHash } = await import('node:crypto');
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let gotBytes = 0;
    const total = 16 * 1024 * 1024;
    const slow = createServer((s) => {
      s.on('error', () => s.destroy());
      s.on('data', (d) => {
        got.update(d);
        gotBytes += d.length;
        if (gotBytes % (1024 * 1024) < d.length) { s.pause(); setTimeout(() => s.resume(), 20); } // stall every MiB
      });
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const slowGw = await startTestGateway({ ini: '[cache]\nbackend = memory\n', builtin: [{ name: 'slow', host: '127.0.0.1', port: (slow.address() as AddressInfo).port, protocol: 'vnc' }] });
    try {
      const { socket } = await rawUpgrade(slowGw, (await slowGw.mint('slow')).body.token as string);
      for (let at = 0; at < total; at += 65536) {
        const chunk = randomBytes(65536);
        sent.update(chunk);
        const wire = Buffer.concat([Buffer.from([0x82, 0xff, 0, 0, 0, 0]), Buffer.alloc(4), randomBytes(4)]);
        wire.writeUInt32BE(65536, 6); // 64-bit length: high word 0 (bytes 2–5), low word here
        const mask = wire.subarray(10, 14);
        const body = Buffer.from(chunk);
        for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i & 3] as number);
        if (!socket.write(Buffer.concat([wire, body]))) await new Promise((r) => socket.once('drain', r));
      }
      const deadline = Date.now() + 20_000;
      while (gotBytes < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(gotBytes, total);
      assert.equal(got.digest('hex'), sent.digest('hex'), 'the VNC server got exactly what the browser sent');
      socket.destroy();
    } finally {
      await slowGw.close();
      await new Promise((r) => slow.close(r));
    }
  });

  test('a new data frame inside a fragmented message, RSV bits, unmasked frames and reserved opcodes: 1002', async () => {
    for (const bad of [
      Buffer.concat([frame(0x2, Buffer.from('part'), false), frame(0x2, Buffer.from('new'))]),
      Buffer.concat([frame(0x2, Buffer.from('part'), false), frame(0x1, Buffer.from('text'))]),
      frame(0x0, Buffer.from('continuation of nothing')),
      Buffer.from([0xc2, 0x81, 0, 0, 0, 0, 0x41]), // RSV1 without permessage-deflate
      Buffer.from([0x82, 0x02, 0x41, 0x42]),
      frame(0x3, Buffer.from('x')),
    ]) {
      const { socket, received } = await relaying();
      const from = received().length;
      socket.write(bad);
      assert.equal(await closeCode(received, from), 1002, bad.toString('hex'));
      socket.destroy();
    }
  });

  test('a message over max_message_size across fragments: 1009 before its payload reaches the server', async () => {
    const { socket, received } = await relaying();
    echoed.length = 0;
    const from = received().length;
    socket.write(Buffer.concat([frame(0x2, Buffer.alloc(40_000, 1), false), frame(0x0, Buffer.alloc(40_000, 2), true)]));
    assert.equal(await closeCode(received, from), 1009);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!Buffer.concat(echoed).includes(2), 'nothing of the oversized fragment was relayed');
    socket.destroy();
  });

  test('a close from the browser is answered and the console closes cleanly (1000)', async () => {
    const { socket, received } = await relaying();
    const from = received().length;
    socket.write(frame(0x8, Buffer.from([0x03, 0xe8])));
    assert.equal(await closeCode(received, from), 1000);
    socket.destroy();
  });
});
