/**
 * The session ⇄ protocol handler interface, with a handler written here (no VNC, no serial): the
 * generic session gives it the token's target, the early messages in order, runs its handshake
 * timeout, and releases its attachment exactly once on every way a session ends. Real WebSockets
 * on loopback. Plus the serial scrollback ring.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import type { ConsoleAttachment, ConsoleLink, ProtocolHandler } from '../../src/console/handler.js';
import type { ConnectInfo } from '../../src/console/types.js';
import { PortholeError } from '../../src/errors.js';
import { ConsoleSession } from '../../src/proxy/session.js';
import { Scrollback } from '../../src/protocols/serial/scrollback.js';

let wss: WebSocketServer;
let port: number;
before(async () => {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  port = (wss.address() as AddressInfo).port;
});
after(() => wss.close());

const INFO: ConnectInfo = { instance: 'vm', protocol: 'serial', consoleType: 'serial', host: '127.0.0.1', port: 1, accessUrlBase: 'http://x/' };

/** A handler that records what it is given and lets the test drive the link. */
function recordingHandler() {
  const seen: { link?: ConsoleLink; released: number; early?: string[] } = { released: 0 };
  const handler: ProtocolHandler = {
    protocol: 'serial', serverName: 'test console', acceptsText: true, wantsPassword: false,
    attach(link): ConsoleAttachment {
      seen.link = link;
      return { bytesToClient: 7, bytesToServer: 3, release: () => { seen.released++; } };
    },
    close() {},
  };
  return { handler, seen };
}

/** A session on the server side of a fresh loopback WebSocket, and the client. */
async function sessionPair(handler: ProtocolHandler, timeouts = { connectTimeoutMs: 2000, handshakeTimeoutMs: 2000 }) {
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  const [serverWs] = await accepted;
  await once(client, 'open');
  let closedSession: ConsoleSession | undefined;
  const session = new ConsoleSession({
    id: 's1', ws: serverWs, token: 't', logger: pino({ level: 'silent' }), remote: '127.0.0.1', handler, ...timeouts,
    onClosed: (s) => { closedSession = s; },
  });
  const clientClosed = once(client, 'close') as Promise<[number, Buffer]>;
  return { session, client, clientClosed, closed: () => closedSession };
}

test('the handler gets the target, early messages in order (text too, when it accepts text), and the session relays with its counters', async () => {
  const { handler, seen } = recordingHandler();
  const { session, client, clientClosed } = await sessionPair(handler);
  session.begin({ ok: true, connectInfo: INFO });
  assert.equal(seen.link?.info, INFO);
  assert.equal(session.state, 'connecting');
  client.send(Buffer.from('a'));
  client.send('b'); // text frame
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(seen.link?.takeEarly().map((b) => b.toString()), ['a', 'b']);
  seen.link?.relaying();
  assert.equal(session.state, 'relaying');
  assert.deepEqual([session.info().bytesToClient, session.info().bytesToServer], [7, 3]);
  seen.link?.fail(new PortholeError('PH_ERR_UPSTREAM_CLOSED'));
  seen.link?.fail(new PortholeError('PH_ERR_INTERNAL')); // the first reason wins
  const [code] = await clientClosed;
  assert.equal(code, 4012);
  assert.equal(seen.released, 1, 'released exactly once');
});

test('a handler that does not accept text: an early text frame closes with 1003 before it sees anything', async () => {
  const { handler, seen } = recordingHandler();
  const strict: ProtocolHandler = { ...handler, acceptsText: false, attach: (l) => handler.attach(l) };
  const { session, client, clientClosed } = await sessionPair(strict);
  session.begin({ ok: true, connectInfo: INFO });
  client.send('text');
  const [code] = await clientClosed;
  assert.equal(code, 1003);
  assert.equal(seen.released, 1);
});

test('connect timeout, then the handler\'s own handshake timeout with its error', async () => {
  const slow = recordingHandler();
  const a = await sessionPair(slow.handler, { connectTimeoutMs: 100, handshakeTimeoutMs: 5000 });
  a.session.begin({ ok: true, connectInfo: INFO });
  assert.equal((await a.clientClosed)[0], 4011, 'connect timeout: PH_ERR_UPSTREAM_TIMEOUT');
  const stuck = recordingHandler();
  const b = await sessionPair(stuck.handler, { connectTimeoutMs: 5000, handshakeTimeoutMs: 100 });
  b.session.begin({ ok: true, connectInfo: INFO });
  stuck.seen.link?.negotiating(new PortholeError('PH_ERR_RFB_HANDSHAKE', 'handshake too slow'));
  assert.equal(b.session.state, 'negotiating');
  assert.equal((await b.clientClosed)[0], 4017, 'the handler\'s timeout error');
  assert.equal(stuck.seen.released, 1);
});

test('the client leaving releases the attachment once and ends the session', async () => {
  const { handler, seen } = recordingHandler();
  const { session, client, closed } = await sessionPair(handler);
  session.begin({ ok: true, connectInfo: INFO });
  seen.link?.relaying();
  client.close(1000);
  for (let i = 0; i < 50 && closed() === undefined; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(closed(), session);
  assert.equal(session.state, 'closed');
  assert.equal(seen.released, 1);
});

test('scrollback keeps the last N bytes, oldest dropped first, across chunk boundaries', () => {
  const ring = new Scrollback(10);
  ring.push(Buffer.from('0123'));
  ring.push(Buffer.from('4567'));
  assert.equal(ring.snapshot().toString(), '01234567');
  ring.push(Buffer.from('89ab'));
  assert.equal(ring.snapshot().toString(), '23456789ab');
  ring.push(Buffer.from('cdefghijklmnop')); // bigger than the ring
  assert.equal(ring.snapshot().toString(), 'ghijklmnop');
  assert.equal(ring.bytes, 10);
  const copy = Buffer.from('xyz');
  ring.push(copy);
  copy.fill(0); // the ring keeps its own copy, not the socket's buffer
  assert.equal(ring.snapshot().toString(), 'jklmnopxyz');
  assert.equal(new Scrollback(0).snapshot().length, 0);
  assert.throws(() => new Scrollback(-1), RangeError);
});
