/**
 * The core console path against a real QEMU VNC server: mint via the API, WebSocket through the
 * proxy, RFB bytes both ways, and every documented failure code.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { ERROR_CATALOGUE } from '../../src/errors.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startQemuVnc } from '../helpers/qemu.js';
import { openConsole, rfbSecurityTypes } from '../helpers/ws-client.js';

const clock = { offset: 0, now: () => Date.now() + clock.offset };
let vm: DemoVm;
let gw: TestGateway;

function tokenOf(body: Record<string, unknown>): string {
  assert.equal(typeof body.token, 'string');
  return body.token as string;
}

/** Raw GET with the target sent exactly as written (fetch would normalise it). */
function rawGet(port: number, target: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: target, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('console path against real QEMU', () => {
  let deadPort: number;

  before(async () => {
    vm = await startQemuVnc();
    deadPort = await freePort();
    gw = await startTestGateway({
      clock,
      builtin: [
        vm.entry,
        { name: 'unreachable-vm', host: '127.0.0.1', port: deadPort, protocol: 'vnc' },
        { name: 'serial-only', host: '127.0.0.1', port: deadPort, protocol: 'serial' },
      ],
    });
  });

  after(async () => {
    await gw?.close();
    await vm?.stop();
  });

  const origin = () => gw.proxyUrl;
  const wsFor = (token: string) => `${gw.wsUrl}?token=${encodeURIComponent(token)}`;

  test('POST /v1/consoles mints a URL that opens the noVNC page', async () => {
    const res = await gw.mint('demo', { protocol: 'vnc', type: 'novnc' });
    assert.equal(res.status, 201);
    assert.deepEqual(Object.keys(res.body).sort(), ['expires_at', 'instance', 'protocol', 'record', 'token', 'type', 'url', 'view_only'].sort());
    assert.equal(res.body.instance, 'demo');
    const url = new URL(res.body.url as string);
    assert.equal(url.searchParams.get('token'), res.body.token);
    assert.ok(Date.parse(res.body.expires_at as string) > Date.now() + 590_000);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /noVNC/);
    assert.match(html, /<script type="module" src="porthole-console\.js">/);
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
  });

  test('the proxy relays QEMU\'s RFB greeting and security types', async () => {
    const token = tokenOf((await gw.mint('demo')).body);
    const { version, types } = await rfbSecurityTypes(wsFor(token), origin());
    assert.equal(version, 'RFB 003.008\n');
    assert.deepEqual(types, [1], 'QEMU without a password offers only None');
  });

  test('bytes flow both ways: a full RFB handshake reaches ServerInit', async () => {
    const token = tokenOf((await gw.mint('demo')).body);
    const ws = new WebSocket(wsFor(token), ['binary'], { origin: origin() });
    const script: Array<[number, Buffer | undefined]> = [
      [12, Buffer.from('RFB 003.008\n')], // version → our version
      [2, Buffer.from([1])], // 1 type (None) → choose None
      [4, Buffer.from([1])], // SecurityResult OK → ClientInit shared
    ];
    let buf = Buffer.alloc(0);
    const serverInit = await new Promise<Buffer>((resolve, reject) => {
      ws.on('error', reject);
      ws.on('message', (data: Buffer) => {
        buf = Buffer.concat([buf, data]);
        for (;;) {
          const step = script[0];
          if (step === undefined) {
            if (buf.length >= 24) resolve(buf);
            return;
          }
          if (buf.length < step[0]) return;
          if (step[1]) ws.send(step[1]);
          buf = buf.subarray(step[0]);
          script.shift();
        }
      });
    });
    ws.close();
    assert.equal(ws.protocol, 'binary');
    const width = serverInit.readUInt16BE(0);
    const height = serverInit.readUInt16BE(2);
    assert.ok(width >= 320 && height >= 200, `framebuffer ${width}x${height}`);
  });

  test('token from the token cookie works like ?token=', async () => {
    const token = tokenOf((await gw.mint('demo')).body);
    const out = await openConsole(gw.wsUrl, { origin: origin(), headers: { Cookie: `token=${token}` }, wantBytes: 12 });
    assert.equal(out.received.subarray(0, 12).toString(), 'RFB 003.008\n');
  });

  test('no token → 4001, unknown token → 4002, each with its documented reason', async () => {
    const missing = await openConsole(gw.wsUrl, { origin: origin() });
    assert.equal(missing.closeCode, ERROR_CATALOGUE.PH_ERR_TOKEN_MISSING.wsCloseCode);
    assert.match(missing.closeReason ?? '', /^PH_ERR_TOKEN_MISSING: /);
    const bad = await openConsole(wsFor('x'.repeat(32)), { origin: origin() });
    assert.equal(bad.closeCode, 4002);
    assert.equal(bad.closeReason, 'PH_ERR_TOKEN_INVALID: console token is not valid');
    assert.equal(bad.received.length, 0, 'nothing from the VNC server leaks before the token check');
    assert.ok(bad.elapsedMs < 1000, `close handshake took ${bad.elapsedMs} ms`);
  });

  test('expired token → 4003', async () => {
    const token = tokenOf((await gw.mint('demo')).body);
    clock.offset = 601_000;
    try {
      const out = await openConsole(wsFor(token), { origin: origin() });
      assert.equal(out.closeCode, 4003);
      assert.match(out.closeReason ?? '', /^PH_ERR_TOKEN_EXPIRED/);
    } finally {
      clock.offset = 0;
    }
  });

  test('DELETE /v1/instances/{id}/consoles revokes → 4004; tokens of other instances still work', async () => {
    const token = tokenOf((await gw.mint('demo')).body);
    const other = tokenOf((await gw.mint('unreachable-vm')).body);
    const del = await gw.api('DELETE', '/v1/instances/demo/consoles');
    assert.equal(del.status, 200);
    assert.equal(del.body.instance, 'demo');
    assert.ok(typeof del.body.revoked === 'number' && del.body.revoked >= 1, JSON.stringify(del.body));
    const out = await openConsole(wsFor(token), { origin: origin() });
    assert.equal(out.closeCode, 4004);
    assert.match(out.closeReason ?? '', /^PH_ERR_TOKEN_REVOKED/);
    const still = await openConsole(wsFor(other), { origin: origin() });
    assert.notEqual(still.closeCode, 4004);
  });

  test('a wrong Origin gets HTTP 403 before the upgrade', async () => {
    const token = tokenOf((await gw.mint('demo')).body);
    const foreign = await openConsole(wsFor(token), { origin: 'http://evil.example' });
    assert.equal(foreign.httpStatus, 403);
    assert.equal(foreign.opened, false);
    const wrongScheme = await openConsole(wsFor(token), { origin: gw.proxyUrl.replace('http:', 'https:') });
    assert.equal(wrongScheme.httpStatus, 403);
  });

  test('a VNC server that is not listening → 4010 within 5 s', async () => {
    const token = tokenOf((await gw.mint('unreachable-vm')).body);
    const out = await openConsole(wsFor(token), { origin: origin() });
    assert.equal(out.closeCode, 4010);
    assert.match(out.closeReason ?? '', /^PH_ERR_UPSTREAM_UNREACHABLE/);
    assert.ok(out.elapsedMs < 5000, `${out.elapsedMs} ms`);
  });

  test('a stopped QEMU: open session gets 4012, new sessions 4010, both within 5 s', async () => {
    const vm2 = await startQemuVnc();
    const g2 = await startTestGateway({ builtin: [{ ...vm2.entry, name: 'doomed' }] });
    try {
      const token = tokenOf((await g2.mint('doomed')).body);
      const url = `${g2.wsUrl}?token=${token}`;
      const ws = new WebSocket(url, ['binary'], { origin: g2.proxyUrl });
      await new Promise((resolve) => ws.once('message', resolve));
      const closed = new Promise<[number, string, number]>((resolve) => {
        ws.on('close', (code: number, reason: Buffer) => resolve([code, reason.toString(), Date.now()]));
      });
      const stoppedAt = Date.now();
      await vm2.stop();
      const [code, reason, at] = await closed;
      assert.equal(code, 4012);
      assert.match(reason, /^PH_ERR_UPSTREAM_CLOSED/);
      assert.ok(at - stoppedAt < 5000);
      const again = await openConsole(url, { origin: g2.proxyUrl });
      assert.equal(again.closeCode, 4010);
      assert.ok(again.elapsedMs < 5000);
    } finally {
      await g2.close();
      await vm2.stop();
    }
  });

  test('API errors: 401 without or with a wrong key, 400 malformed, 404 unknown instance, 409 no VNC', async () => {
    const noKey = await gw.api('POST', '/v1/consoles', { instance: 'demo' }, null);
    assert.equal(noKey.status, 401);
    assert.equal(noKey.body.code, 'PH_ERR_API_UNAUTHORIZED');
    assert.equal((await gw.api('POST', '/v1/consoles', { instance: 'demo' }, 'wrong-key')).status, 401);
    const malformed = await gw.api('POST', '/v1/consoles', { instance: 'demo', protocol: 'telnet' });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.code, 'PH_ERR_API_BAD_REQUEST');
    assert.equal((await gw.api('POST', '/v1/consoles', { nope: 1 })).status, 400);
    const unknown = await gw.mint('no-such-vm');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'PH_ERR_INSTANCE_NOT_FOUND');
    const noVnc = await gw.mint('serial-only');
    assert.equal(noVnc.status, 409);
    assert.equal(noVnc.body.code, 'PH_ERR_INSTANCE_NO_CONSOLE');
  });

  test('GET /v1/instances lists instances; public /healthz shows up/down and the version only, the API with a key every detail', async () => {
    const list = await gw.api('GET', '/v1/instances');
    assert.equal(list.status, 200);
    assert.deepEqual((list.body.instances as Array<{ name: string }>).map((i) => i.name), ['demo', 'unreachable-vm', 'serial-only']);
    for (const base of [gw.apiUrl, gw.proxyUrl]) {
      const res = await fetch(`${base}/healthz`);
      assert.equal(res.status, 200);
      const h = (await res.json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(h).sort(), ['ok', 'version'], `${base}: ${JSON.stringify(h)}`);
      assert.equal(h.ok, true);
    }
    const detailed = await gw.api('GET', '/healthz');
    assert.equal(detailed.status, 200);
    assert.equal((detailed.body.store as { backend: string }).backend, 'sqlite');
    assert.match((detailed.body.store as { detail: string }).detail, /tokens\.sqlite/);
  });

  test('Nova-compatible remote-consoles and os-getVNCConsole calls', async () => {
    const rc = await gw.api('POST', '/v2.1/servers/demo/remote-consoles', { remote_console: { protocol: 'vnc', type: 'novnc' } });
    assert.equal(rc.status, 200);
    const remote = rc.body.remote_console as { protocol: string; type: string; url: string };
    assert.equal(remote.protocol, 'vnc');
    assert.match(remote.url, /\/vnc_lite\.html\?token=[A-Za-z0-9_-]{32}$/);
    const legacy = await gw.api('POST', '/v2.1/servers/demo/action', { 'os-getVNCConsole': { type: 'novnc' } });
    assert.equal(legacy.status, 200);
    assert.match((legacy.body.console as { url: string }).url, /token=/);
    const t = new URL(remote.url).searchParams.get('token') ?? '';
    const { version } = await rfbSecurityTypes(wsFor(t), origin());
    assert.equal(version, 'RFB 003.008\n');
  });

  test('legacy /vnc_auto.html and /vnc.html are served; static serving neither redirects nor leaks files', async () => {
    const port = Number(new URL(gw.proxyUrl).port);
    for (const page of ['/vnc_auto.html?token=abc', '/vnc.html', '/vnc_lite.html', '/novnc/core/rfb.js']) {
      const res = await rawGet(port, page);
      assert.equal(res.status, 200, page);
    }
    for (const target of ['//evil.example/x', '///evil.example', '/%2F%2Fevil.example', '/../package.json', '/%2e%2e/package.json',
      '/novnc/../../package.json', '/novnc/%2e%2e%2fpackage.json', '/web/vnc_lite.html', '/novnc/package.json', '/novnc/docs/API.md', '/%00']) {
      const res = await rawGet(port, target);
      assert.equal(res.status, 404, target);
      assert.equal(res.headers.location, undefined, target);
      assert.doesNotMatch(res.body, /"name": "porthole"|"dependencies"/, target);
    }
  });

  test('token → cookie exchange: browsers only, HttpOnly SameSite=Strict cookie on a path of its own, the upgrade reads it there', async () => {
    const token = tokenOf((await gw.mint('demo')).body);
    const exchange = (body: string, headers: Record<string, string> = { origin: origin() }) => fetch(`${gw.proxyUrl}/console-session`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body,
    });
    assert.equal((await exchange(`token=${token}`, { origin: 'http://evil.example' })).status, 403, 'foreign Origin');
    assert.equal((await exchange(`token=${token}`, {})).status, 403, 'no Origin: not a browser page');
    const bad = await exchange(`token=${'q'.repeat(32)}`);
    assert.equal(bad.status, 401);
    assert.deepEqual({ ...(await bad.json() as Record<string, unknown>), message: undefined }, { code: 'PH_ERR_TOKEN_INVALID', message: undefined, wsCloseCode: 4002 });
    assert.equal((await exchange(`token=${'x'.repeat(2000)}`)).status, 400, 'oversized body');
    const ok = await exchange(`token=${token}`);
    assert.equal(ok.status, 200);
    const { path } = await ok.json() as { path: string };
    assert.match(path, /^\/websockify\/c\/[A-Za-z0-9_-]{16}$/);
    const cookie = ok.headers.get('set-cookie') ?? '';
    assert.match(cookie, new RegExp(`^porthole_console=${token}; Path=${path}; Max-Age=(\\d+); HttpOnly; SameSite=Strict$`));
    assert.ok(Number(/Max-Age=(\d+)/.exec(cookie)?.[1]) <= 600, 'the cookie does not outlive the token');
    assert.equal(ok.headers.get('cache-control'), 'no-store');
    const second = await (await exchange(`token=${token}`)).json() as { path: string };
    assert.notEqual(second.path, path, 'every exchange gets its own path');
    const viaCookie = await openConsole(`${gw.wsUrl.replace(/\/websockify$/, '')}${path}`, {
      origin: origin(), headers: { cookie: `porthole_console=${token}` }, wantBytes: 12,
    });
    assert.equal(viaCookie.received.subarray(0, 4).toString(), 'RFB ');
    assert.ok(!gw.logLines.some((l) => l.includes(token)), 'the exchange never logs the token');
  });

  test('GET /v1/sessions lists open consoles with their bytes; DELETE closes one with 4030, which its browser sees', async () => {
    const token = tokenOf((await gw.mint('demo', { protocol: 'vnc', type: 'novnc' })).body);
    const ws = new WebSocket(wsFor(token), ['binary'], { origin: origin() });
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    await new Promise<void>((r) => ws.once('message', () => r())); // the VM's greeting went through
    ws.send(Buffer.from('RFB 003.008\n'));
    await new Promise((r) => setTimeout(r, 100));
    const listed = await gw.api('GET', '/v1/sessions');
    assert.equal(listed.status, 200);
    const sessions = listed.body.sessions as Array<Record<string, unknown>>;
    const mine = sessions.find((s) => s.instance === 'demo' && s.state === 'relaying');
    assert.ok(mine, JSON.stringify(sessions));
    assert.equal(mine.protocol, 'vnc');
    assert.equal(mine.remote, '127.0.0.1');
    assert.ok((mine.bytesToClient as number) >= 12 && (mine.bytesToServer as number) >= 12, JSON.stringify(mine));
    assert.ok(Date.parse(mine.started as string) <= Date.now());
    assert.doesNotMatch(JSON.stringify(listed.body), new RegExp(token.slice(0, 12)), 'no token in the list');
    assert.equal((await gw.api('GET', '/v1/sessions', undefined, null)).status, 401, 'API key required');

    assert.equal((await gw.api('DELETE', `/v1/sessions/${String(mine.id)}`)).status, 204);
    const seen = await closed;
    assert.equal(seen.code, 4030);
    assert.match(seen.reason, /administrator/);
    const again = await gw.api('DELETE', `/v1/sessions/${String(mine.id)}`);
    assert.equal(again.status, 404);
    assert.equal(again.body.code, 'PH_ERR_SESSION_NOT_FOUND');
    assert.ok(!((await gw.api('GET', '/v1/sessions')).body.sessions as Array<Record<string, unknown>>).some((s) => s.id === mine.id), 'gone from the list');
  });

  test('graceful stop: open consoles run through the grace period, then close with 1001', async () => {
    const vm3 = vm; // reuse the running QEMU through a second gateway
    const g3 = await startTestGateway({ builtin: [vm3.entry] });
    const token = tokenOf((await g3.mint('demo')).body);
    const ws = new WebSocket(`${g3.wsUrl}?token=${token}`, ['binary'], { origin: g3.proxyUrl });
    await new Promise((resolve) => ws.once('message', resolve));
    const closed = new Promise<[number, number]>((resolve) => ws.on('close', (code: number) => resolve([code, Date.now()])));
    const start = Date.now();
    const closing = g3.close(400);
    const refused = await openConsole(`${g3.wsUrl}?token=${token}`, { origin: g3.proxyUrl, timeoutMs: 2000 });
    assert.equal(refused.opened, false, 'no new consoles while draining');
    const [code, at] = await closed;
    await closing;
    assert.equal(code, 1001);
    assert.ok(at - start >= 350, `closed after ${at - start} ms`);
  });

  test('no raw token appears in any log line', async () => {
    const g4 = await startTestGateway({ builtin: [vm.entry], debug: true });
    const tokens: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const minted = await g4.mint('demo');
        const token = tokenOf(minted.body);
        tokens.push(token);
        await fetch(minted.body.url as string);
        await openConsole(`${g4.wsUrl}?token=${token}`, { origin: g4.proxyUrl, wantBytes: 12 });
      }
      await openConsole(`${g4.wsUrl}?token=${'z'.repeat(32)}`, { origin: g4.proxyUrl });
      tokens.push('z'.repeat(32));
    } finally {
      await g4.close();
    }
    const log = g4.logLines.join('');
    assert.ok(g4.logLines.length > 10, 'debug logging produced lines');
    for (const t of tokens) assert.ok(!log.includes(t), 'a raw token was logged');
    assert.match(log, /"token":"[0-9a-f]{8}"/, 'sessions are logged with a short hash prefix');
  });
});
