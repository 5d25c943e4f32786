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
