/**
 * Attacks from outside (issue: hardening): refused upgrades that cost the proxy nothing, the
 * failed-token limit under concurrency with a networked store, known tokens that are not guesses,
 * and subprotocol checks before any VNC connection. Each test failed before its fix.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startRedis, type RunningService } from '../helpers/services.js';
import { openConsole } from '../helpers/ws-client.js';

/** What a client that never answers the close frame saw. */
interface RudeOutcome {
  readonly status: number;
  /** Close code in the first frame after a 101, if any. */
  readonly closeCode: number | undefined;
  /** ms from the answer to the proxy closing the TCP connection (undefined: still open at the end). */
  readonly closedAfterMs: number | undefined;
}

/**
 * A raw WebSocket client that reads the proxy's answer and never replies to a close frame; with
 * `flood`, it then sends (the start of) one almost-max-size frame that it never finishes.
 */
function rudeClient(port: number, path: string, origin: string, options: { flood?: Buffer; waitMs?: number; bindAddress?: string } = {}): Promise<RudeOutcome> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host: '127.0.0.1', port, ...(options.bindAddress ? { localAddress: options.bindAddress } : {}) });
    let buf = Buffer.alloc(0);
    let answeredAt: number | undefined;
    let status = 0;
    let closeCode: number | undefined;
    let closedAfterMs: number | undefined;
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ status, closeCode, closedAfterMs });
    };
    const timer = setTimeout(finish, options.waitMs ?? 4000);
    s.on('error', () => undefined);
    s.on('connect', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\nOrigin: ${origin}\r\n\r\n`);
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1 || answeredAt !== undefined) return;
      answeredAt = Date.now();
      status = Number(buf.subarray(9, 12).toString());
      const frame = buf.subarray(end + 4);
      if (status === 101 && frame.length >= 4 && frame[0] === 0x88) closeCode = frame.readUInt16BE(2);
      if (status === 101 && options.flood) {
        // A masked binary frame header announcing (4 MiB - 1) bytes, then most of its payload.
        const header = Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 0x3f, 0xff, 0xff, 1, 2, 3, 4]);
        s.write(header);
        s.write(options.flood);
      }
    });
    s.on('close', () => {
      if (closedAfterMs === undefined && answeredAt !== undefined) closedAfterMs = Date.now() - answeredAt;
      finish();
    });
  });
}

describe('hardening', () => {
  let vnc: Server;
  let vncPort: number;
  let vncConnections = 0;
  const vncSockets = new Set<Socket>();

  before(async () => {
    vnc = createServer((s) => {
      vncConnections++;
      vncSockets.add(s);
      s.on('close', () => vncSockets.delete(s));
      s.on('error', () => s.destroy());
      s.write('RFB 003.008\n');
    });
    await new Promise<void>((r) => vnc.listen(0, '127.0.0.1', r));
    vncPort = (vnc.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of vncSockets) s.destroy();
    await new Promise((r) => vnc.close(r));
  });

  const gateway = (ini: string) => startTestGateway({
    ini: `[cache]\nbackend = memory\n${ini}`,
    builtin: [{ name: 'a', host: '127.0.0.1', port: vncPort, protocol: 'vnc' }],
  });
  const proxyPort = (gw: TestGateway) => Number(new URL(gw.proxyUrl).port);

  test('a refused upgrade is not a session: it holds no slot and its socket is gone within 2 s of the close frame', async () => {
    const gw = await gateway('[console]\nmax_sessions = 5\nmax_failed_tokens = 0\n');
    try {
      const rude = await Promise.all(Array.from({ length: 40 }, () => rudeClient(proxyPort(gw), '/websockify?token=wrong', gw.proxyUrl)));
      assert.ok(rude.every((r) => r.status === 101 && r.closeCode === 4002), JSON.stringify(rude.slice(0, 3)));
      for (const r of rude) assert.ok(r.closedAfterMs !== undefined && r.closedAfterMs <= 2000, `socket closed after ${r.closedAfterMs} ms`);
      // While rude clients still linger (new ones, not yet closed), valid consoles open.
      const lingering = Array.from({ length: 20 }, () => rudeClient(proxyPort(gw), '/websockify?token=wrong', gw.proxyUrl));
      await new Promise((r) => setTimeout(r, 100));
      const token = (await gw.mint('a')).body.token as string;
      const held: WebSocket[] = [];
      for (let i = 0; i < 5; i++) {
        const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
        const first = await new Promise<'message' | number>((r) => { ws.once('message', () => r('message')); ws.once('close', (c) => r(c)); });
        assert.equal(first, 'message', `valid console ${i + 1} of 5 was refused with ${first}`);
        held.push(ws);
      }
      assert.equal(gw.gateway.sessionCount, 5);
      for (const w of held) w.terminate();
      await Promise.all(lingering);
    } finally {
      await gw.close();
    }
  });

  test('a refused connection is not read: a client sending a never-finished 4 MiB frame costs no memory', async () => {
    const gw = await gateway('[console]\nmax_failed_tokens = 0\n');
    try {
      const flood = Buffer.alloc(4 * 1024 * 1024 - 64, 0x61); // one buffer shared by every client
      global.gc?.();
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().arrayBuffers); }, 20);
      await Promise.all(Array.from({ length: 30 }, () => rudeClient(proxyPort(gw), '/websockify?token=wrong', gw.proxyUrl, { flood, waitMs: 2500 })));
      clearInterval(sampler);
      const grownMiB = (peak - before - flood.length) / 1048576;
      assert.ok(grownMiB < 24, `buffers grew by ${grownMiB.toFixed(1)} MiB for 30 refused connections (was ~4 MiB each)`);
    } finally {
      await gw.close();
    }
  });

  test('retrying a revoked token is not a guess: no lock-out, and a new token from the same address works', async () => {
    const gw = await gateway('[console]\nmax_failed_tokens = 5\n');
    try {
      const old = (await gw.mint('a')).body.token as string;
      assert.equal((await gw.api('DELETE', '/v1/instances/a/consoles')).status, 200);
      for (let i = 0; i < 12; i++) {
        const out = await openConsole(`${gw.wsUrl}?token=${old}`, { origin: gw.proxyUrl });
        assert.equal(out.closeCode, 4004, `retry ${i + 1}: ${out.closeCode ?? out.httpStatus}`);
      }
      const fresh = (await gw.mint('a')).body.token as string;
      const ok = await openConsole(`${gw.wsUrl}?token=${fresh}`, { origin: gw.proxyUrl, wantBytes: 12 });
      assert.equal(ok.httpStatus, undefined);
      assert.equal(ok.received.toString('latin1', 0, 12), 'RFB 003.008\n');
    } finally {
      await gw.close();
    }
  });

  test('a subprotocol list without "binary" gets HTTP 400 before any VNC connection; none offered is accepted', async () => {
    const gw = await gateway('');
    try {
      const token = (await gw.mint('a')).body.token as string;
      const before = vncConnections;
      const refused = await new Promise<number>((resolve) => {
        const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['chat'], { origin: gw.proxyUrl });
        ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
        ws.on('open', () => { resolve(101); ws.terminate(); });
        ws.on('error', () => resolve(-1)); // e.g. a 101 without the offered subprotocol
      });
      assert.equal(refused, 400);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(vncConnections, before, 'no connection to the VNC server was opened');
      const none = await new Promise<string>((resolve) => {
        const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, { origin: gw.proxyUrl });
        ws.once('message', (d: Buffer) => { resolve(d.toString('latin1')); ws.terminate(); });
        ws.on('error', () => resolve('error'));
      });
      assert.equal(none, 'RFB 003.008\n');
    } finally {
      await gw.close();
    }
  });

  test('a 255-character instance name can be minted and revoked (regression: 414 on DELETE); framework errors keep the {code,message} shape', async () => {
    const long = 'n'.repeat(255);
    const gw = await startTestGateway({
      ini: '[cache]\nbackend = memory\n',
      builtin: [{ name: long, host: '127.0.0.1', port: vncPort, protocol: 'vnc' }],
    });
    try {
      const minted = await gw.mint(long);
      assert.equal(minted.status, 201, JSON.stringify(minted.body));
      const del = await gw.api('DELETE', `/v1/instances/${long}/consoles`);
      assert.equal(del.status, 200, JSON.stringify(del.body));
      assert.deepEqual(del.body, { instance: long, revoked: 1 });
      const out = await openConsole(`${gw.wsUrl}?token=${minted.body.token as string}`, { origin: gw.proxyUrl });
      assert.equal(out.closeCode, 4004);
      const nova = await gw.api('POST', `/v2.1/servers/${long}/remote-consoles`, { remote_console: { protocol: 'vnc', type: 'novnc' } });
      assert.equal(nova.status, 200, JSON.stringify(nova.body));
      const tooLong = await gw.api('DELETE', `/v1/instances/${'n'.repeat(256)}/consoles`);
      assert.equal(tooLong.status, 400);
      assert.equal(tooLong.body.code, 'PH_ERR_API_BAD_REQUEST');
      const huge = await gw.api('DELETE', `/v1/instances/${'n'.repeat(5000)}/consoles`);
      assert.equal(huge.status, 414);
      assert.deepEqual(Object.keys(huge.body).sort(), ['code', 'message']);
    } finally {
      await gw.close();
    }
  });

  test('revoke by UUID after the instance left the static inventory revokes its tokens (regression: 204, nothing revoked)', async () => {
    const { writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { runTempDir } = await import('../helpers/run.js');
    const dir = runTempDir('inventory');
    const file = join(dir, 'inventory.ini');
    const uuid = '9169fdb2-1234-4321-abcd-0123456789ab';
    await writeFile(file, `[gone-vm]\nhost = 127.0.0.1\nport = ${vncPort}\nuuid = ${uuid}\n[kept-vm]\nhost = 127.0.0.1\nport = ${vncPort}\n`);
    const gw = await startTestGateway({ ini: `[cache]\nbackend = memory\n[static]\ninventory_file = ${file}\n` });
    try {
      const token = (await gw.mint('gone-vm')).body.token as string;
      await writeFile(file, `[kept-vm]\nhost = 127.0.0.1\nport = ${vncPort}\n`);
      assert.equal((await gw.mint('gone-vm')).status, 404, 'the inventory forgot it');
      const del = await gw.api('DELETE', `/v1/instances/${uuid}/consoles`);
      assert.deepEqual(del.body, { instance: uuid, revoked: 1 });
      const out = await openConsole(`${gw.wsUrl}?token=${token}`, { origin: gw.proxyUrl });
      assert.equal(out.closeCode, 4004);
    } finally {
      await gw.close();
      const { rm } = await import('node:fs/promises');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('revoke closes a console that is already open on the node that got the DELETE, at once, with 4004', async () => {
    const gw = await gateway('');
    try {
      const token = (await gw.mint('a')).body.token as string;
      const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
      await new Promise((r) => ws.once('message', r));
      const closed = new Promise<[number, number]>((r) => {
        ws.once('close', (code) => r([code, Date.now()]));
        setTimeout(() => { r([-1, Date.now()]); ws.terminate(); }, 3000); // still open: not closed by the revoke
      });
      const t0 = Date.now();
      assert.equal((await gw.api('DELETE', '/v1/instances/a/consoles')).status, 200);
      const [code, at] = await closed;
      assert.equal(code, 4004);
      assert.ok(at - t0 < 1000, `closed after ${at - t0} ms`);
    } finally {
      await gw.close();
    }
  });

  test('the public /healthz shows only up/down and the version; the API with a key has the details, never a secret-looking line (regression: inventory line echoed)', async () => {
    const { writeFile, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { runTempDir } = await import('../helpers/run.js');
    const dir = runTempDir('inventory');
    const file = join(dir, 'inventory.ini');
    await writeFile(file, `[vm]\nhost = 127.0.0.1\nport = ${vncPort}\n`);
    const gw = await startTestGateway({ ini: `[static]\ninventory_file = ${file}\n` });
    try {
      await writeFile(file, `[vm]\nhost = 127.0.0.1\nport = ${vncPort}\npassword hunter2\n`); // a broken edit
      await new Promise((r) => setTimeout(r, 50));
      for (const base of [gw.proxyUrl, gw.apiUrl]) {
        const res = await fetch(`${base}/healthz`);
        const text = await res.text();
        assert.deepEqual(Object.keys(JSON.parse(text) as object).sort(), ['ok', 'version'], `${base}/healthz: ${text}`);
        for (const leak of ['hunter2', 'inventory.ini', gw.dir, 'sqlite']) assert.ok(!text.includes(leak), `${base}/healthz shows ${leak}: ${text}`);
      }
      const detailed = await gw.api('GET', '/healthz');
      const text = JSON.stringify(detailed.body);
      assert.match(text, /inventory\.ini:4/, 'the operator sees where');
      assert.ok(!text.includes('hunter2'), `the secret-looking line is never echoed: ${text}`);
      assert.ok(!gw.logLines.some((l) => l.includes('hunter2')), 'nor logged');
    } finally {
      await gw.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('[vnc] enabled = false refuses VNC consoles at mint and at the proxy (regression: accepted and ignored)', async () => {
    const gw = await startTestGateway({
      ini: '[cache]\nbackend = memory\n[vnc]\nenabled = false\n',
      builtin: [{ name: 'a', host: '127.0.0.1', port: vncPort, protocol: 'vnc' }],
    });
    try {
      const minted = await gw.mint('a');
      assert.equal(minted.status, 400);
      assert.equal(minted.body.code, 'PH_ERR_CONSOLE_TYPE_UNSUPPORTED');
      assert.match(minted.body.message as string, /\[vnc\] enabled = false/);
      // A VNC token in the store (minted by another node or before the change) is refused too.
      const { token } = await gw.gateway.store.authorize({ instance: 'a', instanceUuid: undefined, protocol: 'vnc', consoleType: 'novnc', host: '127.0.0.1', port: vncPort, accessUrlBase: gw.proxyUrl }, 60_000);
      const before = vncConnections;
      const out = await openConsole(`${gw.wsUrl}?token=${token}`, { origin: gw.proxyUrl });
      assert.equal(out.closeCode, 4400);
      assert.equal(vncConnections, before);
    } finally {
      await gw.close();
    }
  });

  test('browsers that leave while the proxy is still negotiating with the VNC server are noticed at once (regression: counted until the handshake timeout)', async () => {
    const silent = createServer((sock) => { sock.on('error', () => sock.destroy()); }); // accepts, never greets
    const silentSockets = new Set<Socket>();
    silent.on('connection', (sock) => { silentSockets.add(sock); sock.on('close', () => silentSockets.delete(sock)); });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const gw = await startTestGateway({
      ini: '[cache]\nbackend = memory\n[vnc]\nauth_schemes = vnc,none\n[console]\nhandshake_timeout = 30\nmax_sessions_per_instance = 0\n',
      builtin: [{ name: 'mute', host: '127.0.0.1', port: (silent.address() as AddressInfo).port, protocol: 'vnc' }],
    });
    try {
      const token = (await gw.mint('mute')).body.token as string;
      const clients = await Promise.all(Array.from({ length: 20 }, () => new Promise<WebSocket>((resolve) => {
        const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
        ws.once('open', () => resolve(ws));
      })));
      const deadline = Date.now() + 2000;
      while (silentSockets.size < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(gw.gateway.sessionCount, 20, 'twenty consoles negotiating');
      for (const ws of clients) ws.close(1000);
      const gone = Date.now() + 1500;
      while ((gw.gateway.sessionCount > 0 || silentSockets.size > 0) && Date.now() < gone) await new Promise((r) => setTimeout(r, 20));
      assert.equal(gw.gateway.sessionCount, 0, 'sessions still counted 1.5 s after their browsers left');
      assert.equal(silentSockets.size, 0, 'their VNC connections are closed too');
    } finally {
      await gw.close();
      for (const sock of silentSockets) sock.destroy();
      silent.close();
    }
  });

  test('HTTP answers say what happened: slow headers 408, huge headers 431, OPTIONS/PUT 405 (regression: 400, 400, 404)', async () => {
    const gw = await gateway('[console]\nhandshake_timeout = 1\n');
    const raw = (send: (s: Socket) => void) => new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: proxyPort(gw) }, () => send(s));
      let got = '';
      s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
      s.on('error', () => resolve(got));
      s.on('close', () => resolve(got));
    });
    try {
      const slow = await raw((s) => s.write('GET /websockify HTTP/1.1\r\nHost: x\r\n'));
      assert.match(slow, /^HTTP\/1\.1 408 /);
      const huge = await raw((s) => s.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
      assert.match(huge, /^HTTP\/1\.1 431 /);
      for (const method of ['OPTIONS', 'PUT']) {
        const res = await fetch(`${gw.proxyUrl}/vnc_lite.html`, { method, ...(method === 'PUT' ? { body: 'x' } : {}) });
        assert.equal(res.status, 405, method);
        assert.equal(res.headers.get('allow'), 'GET, HEAD');
        assert.deepEqual(Object.keys((await res.json()) as object).sort(), ['code', 'message']);
      }
    } finally {
      await gw.close();
    }
  });

  test('a message too big is logged as 1009 even when the browser then just hangs up (regression: logged as 1006)', async () => {
    const gw = await gateway('[console]\nmax_message_size = 1024\n');
    try {
      const token = (await gw.mint('a')).body.token as string;
      await rudeClient(proxyPort(gw), `/websockify?token=${token}`, gw.proxyUrl, { flood: Buffer.alloc(16), waitMs: 500 });
      const deadline = Date.now() + 2000;
      let line: string | undefined;
      while ((line = gw.logLines.find((l) => l.includes('console session closed'))) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal((JSON.parse(line ?? '{}') as { closeCode?: number }).closeCode, 1009, line);
      assert.ok(gw.logLines.some((l) => l.includes('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')), 'the protocol error is logged with ws\'s code');
    } finally {
      await gw.close();
    }
  });

  describe('max_failed_tokens with a networked store (Redis, 20 ms away)', () => {
    let redis: RunningService;
    let slowLink: Server;
    let slowPort: number;
    before(async () => {
      redis = await startRedis();
      // A store on another host: every chunk each way arrives 20 ms late, so look-ups overlap.
      slowLink = createServer((client) => {
        const server = connect({ host: '127.0.0.1', port: redis.port });
        const delayed = (to: Socket) => (d: Buffer) => { setTimeout(() => { if (!to.destroyed) to.write(d); }, 20); };
        client.on('data', delayed(server));
        server.on('data', delayed(client));
        for (const [a, b] of [[client, server], [server, client]] as const) {
          a.on('error', () => b.destroy());
          a.on('close', () => b.destroy());
        }
      });
      await new Promise<void>((r) => slowLink.listen(0, '127.0.0.1', r));
      slowPort = (slowLink.address() as AddressInfo).port;
    });
    after(async () => {
      slowLink?.close();
      await redis?.stop();
    });

    test('500 simultaneous guesses from one address against a limit of 20: exactly 20 look-ups, the rest 429', async () => {
      const gw = await startTestGateway({
        ini: `[cache]\nbackend = redis\nredis_server = 127.0.0.1:${slowPort}\n[console]\nmax_failed_tokens = 20\n`,
        builtin: [{ name: 'a', host: '127.0.0.1', port: vncPort, protocol: 'vnc' }],
      });
      try {
        const outcomes = await Promise.all(Array.from({ length: 500 }, () =>
          rudeClient(proxyPort(gw), `/websockify?token=${randomBytes(24).toString('base64url')}`, gw.proxyUrl, { waitMs: 8000 })));
        const looked = outcomes.filter((o) => o.closeCode === 4002).length;
        const limited = outcomes.filter((o) => o.status === 429).length;
        assert.equal(looked, 20, `${looked} guesses reached the store`);
        assert.equal(limited, 480);
      } finally {
        await gw.close();
      }
    });

    test('a revoke during 50 in-flight connects from one address locks nobody out (regression: 22 × 429, then the next valid connect refused)', async () => {
      const gw = await startTestGateway({
        ini: `[cache]\nbackend = redis\nredis_server = 127.0.0.1:${slowPort}\n[console]\nmax_failed_tokens = 20\nmax_sessions_per_instance = 0\n`,
        builtin: [{ name: 'nat-vm', host: '127.0.0.1', port: vncPort, protocol: 'vnc' }],
      });
      try {
        const token = (await gw.mint('nat-vm')).body.token as string;
        // Connects keep arriving (every 3 ms) while the revoke goes through: many see the token revoked.
        const revoke = gw.api('DELETE', '/v1/instances/nat-vm/consoles');
        const inflight: Array<Promise<RudeOutcome>> = [];
        for (let i = 0; i < 50; i++) {
          inflight.push(rudeClient(proxyPort(gw), `/websockify?token=${token}`, gw.proxyUrl, { waitMs: 3000 }));
          await new Promise((r) => setTimeout(r, 3));
        }
        assert.equal((await revoke).status, 200);
        const outcomes = await Promise.all(inflight);
        assert.ok(outcomes.filter((o) => o.closeCode === 4004).length > 20, `${outcomes.filter((o) => o.closeCode === 4004).length} saw the revoke`);
        assert.equal(outcomes.filter((o) => o.status === 429).length, 0, JSON.stringify(outcomes.map((o) => o.status)));
        const fresh = (await gw.mint('nat-vm')).body.token as string;
        const next = await openConsole(`${gw.wsUrl}?token=${fresh}`, { origin: gw.proxyUrl, wantBytes: 12 });
        assert.equal(next.httpStatus, undefined, 'the next valid connect from that address is not refused');
        assert.equal(next.received.toString('latin1', 0, 12), 'RFB 003.008\n');
      } finally {
        await gw.close();
      }
    });

    test('a revoke on one node closes the consoles open on another node (token re-check) with 4004', async () => {
      const node = (recheck: number) => startTestGateway({
        ini: `[cache]\nbackend = redis\nredis_server = ${redis.address}\n[console]\ntoken_recheck_interval = ${recheck}\n`,
        builtin: [{ name: 'shared-vm', host: '127.0.0.1', port: vncPort, protocol: 'vnc' }],
      });
      const [n1, n2] = [await node(1), await node(1)];
      try {
        const token = (await n1.mint('shared-vm')).body.token as string;
        const ws = new WebSocket(`${n2.wsUrl}?token=${token}`, ['binary'], { origin: n2.proxyUrl });
        await new Promise((r) => ws.once('message', r));
        const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
        const t0 = Date.now();
        assert.equal((await n1.api('DELETE', '/v1/instances/shared-vm/consoles')).status, 200);
        assert.equal(await closed, 4004);
        assert.ok(Date.now() - t0 < 3000, `closed after ${Date.now() - t0} ms`);
      } finally {
        await n1.close();
        await n2.close();
      }
    });
  });
});
