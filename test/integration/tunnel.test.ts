/**
 * `porthole tunnel`: real native VNC clients through the authenticating proxy to a real QEMU —
 * vncsnapshot (no X), TigerVNC's vncviewer under Xvfb (screenshot with xwd) — by console URL and by
 * instance name (minted through the API, minted again once the token expired); a dead token's
 * reason is printed, not a hang.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { BIN, runCli } from '../helpers/cli.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startQemuSpice, startQemuVnc } from '../helpers/qemu.js';
import { makeTestPki } from '../helpers/pki.js';
import { runTempDir, spawnOwned } from '../helpers/run.js';

/** Mean brightness (0–1) of an image file, by ImageMagick. */
function meanBrightness(file: string): number {
  return Number(execFileSync('/usr/bin/convert', [file, '-format', '%[fx:mean]', 'info:'], { encoding: 'utf8' }));
}

/** The RFB greeting through a local port (a raw native client). */
function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => { s.destroy(); resolve(buf); }, 10_000);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.length >= 12) { clearTimeout(timer); s.destroy(); resolve(buf); }
    });
    s.on('close', () => { clearTimeout(timer); resolve(buf); });
    s.on('error', reject);
  });
}

/** `porthole tunnel … --json` in the background: its port, its stderr, and a stop. */
async function startTunnel(args: string[]): Promise<{ port: number; stderr: () => string; child: ChildProcess; closed: Promise<unknown>; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [BIN, 'tunnel', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const closed = new Promise((r) => child.once('close', r));
  const deadline = Date.now() + 15_000;
  while (!stdout.includes('\n') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 25));
  const port = (JSON.parse(stdout.split('\n')[0] || '{}') as { port?: number }).port;
  if (port === undefined) {
    child.kill('SIGKILL');
    throw new Error(`tunnel did not start: ${stdout} ${stderr}`);
  }
  return {
    port, child, stderr: () => stderr, closed,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('porthole tunnel: native clients through the proxy', () => {
  let vm: DemoVm;
  let gw: TestGateway;
  /** A gateway whose tokens live 2 s: expiry without long waits. */
  let shortLived: TestGateway;
  let dir: string;

  before(async () => {
    vm = await startQemuVnc();
    const builtin = [{ ...vm.entry, name: 'vm' }];
    gw = await startTestGateway({ builtin });
    shortLived = await startTestGateway({ builtin, ini: '[consoleauth]\ntoken_ttl = 2\n' });
    dir = runTempDir('tunnel');
  });

  after(async () => {
    await gw?.close();
    await shortLived?.close();
    await vm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('vncsnapshot through `tunnel URL --exec`: the VM\'s screen, and the console was the proxy\'s', async () => {
    const url = (await gw.mint('vm')).body.url as string;
    const shot = join(dir, 'snapshot.jpg');
    const port = await freePort();
    const res = await runCli(['tunnel', url, '--listen', `127.0.0.1:${port}`, '--exec', `vncsnapshot -quiet 127.0.0.1::{port} ${shot}`], 30_000);
    assert.equal(res.code, 0, res.stderr);
    assert.ok(existsSync(shot), 'vncsnapshot wrote the screenshot');
    const mean = meanBrightness(shot);
    assert.ok(mean > 0.002, `the screenshot shows the SeaBIOS text (mean brightness ${mean})`);
    assert.ok(gw.logLines.some((l) => l.includes('console session relaying')), 'the connection went through the proxy');
    assert.ok(!res.stderr.includes((await gw.mint('vm')).body.token as string));
  });

  test('by instance name: minted through the API, several connections at once, minted again after the token expired', async () => {
    const tunnel = await startTunnel(['vm', '--config-file', shortLived.configFile]);
    try {
      const both = await Promise.all([greeting(tunnel.port), greeting(tunnel.port)]);
      assert.deepEqual(both.map((g) => g.slice(0, 12)), ['RFB 003.008\n', 'RFB 003.008\n']);
      await new Promise((r) => setTimeout(r, 2500)); // the first token is dead now
      assert.equal((await greeting(tunnel.port)).slice(0, 12), 'RFB 003.008\n', 'a fresh token was minted');
    } finally {
      await tunnel.stop();
    }
  });

  test('a wss:// console proxy with a private CA (--ca), minting through --api and --api-key-file', async () => {
    const pki = makeTestPki();
    const tlsGw = await startTestGateway({ builtin: [{ ...vm.entry, name: 'vm' }], scheme: 'https', ini: `[DEFAULT]\ncert = ${pki.serverCert}\nkey = ${pki.serverKey}\n` });
    const keyFile = join(dir, 'api-key');
    await writeFile(keyFile, `# the API key\n${tlsGw.apiKey}\n`);
    const tunnel = await startTunnel(['vm', '--api', tlsGw.apiUrl, '--api-key-file', keyFile, '--ca', pki.caCert]);
    try {
      assert.equal((await greeting(tunnel.port)).slice(0, 12), 'RFB 003.008\n', 'through wss:// with the private CA');
    } finally {
      await tunnel.stop();
      await tlsGw.close();
      await rm(pki.dir, { recursive: true, force: true });
    }
    const noCa = await runCli(['tunnel', 'vm', '--api', gw.apiUrl, '--api-key-file', join(dir, 'missing')]);
    assert.equal(noCa.code, 1);
    assert.match(noCa.stderr, /--api-key-file .*missing: ENOENT/);
  });

  test('a console URL whose token expired: the local client is closed and the reason printed, no hang', async () => {
    const url = (await shortLived.mint('vm')).body.url as string;
    await new Promise((r) => setTimeout(r, 2500));
    const tunnel = await startTunnel([url, '--once']);
    try {
      const started = Date.now();
      assert.equal(await greeting(tunnel.port), '', 'nothing but a close');
      assert.ok(Date.now() - started < 5000);
      await tunnel.closed; // exited and its output read to the end
      assert.match(tunnel.stderr(), /refused: 4003 PH_ERR_TOKEN_EXPIRED/);
    } finally {
      await tunnel.stop();
    }
    const bad = await runCli(['tunnel', 'http://127.0.0.1:1/vnc_lite.html']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not a console URL with a token/);
    const unknown = await runCli(['tunnel', 'no-such-vm', '--config-file', gw.configFile]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /PH_ERR_INSTANCE_NOT_FOUND/);
  });

  /** An Xvfb of this test: its env for clients, a root-window screenshot's brightness, a stop. */
  async function startXvfb() {
    let display = 70;
    while (existsSync(`/tmp/.X${display}-lock`) || existsSync(`/tmp/.X11-unix/X${display}`)) display++;
    const xvfb = spawnOwned('Xvfb', [`:${display}`, '-screen', '0', '1024x768x24', '-nolisten', 'tcp', '-br'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(`/tmp/.X11-unix/X${display}`); i++) await new Promise((r) => setTimeout(r, 50));
    const env = { ...process.env, DISPLAY: `:${display}` };
    const shot = join(dir, `root-${display}.png`);
    return {
      env, shot,
      screen: () => {
        execFileSync('sh', ['-c', `xwd -root -silent | /usr/bin/convert xwd:- ${shot}`], { env });
        return meanBrightness(shot);
      },
      windows: () => execFileSync('xwininfo', ['-root', '-tree'], { env, encoding: 'utf8' }),
      async stop() {
        xvfb.kill('SIGTERM');
        await new Promise((r) => xvfb.once('exit', r));
      },
    };
  }

  test('remote-viewer under Xvfb through `tunnel --protocol spice --exec`: a password-protected SPICE VM, no password given, one console of several channels', async () => {
    const spice = await startQemuSpice('rv-s3cret');
    const spicePort = await freePort();
    const g = await startTestGateway({
      builtin: [{ name: 'sp', host: '127.0.0.1', port: spice.port, protocol: 'vnc', spice: { port: spice.port, password: 'rv-s3cret' } }],
      ini: `[spice]\nenabled = true\nhtml5proxy_host = 127.0.0.1\nhtml5proxy_port = ${spicePort}\nhtml5proxy_base_url = http://127.0.0.1:${spicePort}/spice_auto.html\n`,
    });
    const x = await startXvfb();
    const tunnel = spawn(process.execPath, [BIN, 'tunnel', 'sp', '--protocol', 'spice', '--config-file', g.configFile, '--exec', 'remote-viewer spice://127.0.0.1:{port}'],
      { env: x.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    tunnel.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      const blank = x.screen();
      let lit = blank;
      let consoles: Array<{ protocol: string; channels: number }> = [];
      for (let i = 0; i < 80 && (lit <= blank + 0.002 || (consoles[0]?.channels ?? 0) < 3); i++) {
        await new Promise((r) => setTimeout(r, 250));
        lit = x.screen();
        consoles = ((await g.api('GET', '/v1/sessions')).body.sessions as typeof consoles).filter((s) => s.protocol === 'spice');
      }
      assert.ok(lit > blank + 0.002, `remote-viewer's window shows the guest (mean ${lit} vs blank ${blank}); tunnel said: ${stderr}`);
      assert.match(x.windows(), /remote-viewer/);
      assert.equal(consoles.length, 1, JSON.stringify(consoles));
      assert.ok((consoles[0]?.channels ?? 0) >= 3, `one console, several SPICE channels: ${JSON.stringify(consoles)}`);
      await mkdir(join(process.cwd(), 'test-output', 'e2e'), { recursive: true });
      await copyFile(x.shot, join(process.cwd(), 'test-output', 'e2e', 'remote-viewer-tunnel.png'));
    } finally {
      const exited = new Promise((r) => tunnel.once('exit', r));
      tunnel.kill('SIGTERM'); // and with it the remote-viewer it started
      await exited;
      await x.stop();
      await g.close();
      await spice.stop();
    }
  });

  test('remote-viewer with the .vv file from the API (type native): a password-protected SPICE VM through the CONNECT endpoint; an expired .vv is refused with its reason', async () => {
    const spice = await startQemuSpice('vv-s3cret');
    const spicePort = await freePort();
    const g = await startTestGateway({
      builtin: [{ name: 'sp', host: '127.0.0.1', port: spice.port, protocol: 'vnc', spice: { port: spice.port, password: 'vv-s3cret' } }],
      ini: `[spice]\nenabled = true\nhtml5proxy_host = 127.0.0.1\nhtml5proxy_port = ${spicePort}\nhtml5proxy_base_url = http://127.0.0.1:${spicePort}/spice_auto.html\n[consoleauth]\ntoken_ttl = 3\n`,
    });
    const x = await startXvfb();
    let viewer: ChildProcess | undefined;
    try {
      const res = await fetch(`${g.apiUrl}/v1/consoles`, {
        method: 'POST', headers: { Authorization: `Bearer ${g.apiKey}`, 'Content-Type': 'application/json', Accept: 'application/x-virt-viewer' },
        body: JSON.stringify({ instance: 'sp', protocol: 'spice', type: 'native' }),
      });
      assert.equal(res.status, 201);
      assert.match(res.headers.get('content-type') ?? '', /application\/x-virt-viewer/);
      const vv = await res.text();
      assert.match(vv, /^\[virt-viewer\]\ntype=spice\n/);
      assert.match(vv, new RegExp(`proxy=http://127\\.0\\.0\\.1:${spicePort}\n`));
      assert.match(vv, /delete-this-file=1/);
      assert.doesNotMatch(vv, /vv-s3cret/, 'the VM\'s password is not in the file');
      const file = join(dir, 'console.vv');
      await writeFile(file, vv);
      const blank = x.screen();
      viewer = spawnOwned('remote-viewer', [file], { env: x.env, stdio: 'ignore' });
      let lit = blank;
      let consoles: Array<{ protocol: string; channels: number }> = [];
      for (let i = 0; i < 80 && (lit <= blank + 0.002 || (consoles[0]?.channels ?? 0) < 3); i++) {
        await new Promise((r) => setTimeout(r, 250));
        lit = x.screen();
        consoles = ((await g.api('GET', '/v1/sessions')).body.sessions as typeof consoles).filter((c) => c.protocol === 'spice');
      }
      assert.ok(lit > blank + 0.002, `remote-viewer shows the guest (mean ${lit} vs blank ${blank})`);
      assert.equal(consoles.length, 1, JSON.stringify(consoles));
      assert.ok((consoles[0]?.channels ?? 0) >= 3, JSON.stringify(consoles));
      assert.ok(g.logLines.some((l) => l.includes('"via":"CONNECT"')), 'the channels came through the CONNECT endpoint');
      await mkdir(join(process.cwd(), 'test-output', 'e2e'), { recursive: true });
      await copyFile(x.shot, join(process.cwd(), 'test-output', 'e2e', 'remote-viewer-vv.png'));
      viewer.kill('SIGKILL');
      // An expired .vv: the endpoint answers the CONNECT with the reason, remote-viewer says it cannot connect.
      const host = /^host=(.*)$/m.exec(vv)?.[1] ?? '';
      await new Promise((r) => setTimeout(r, 3500));
      const answer = await new Promise<string>((resolve, reject) => {
        const sock = connect(spicePort, '127.0.0.1', () => sock.write(`CONNECT ${host}:5900 HTTP/1.0\r\nHost: ${host}:5900\r\n\r\n`));
        let text = '';
        const timer = setTimeout(() => { sock.destroy(); resolve(`${text} (timeout)`); }, 5000);
        sock.on('data', (d: Buffer) => { text += d.toString(); });
        sock.on('close', () => { clearTimeout(timer); resolve(text); });
        sock.on('error', reject);
      });
      assert.match(answer, /^HTTP\/1\.0 401 PH_ERR_TOKEN_EXPIRED\r\n/);
      assert.ok(!answer.endsWith('(timeout)'), 'answered and closed, no hang');
      const before = g.logLines.length;
      assert.ok(!existsSync(file), 'remote-viewer deleted the file it read (delete-this-file=1)');
      await writeFile(file, vv);
      viewer = spawnOwned('remote-viewer', [file], { env: x.env, stdio: 'ignore' });
      for (let i = 0; i < 40 && !g.logLines.slice(before).some((l) => l.includes('PH_ERR_TOKEN_EXPIRED')); i++) await new Promise((r) => setTimeout(r, 250));
      assert.ok(g.logLines.slice(before).some((l) => l.includes('PH_ERR_TOKEN_EXPIRED') && l.includes('CONNECT')), 'remote-viewer\'s CONNECT was refused as expired');
    } finally {
      viewer?.kill('SIGKILL');
      await x.stop();
      await g.close();
      await spice.stop();
    }
  });

  test('TigerVNC vncviewer under Xvfb through the tunnel shows the VM (xwd screenshot)', async () => {
    const x = await startXvfb();
    const env = x.env;
    const tunnel = await startTunnel(['vm', '--config-file', gw.configFile]);
    let viewer: ChildProcess | undefined;
    try {
      const shot = x.shot;
      const screen = x.screen;
      const blank = screen();
      viewer = spawnOwned('vncviewer', [`127.0.0.1::${tunnel.port}`], { env, stdio: 'ignore' });
      let lit = blank;
      for (let i = 0; i < 60 && lit <= blank + 0.001; i++) {
        await new Promise((r) => setTimeout(r, 250));
        lit = screen();
      }
      assert.ok(lit > blank + 0.001, `the vncviewer window shows the guest (mean ${lit} vs blank ${blank})`);
      const tree = execFileSync('xwininfo', ['-root', '-tree'], { env, encoding: 'utf8' });
      assert.match(tree, /TigerVNC/);
      await mkdir(join(process.cwd(), 'test-output', 'e2e'), { recursive: true });
      await copyFile(shot, join(process.cwd(), 'test-output', 'e2e', 'tigervnc-tunnel.png'));
    } finally {
      viewer?.kill('SIGKILL');
      await tunnel.stop();
      await x.stop();
    }
  });
});
