/**
 * VeNCrypt towards real QEMU VNC servers (tls-creds-x509): X509None, X509Vnc with mutual TLS, and
 * each way the TLS hop can be wrong. The browser only ever sees security type None.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { once } from 'node:events';
import WebSocket from 'ws';
import type { InventoryEntry } from '../../src/compute/inventory.js';
import { showConsoleInChromium } from '../helpers/browser.js';
import { runCli } from '../helpers/cli.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { startQemuVncSecured } from '../helpers/qemu.js';
import { acceptVencrypt, rfbClientHandshake } from '../helpers/vencrypt-server.js';
import { handshakeToServerInit, openConsole, rfbSecurityTypes } from '../helpers/ws-client.js';

const PASSWORD = 'tls-s3cret';

describe('VeNCrypt to QEMU (X509None, X509Vnc, mutual TLS)', () => {
  let pki: TestPki;
  let otherCa: TestPki;
  let clientCert: string;
  let clientKey: string;
  const vms: Array<{ port: number; stop(): Promise<void> }> = [];
  let x509None: { port: number };
  let mutual: { port: number };
  let wrongName: { port: number };
  let gw: TestGateway;
  const gateways: TestGateway[] = [];

  const gateway = async (vncIni: string, builtin: readonly InventoryEntry[]) => {
    const g = await startTestGateway({ ini: `[vnc]\n${vncIni}`, builtin });
    gateways.push(g);
    return g;
  };
  const mintUrl = async (g: TestGateway, instance: string) => `${g.wsUrl}?token=${(await g.mint(instance)).body.token as string}`;

  before(async () => {
    pki = makeTestPki();
    otherCa = makeTestPki();
    clientCert = join(pki.dir, 'client-cert.pem');
    clientKey = join(pki.dir, 'client-key.pem');
    pki.issueClient(clientCert, clientKey);
    // A second QEMU PKI dir from the same CA whose server certificate names another host.
    const wrongNameDir = join(pki.dir, 'wrong-name');
    mkdirSync(wrongNameDir);
    copyFileSync(pki.caCert, join(wrongNameDir, 'ca-cert.pem'));
    pki.issueServer(join(wrongNameDir, 'server-cert.pem'), join(wrongNameDir, 'server-key.pem'), 'DNS:vnc.other.example');
    // Sequential: each picks the first free display.
    x509None = await startQemuVncSecured({ tls: { dir: pki.dir, verifyPeer: false } });
    vms.push(x509None as { port: number; stop(): Promise<void> });
    mutual = await startQemuVncSecured({ tls: { dir: pki.dir, verifyPeer: true }, password: PASSWORD });
    vms.push(mutual as { port: number; stop(): Promise<void> });
    wrongName = await startQemuVncSecured({ tls: { dir: wrongNameDir, verifyPeer: false } });
    vms.push(wrongName as { port: number; stop(): Promise<void> });
    gw = await gateway(`auth_schemes = vencrypt\nvencrypt_ca_certs = ${pki.caCert}\nvencrypt_client_cert = ${clientCert}\nvencrypt_client_key = ${clientKey}\n`, [
      { name: 'x509none', host: '127.0.0.1', port: x509None.port, protocol: 'vnc' },
      { name: 'mutual', host: '127.0.0.1', port: mutual.port, protocol: 'vnc', password: PASSWORD },
      { name: 'mutual-wrong-password', host: '127.0.0.1', port: mutual.port, protocol: 'vnc', password: 'nope' },
      { name: 'mutual-no-password', host: '127.0.0.1', port: mutual.port, protocol: 'vnc' },
      { name: 'wrong-name', host: '127.0.0.1', port: wrongName.port, protocol: 'vnc' },
    ]);
  });
  after(async () => {
    for (const g of gateways) await g.close();
    for (const vm of vms) await vm.stop();
    const { rmSync } = await import('node:fs');
    for (const p of [pki, otherCa]) if (p) rmSync(p.dir, { recursive: true, force: true });
  });

  test('QEMU offers only VeNCrypt (19): without the proxy a browser cannot connect', async () => {
    const direct = await gateway('', [{ name: 'x509none', host: '127.0.0.1', port: x509None.port, protocol: 'vnc' }]);
    const { types } = await rfbSecurityTypes(await mintUrl(direct, 'x509none'), direct.proxyUrl);
    assert.deepEqual(types, [19]);
  });

  test('X509None: the proxy verifies QEMU\'s certificate; the browser gets None and reaches ServerInit', async () => {
    const { width, height } = await handshakeToServerInit(await mintUrl(gw, 'x509none'), gw.proxyUrl);
    assert.ok(width >= 320 && height >= 200, `${width}x${height}`);
    assert.ok(gw.logLines.some((l) => l.includes('"auth":"vencrypt"') && l.includes('"vencryptSubtype":260')));
  });

  test('X509Vnc with mutual TLS: client certificate plus password inside the tunnel', async () => {
    const { width } = await handshakeToServerInit(await mintUrl(gw, 'mutual'), gw.proxyUrl);
    assert.ok(width >= 320);
    assert.ok(gw.logLines.some((l) => l.includes('"vencryptSubtype":261')));
    assert.ok(!gw.logLines.some((l) => l.includes(PASSWORD)), 'the password is never logged');
  });

  test('X509Vnc: a wrong password → 4019; no known password → 4018 naming the sub-types', async () => {
    const wrong = await openConsole(await mintUrl(gw, 'mutual-wrong-password'), { origin: gw.proxyUrl });
    assert.equal(wrong.closeCode, 4019);
    const none = await openConsole(await mintUrl(gw, 'mutual-no-password'), { origin: gw.proxyUrl });
    assert.equal(none.closeCode, 4018);
    assert.ok(gw.logLines.some((l) => /VeNCrypt sub-types \[261 X509Vnc\].*no VNC password is known/.test(l)));
  });

  test('QEMU with verify-peer=on refuses a proxy without a client certificate → 4020', async () => {
    const noClient = await gateway(`auth_schemes = vencrypt\nvencrypt_ca_certs = ${pki.caCert}\n`,
      [{ name: 'mutual', host: '127.0.0.1', port: mutual.port, protocol: 'vnc', password: PASSWORD }]);
    const r = await openConsole(await mintUrl(noClient, 'mutual'), { origin: noClient.proxyUrl });
    assert.equal(r.closeCode, 4020);
    assert.match(r.closeReason ?? '', /^PH_ERR_UPSTREAM_TLS/);
    assert.ok(noClient.logLines.some((l) => l.includes('PH_ERR_UPSTREAM_TLS') && l.includes('client certificate')), noClient.logLines.filter((l) => l.includes('TLS')).join('\n'));
  });

  test('a server certificate from another CA → 4020, nothing relayed', async () => {
    const wrongCa = await gateway(`auth_schemes = vencrypt\nvencrypt_ca_certs = ${otherCa.caCert}\n`,
      [{ name: 'x509none', host: '127.0.0.1', port: x509None.port, protocol: 'vnc' }]);
    const r = await openConsole(await mintUrl(wrongCa, 'x509none'), { origin: wrongCa.proxyUrl });
    assert.equal(r.closeCode, 4020);
    assert.equal(r.received.length, 0, 'the browser got no RFB bytes');
    assert.ok(wrongCa.logLines.some((l) => l.includes('does not chain to [vnc] vencrypt_ca_certs')));
  });

  test('a certificate that does not name 127.0.0.1 → 4020; accepted with vencrypt_verify_hostname = false', async () => {
    const r = await openConsole(await mintUrl(gw, 'wrong-name'), { origin: gw.proxyUrl });
    assert.equal(r.closeCode, 4020);
    assert.ok(gw.logLines.some((l) => l.includes('PH_ERR_UPSTREAM_TLS') && l.includes('altnames')));
    const lax = await gateway(`auth_schemes = vencrypt\nvencrypt_ca_certs = ${pki.caCert}\nvencrypt_verify_hostname = false\n`,
      [{ name: 'wrong-name', host: '127.0.0.1', port: wrongName.port, protocol: 'vnc' }]);
    const { width } = await handshakeToServerInit(await mintUrl(lax, 'wrong-name'), lax.proxyUrl);
    assert.ok(width >= 320);
  });

  test('reload: a new CA file applies to new consoles on reload; an open console keeps relaying', async () => {
    const caFile = join(pki.dir, 'reloadable-ca.pem');
    copyFileSync(pki.caCert, caFile);
    const g = await gateway(`auth_schemes = vencrypt\nvencrypt_ca_certs = ${caFile}\n`, [{ name: 'x509none', host: '127.0.0.1', port: x509None.port, protocol: 'vnc' }]);
    // A console through its TLS hop, paused at the proxy's greeting to the browser.
    const ws = new WebSocket(await mintUrl(g, 'x509none'), ['binary'], { origin: g.proxyUrl });
    const [greeting] = (await once(ws, 'message')) as [Buffer];
    assert.equal(greeting.toString('latin1'), 'RFB 003.008\n');
    writeFileSync(caFile, readFileSync(otherCa.caCert));
    assert.equal(await g.gateway.reloadTls(), true);
    const refused = await openConsole(await mintUrl(g, 'x509none'), { origin: g.proxyUrl });
    assert.equal(refused.closeCode, 4020, 'new consoles use the reloaded CA');
    // The open console finishes its handshake and gets ServerInit over the old TLS connection.
    let got = Buffer.alloc(0);
    const serverInit = new Promise<void>((resolve, reject) => {
      ws.on('message', (d: Buffer) => { got = Buffer.concat([got, d]); if (got.length >= 2 + 4 + 24) resolve(); });
      ws.on('close', (code) => reject(new Error(`closed ${code}`)));
    });
    ws.send(Buffer.from('RFB 003.008\n'));
    ws.send(Buffer.from([1]));
    ws.send(Buffer.from([1]));
    await serverInit;
    assert.deepEqual([...got.subarray(0, 6)], [1, 1, 0, 0, 0, 0], 'None offered, SecurityResult OK');
    assert.ok(got.readUInt16BE(6) >= 320, 'ServerInit width');
    ws.terminate();
  });

  test('a browser that stops reading while a VeNCrypt VM floods holds the VM back (TLS path, bounded memory)', async () => {
    // QEMU cannot be made to flood on demand: a Node server plays its VeNCrypt X509None side.
    const secureContext = createSecureContext({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) });
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    let written = 0;
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => s.destroy());
      acceptVencrypt(s, secureContext).then(({ tls }) => {
        const pump = () => {
          while (!tls.destroyed) {
            written += chunk.length;
            if (!tls.write(chunk)) { tls.once('drain', pump); return; }
          }
        };
        pump();
      }, () => s.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const g = await gateway(`auth_schemes = vencrypt\nvencrypt_ca_certs = ${pki.caCert}\n`,
      [{ name: 'flood', host: '127.0.0.1', port: (server.address() as AddressInfo).port, protocol: 'vnc' }]);
    const ws = new WebSocket(await mintUrl(g, 'flood'), ['binary'], { origin: g.proxyUrl });
    try {
      let got = 0;
      const early = await rfbClientHandshake({ onData: (fn) => ws.on('message', fn), send: (d) => ws.send(d) });
      got += early.length;
      ws.on('message', (d: Buffer) => { got += d.length; });
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(got > 1024 * 1024, `relay moved data while the browser read (${got} bytes)`);
      ws.pause();
      await new Promise((r) => setTimeout(r, 500));
      const stalledAt = written;
      const buffersBefore = process.memoryUsage().arrayBuffers;
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(written - stalledAt < 8 * 1024 * 1024, `VM kept writing ${written - stalledAt} bytes while the browser was stalled`);
      assert.ok(process.memoryUsage().arrayBuffers - buffersBefore < 16 * 1024 * 1024, 'proxy buffers stayed bounded');
      ws.resume();
      const before = got;
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(got > before, 'relaying resumed');
    } finally {
      ws.terminate();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  test('porthole doctor checks the VeNCrypt certificates (these test ones expire in 2 days)', async () => {
    const res = await runCli(['doctor', '--json', '--config-file', gw.configFile]);
    const codes = (JSON.parse(res.stdout) as { findings: Array<{ code: string; message: string }> }).findings
      .filter((f) => f.code.startsWith('PH_DOCTOR_CERT')).map((f) => `${f.code} ${f.message.split(' ').slice(0, 3).join(' ')}`);
    assert.deepEqual(codes, ['PH_DOCTOR_CERT_EXPIRING [vnc] vencrypt_client_cert ' + clientCert, 'PH_DOCTOR_CERT_EXPIRING [vnc] vencrypt_ca_certs ' + pki.caCert]);
    assert.equal(res.code, 0, 'warnings only');
  });

  for (const [instance, shot] of [['x509none', 'vencrypt-x509none-qemu.png'], ['mutual', 'vencrypt-x509vnc-mutual-qemu.png']] as const) {
    test(`Chromium shows the ${instance} console with no password prompt and no certificate`, async () => {
      const seen = await showConsoleInChromium((await gw.mint(instance)).body.url as string, shot);
      assert.ok(seen.lit >= 500, `canvas has ${seen.lit} lit pixels`);
      assert.equal(seen.prompted, false);
      assert.ok(!seen.html.includes(PASSWORD));
    });
  }
});
