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

describe('hostile WebSocket frames', () => {
  let echo: Server;
  let gw: TestGateway;
  let token: string;
  const echoed: Buffer[] = [];

  before(async () => {
    echo = createServer((s) => { s.on('error', () => s.destroy()); s.on('data', (d) => { echoed.push(d); s.write(d); }); });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
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
