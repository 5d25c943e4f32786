/** Session limits, idle and token-expiry timeouts, slowloris and brute-force protection. */
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { openConsole } from '../helpers/ws-client.js';

describe('limits', () => {
  let holder: Server;
  let holderPort: number;
  const holderSockets = new Set<import('node:net').Socket>();

  before(async () => {
    holder = createServer((s) => {
      holderSockets.add(s);
      s.on('close', () => holderSockets.delete(s));
      s.on('error', () => s.destroy());
      s.write('RFB 003.008\n');
    });
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    holderPort = (holder.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of holderSockets) s.destroy();
    await new Promise((r) => holder.close(r));
  });

  const gateway = (ini: string) => startTestGateway({
    ini: `[cache]\nbackend = memory\n${ini}`,
    builtin: [{ name: 'a', host: '127.0.0.1', port: holderPort, protocol: 'vnc' }, { name: 'b', host: '127.0.0.1', port: holderPort, protocol: 'vnc' }],
  });
  const open = async (gw: TestGateway, token: string) => {
    const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
    await new Promise((r) => ws.once('message', r));
    return ws;
  };

  test('max_sessions_per_instance and max_sessions close extra consoles with 4022 / 4021', async () => {
    const gw = await gateway('[console]\nmax_sessions = 3\nmax_sessions_per_instance = 2\n');
    const held: WebSocket[] = [];
    try {
      const a = (await gw.mint('a')).body.token as string;
      const b = (await gw.mint('b')).body.token as string;
      held.push(await open(gw, a), await open(gw, a));
      const thirdA = await openConsole(`${gw.wsUrl}?token=${a}`, { origin: gw.proxyUrl });
      assert.equal(thirdA.closeCode, 4022);
      held.push(await open(gw, b));
      const fourth = await openConsole(`${gw.wsUrl}?token=${b}`, { origin: gw.proxyUrl });
      assert.equal(fourth.closeCode, 4021);
      assert.ok(gw.logLines.some((l) => l.includes('PH_ERR_LIMIT_SESSIONS')));
    } finally {
      for (const w of held) w.terminate();
      await gw.close();
    }
  });

  test('idle_timeout closes a silent console with 4023; traffic keeps it open', async () => {
    const gw = await gateway('[console]\nidle_timeout = 2\n');
    try {
      const token = (await gw.mint('a')).body.token as string;
      const idle = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
      const busy = await open(gw, token);
      const timer = setInterval(() => busy.send(Buffer.from([0])), 300);
      const [code] = await new Promise<[number]>((r) => idle.on('close', (c: number) => r([c])));
      clearInterval(timer);
      assert.equal(code, 4023);
      assert.equal(busy.readyState, WebSocket.OPEN);
      busy.terminate();
    } finally {
      await gw.close();
    }
  });

  test('enforce_session_timeout closes an open console when its token expires (4024)', async () => {
    const gw = await gateway('[consoleauth]\ntoken_ttl = 2\nenforce_session_timeout = true\n');
    try {
      const token = (await gw.mint('a')).body.token as string;
      const ws = await open(gw, token);
      const started = Date.now();
      const code = await new Promise<number>((r) => ws.on('close', (c: number) => r(c)));
      assert.equal(code, 4024);
      assert.ok(Date.now() - started < 4000);
    } finally {
      await gw.close();
    }
  });

  test('slowloris: an upgrade whose headers never finish is cut after handshake_timeout', async () => {
    const gw = await gateway('[console]\nhandshake_timeout = 1\n');
    try {
      const port = Number(new URL(gw.proxyUrl).port);
      const started = Date.now();
      const closedAfter = await new Promise<number>((resolve) => {
        const s = connect({ host: '127.0.0.1', port }, () => s.write('GET /websockify HTTP/1.1\r\nHost: x\r\n'));
        const drip = setInterval(() => { if (!s.destroyed) s.write('X-Slow: 1\r\n'); }, 200);
        s.on('error', () => undefined);
        s.on('close', () => { clearInterval(drip); resolve(Date.now() - started); });
      });
      assert.ok(closedAfter < 4000, `connection lived ${closedAfter} ms`);
    } finally {
      await gw.close();
    }
  });

  test('brute force: after max_failed_tokens wrong tokens an address gets HTTP 429; another address still works', async () => {
    const gw = await gateway('[console]\nmax_failed_tokens = 5\n');
    try {
      for (let i = 0; i < 5; i++) {
        const out = await openConsole(`${gw.wsUrl}?token=${'w'.repeat(31)}${i}`, { origin: gw.proxyUrl });
        assert.equal(out.closeCode, 4002);
      }
      const token = (await gw.mint('a')).body.token as string;
      const blocked = await openConsole(`${gw.wsUrl}?token=${token}`, { origin: gw.proxyUrl });
      assert.equal(blocked.httpStatus, 429, 'even a valid token is refused from that address for a while');
      const other = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl, localAddress: '127.0.0.2' });
      const greeting = await new Promise<string>((resolve, reject) => {
        other.once('message', (d: Buffer) => resolve(d.toString()));
        other.once('error', reject);
      });
      other.terminate();
      assert.equal(greeting, 'RFB 003.008\n');
      assert.ok(gw.logLines.some((l) => l.includes('PH_ERR_TOO_MANY_FAILURES')));
    } finally {
      await gw.close();
    }
  });

  test('brute force through the page\'s token exchange counts the same and is limited the same', async () => {
    const gw = await gateway('[console]\nmax_failed_tokens = 3\n');
    try {
      const exchange = (token: string) => fetch(`${gw.proxyUrl}/console-session`, {
        method: 'POST', headers: { origin: gw.proxyUrl, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}`,
      });
      for (let i = 0; i < 3; i++) assert.equal((await exchange(`${'w'.repeat(31)}${i}`)).status, 401);
      const token = (await gw.mint('a')).body.token as string;
      const blocked = await exchange(token);
      assert.equal(blocked.status, 429);
      assert.equal((await blocked.json() as { wsCloseCode: number }).wsCloseCode, 4029);
      assert.equal((await openConsole(`${gw.wsUrl}?token=${token}`, { origin: gw.proxyUrl })).httpStatus, 429, 'upgrades from that address too');
    } finally {
      await gw.close();
    }
  });
});

describe('trusted proxies', () => {
  test('X-Forwarded-Host and X-Forwarded-For count only from [console] trusted_proxies', async () => {
    const holder = createServer((s) => { s.on('error', () => s.destroy()); s.end('RFB 003.008\n'); });
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const gw = await startTestGateway({
      ini: '[cache]\nbackend = memory\n[console]\ntrusted_proxies = 127.0.0.2\nmax_failed_tokens = 2\n',
      builtin: [{ name: 'a', host: '127.0.0.1', port: (holder.address() as AddressInfo).port, protocol: 'vnc' }],
    });
    try {
      const token = (await gw.mint('a')).body.token as string;
      const headers = { 'X-Forwarded-Host': 'console.example', 'X-Forwarded-For': '203.0.113.9' };
      const attempt = (localAddress: string, tok = token) => new Promise<number | string>((resolve) => {
        const ws = new WebSocket(`${gw.wsUrl}?token=${tok}`, ['binary'], { origin: 'http://console.example', headers, localAddress });
        ws.on('unexpected-response', (_q, res) => { resolve(`http ${res.statusCode ?? 0}`); ws.terminate(); });
        ws.on('message', () => { resolve('ok'); ws.terminate(); });
        ws.on('close', (code: number) => resolve(code));
        ws.on('error', () => undefined);
      });
      assert.equal(await attempt('127.0.0.2'), 'ok', 'a trusted proxy\'s X-Forwarded-Host satisfies the Origin check');
      assert.equal(await attempt('127.0.0.1'), 'http 403', 'anyone else\'s X-Forwarded-Host is ignored');
      for (let i = 0; i < 2; i++) assert.equal(await attempt('127.0.0.2', 'x'.repeat(32)), 4002);
      assert.equal(await attempt('127.0.0.2'), 'http 429', 'failures are counted per forwarded client address');
      assert.ok(gw.logLines.some((l) => l.includes('"remote":"203.0.113.9"')), 'logs name the real client');
    } finally {
      await gw.close();
      await new Promise((r) => holder.close(r));
    }
  });
});
