/** TLS on the public side: wss with a test CA, minimum version, certificate renewal without dropping consoles. */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { showConsoleInChromium } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { startQemuVnc } from '../helpers/qemu.js';

function peerFingerprint(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: undefined }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

describe('TLS on the console proxy', () => {
  let pki: TestPki;
  let vm: DemoVm;
  let gw: TestGateway;
  let port: number;
  let ca: Buffer;

  before(async () => {
    pki = makeTestPki();
    ca = readFileSync(pki.caCert);
    vm = await startQemuVnc();
    gw = await startTestGateway({
      ini: `[DEFAULT]\ncert = ${pki.serverCert}\nkey = ${pki.serverKey}\nssl_only = true\n[console]\nssl_minimum_version = tlsv1_3\n`,
      builtin: [vm.entry],
      scheme: 'https',
    });
    port = Number(new URL(gw.proxyUrl).port);
  });
  after(async () => {
    await gw?.close();
    await vm?.stop();
    rmSync(pki.dir, { recursive: true, force: true });
  });

  const wssUrl = (token: string) => `wss://127.0.0.1:${port}/websockify?token=${token}`;
  const origin = () => `https://127.0.0.1:${port}`;

  test('wss works with the test CA; the page is served over https', async () => {
    const token = (await gw.mint('demo')).body.token as string;
    const ws = new WebSocket(wssUrl(token), ['binary'], { ca, origin: origin() });
    const greeting = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d: Buffer) => resolve(d.toString()));
      ws.once('error', reject);
    });
    ws.close();
    assert.equal(greeting.slice(0, 12), 'RFB 003.008\n');
  });

  test('TLS below the minimum version is refused; plain HTTP on the TLS port gets no page', async () => {
    await assert.rejects(new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, maxVersion: 'TLSv1.2' }, () => resolve(s));
      s.on('error', reject);
    }), /version|protocol|alert/i);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/vnc_lite.html`));
  });

  test('a renewed certificate is picked up from the files while an open console keeps running', async () => {
    const before = await peerFingerprint(port, ca);
    const token = (await gw.mint('demo')).body.token as string;
    const ws = new WebSocket(wssUrl(token), ['binary'], { ca, origin: origin() });
    await new Promise((resolve) => ws.once('message', resolve));
    pki.issueServer(pki.serverCert, pki.serverKey); // renewal in place, as certbot does
    let after = before;
    const deadline = Date.now() + 8000;
    while (after === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      after = await peerFingerprint(port, ca);
    }
    assert.notEqual(after, before, 'new connections get the new certificate');
    assert.equal(ws.readyState, WebSocket.OPEN, 'the open console was not dropped');
    const types = new Promise<Buffer>((resolve) => ws.once('message', resolve));
    ws.send(Buffer.from('RFB 003.008\n'));
    assert.deepEqual([...(await types)], [1, 1], 'and it still relays');
    ws.close();
    assert.ok(gw.logLines.some((l) => l.includes('TLS certificate reloaded')));
  });

  test('ssl_only without a certificate is a startup error', async () => {
    await assert.rejects(startTestGateway({ ini: `[DEFAULT]\nssl_only = true\n` }),
      /ssl_only = true needs \[DEFAULT\] cert and \[DEFAULT\] key/);
  });

  test('Chromium shows the console over https/wss; the page\'s token cookie is Secure', async () => {
    // The test CA is not in Chromium's trust store; the TLS itself is still real.
    const seen = await showConsoleInChromium((await gw.mint('demo')).body.url as string, 'wss-console.png', { ignoreHttpsErrors: true });
    assert.ok(seen.lit >= 500, `canvas has ${seen.lit} lit pixels`);
    assert.match(seen.status, /^Connected \(encrypted\)/);
    const cookie = seen.cookies.find((c) => c.name === 'porthole_console');
    assert.equal(cookie?.secure, true);
    assert.equal(cookie?.httpOnly, true);
  });
});
