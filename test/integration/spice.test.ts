/**
 * SPICE consoles against real QEMU SPICE servers (with and without a password): the proxy's own
 * ticket on every channel (the browser's is thrown away), a wrong password's code, a token that
 * cannot link into another VM's session, spice-html5 (Debian's package) in Chromium showing the
 * guest with no password in the page, and its channels counted and listed as one console.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchChromium } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startQemuSpice } from '../helpers/qemu.js';
import { linkChannel } from '../helpers/spice-client.js';
import { makeTestPki } from '../helpers/pki.js';

describe('SPICE consoles (real QEMU SPICE)', () => {
  let open: { port: number; stop(): Promise<void> };
  let locked: { port: number; stop(): Promise<void> };
  let gw: TestGateway;
  let spiceUrl: string;

  before(async () => {
    [open, locked] = await Promise.all([startQemuSpice(), startQemuSpice('s3cret-spice')]);
    const spicePort = await freePort();
    spiceUrl = `http://127.0.0.1:${spicePort}`;
    const entry = (name: string, port: number, password?: string) => ({ name, host: '127.0.0.1', port, protocol: 'vnc' as const, spice: { port, password } });
    gw = await startTestGateway({
      builtin: [entry('open', open.port), entry('locked', locked.port, 's3cret-spice'), entry('wrong', locked.port, 'not-the-password')],
      ini: `[spice]\nenabled = true\nhtml5proxy_host = 127.0.0.1\nhtml5proxy_port = ${spicePort}\nhtml5proxy_base_url = ${spiceUrl}/spice_auto.html\n`,
    });
  });

  after(async () => {
    await gw?.close();
    await Promise.all([open?.stop(), locked?.stop()]);
  });

  const mint = async (instance: string) => {
    const res = await gw.mint(instance, { protocol: 'spice' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as { url: string; token: string; type: string };
  };
  const ws = (token: string) => `${spiceUrl.replace('http:', 'ws:')}/websockify?token=${token}`;

  test('API and Nova calls return the spice-html5 URL; the page and spice-html5\'s modules are served', async () => {
    const minted = await mint('open');
    assert.equal(minted.type, 'spice-html5');
    assert.equal(minted.url, `${spiceUrl}/spice_auto.html?token=${minted.token}`);
    const nova = await gw.api('POST', '/v2.1/servers/open/action', { 'os-getSPICEConsole': { type: 'spice-html5' } });
    assert.equal(nova.status, 200);
    assert.match((nova.body.console as { url: string }).url, /spice_auto\.html\?token=/);
    for (const path of ['/spice_auto.html', '/spice-html5/main.js', '/spice-html5/spice.css', '/porthole-spice.js']) {
      const res = await fetch(`${spiceUrl}${path}`);
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
    }
  });

  test('the proxy links every channel with its own ticket: a garbage browser ticket works, with and without a VM password', async () => {
    for (const name of ['open', 'locked']) {
      const main = await linkChannel(ws((await mint(name)).token), 1);
      assert.equal(main.result, 0, `${name}: link result ${main.result} ${main.closeCode ?? ''} ${main.closeReason ?? ''}`);
      assert.ok(main.sessionId !== undefined && main.sessionId > 0, 'SPICE_MSG_MAIN_INIT arrived');
      main.ws.close();
    }
    assert.ok(!gw.logLines.some((l) => l.includes('s3cret-spice')), 'the password is never logged');
  });

  test('a wrong password in the driver: 4031; a token for VM A cannot link a channel into VM B\'s session (4032)', async () => {
    const wrong = await linkChannel(ws((await mint('wrong')).token), 1, { origin: spiceUrl });
    assert.equal(wrong.closeCode, 4031);
    assert.match(wrong.closeReason ?? '', /PH_ERR_SPICE_AUTH_FAILED/);
    const b = await linkChannel(ws((await mint('locked')).token), 1);
    assert.ok(b.sessionId !== undefined);
    try {
      // A's token, B's session id: the proxy connects only to A's SPICE server, which knows no such session.
      const intrude = await linkChannel(ws((await mint('open')).token), 2, { origin: spiceUrl, connectionId: b.sessionId });
      assert.notEqual(intrude.result, 0);
      assert.equal(intrude.closeCode, 4032, `${intrude.closeCode ?? ''} ${intrude.closeReason ?? ''}`);
      assert.match(intrude.closeReason ?? '', /PH_ERR_SPICE_LINK_FAILED/);
      assert.ok(gw.logLines.some((l) => l.includes('BAD_CONNECTION_ID')), 'the log names the SPICE error');
    } finally {
      b.ws.close();
    }
  });

  test('tls-port: a main channel QEMU serves only over TLS is linked there with [spice] ca_certs; without the CA it is refused naming NEED_SECURED (4032)', async () => {
    const pki = makeTestPki();
    const secured = await startQemuSpice('tls-s3cret', pki.dir);
    const port = await freePort();
    const g2 = await startTestGateway({
      builtin: [{ name: 'tls', host: '127.0.0.1', port: secured.port, protocol: 'vnc', spice: { port: secured.port, tlsPort: secured.tlsPort, password: 'tls-s3cret' } }],
      ini: `[spice]\nenabled = true\nhtml5proxy_host = 127.0.0.1\nhtml5proxy_port = ${port}\nhtml5proxy_base_url = http://127.0.0.1:${port}/spice_auto.html\nca_certs = ${pki.caCert}\n`,
    });
    const g3 = await startTestGateway({
      builtin: [{ name: 'tls', host: '127.0.0.1', port: secured.port, protocol: 'vnc', spice: { port: secured.port, tlsPort: secured.tlsPort, password: 'tls-s3cret' } }],
      ini: `[spice]\nenabled = true\nhtml5proxy_host = 127.0.0.1\nhtml5proxy_port = ${await freePort()}\nhtml5proxy_base_url = http://127.0.0.1:${port}/spice_auto.html\n`,
    });
    try {
      const token = (await g2.mint('tls', { protocol: 'spice' })).body.token as string;
      const main = await linkChannel(`ws://127.0.0.1:${port}/websockify?token=${token}`, 1);
      assert.equal(main.result, 0, `over TLS: ${main.result} ${main.closeCode ?? ''} ${main.closeReason ?? ''}`);
      assert.ok(main.sessionId !== undefined, 'SPICE_MSG_MAIN_INIT over TLS');
      // The display channel is not secured: it links on the plain port into the same session.
      const display = await linkChannel(`ws://127.0.0.1:${port}/websockify?token=${token}`, 2, { connectionId: main.sessionId });
      assert.equal(display.result, 0);
      display.ws.close();
      main.ws.close();
      const address = g3.gateway.config.spice.html5proxy_port;
      const refused = await linkChannel(`ws://127.0.0.1:${address}/websockify?token=${(await g3.mint('tls', { protocol: 'spice' })).body.token as string}`, 1, { origin: `http://127.0.0.1:${address}` });
      assert.equal(refused.closeCode, 4032);
      assert.ok(g3.logLines.some((l) => l.includes('NEED_SECURED')), 'the log names NEED_SECURED');
    } finally {
      await g2.close();
      await g3.close();
      await secured.stop();
      const { rm } = await import('node:fs/promises');
      await rm(pki.dir, { recursive: true, force: true });
    }
  });

  test('one console of several channels: limits count it once, DELETE closes every channel, one channel ending ends the others', async () => {
    const port = await freePort();
    const g = await startTestGateway({
      builtin: [{ name: 'one', host: '127.0.0.1', port: open.port, protocol: 'vnc', spice: { port: open.port } }],
      ini: `[spice]\nenabled = true\nhtml5proxy_host = 127.0.0.1\nhtml5proxy_port = ${port}\nhtml5proxy_base_url = http://127.0.0.1:${port}/spice_auto.html\n[console]\nmax_sessions_per_instance = 1\n`,
    });
    const url = async () => `ws://127.0.0.1:${port}/websockify?token=${(await g.mint('one', { protocol: 'spice' })).body.token as string}`;
    try {
      const first = await url();
      const main = await linkChannel(first, 1, { origin: `http://127.0.0.1:${port}` });
      assert.equal(main.result, 0);
      const display = await linkChannel(first, 2, { origin: `http://127.0.0.1:${port}`, connectionId: main.sessionId });
      assert.equal(display.result, 0, 'the second channel of the same console is not a second console');
      const other = await linkChannel(await url(), 1, { origin: `http://127.0.0.1:${port}` });
      assert.equal(other.closeCode, 4022, 'another console of the instance is over max_sessions_per_instance = 1');
      const sessions = (await g.api('GET', '/v1/sessions')).body.sessions as Array<{ id: string; channels: number }>;
      assert.equal(sessions.length, 1);
      assert.equal(sessions[0]?.channels, 2);
      const closed = [new Promise<number>((r) => main.ws.once('close', (c: number) => r(c))), new Promise<number>((r) => display.ws.once('close', (c: number) => r(c)))];
      assert.equal((await g.api('DELETE', `/v1/sessions/${sessions[0]?.id ?? ''}`)).status, 204);
      assert.deepEqual(await Promise.all(closed), [4030, 4030], 'every channel closed by the administrator');
      // A channel that ends takes the console with it.
      const again = await url();
      const m2 = await linkChannel(again, 1, { origin: `http://127.0.0.1:${port}` });
      const d2 = await linkChannel(again, 2, { origin: `http://127.0.0.1:${port}`, connectionId: m2.sessionId });
      const d2Closed = new Promise<number>((r) => d2.ws.once('close', (c: number) => r(c)));
      m2.ws.close();
      assert.equal(await d2Closed, 4012, 'the display channel closes when the main channel ends');
    } finally {
      await g.close();
    }
  });

  test('Chromium: spice-html5 through Porthole shows the password-protected VM with no password in the page; its channels are one console', async () => {
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage({ viewport: { width: 900, height: 600 } });
      const { url, token } = await mint('locked');
      await tab.goto(url);
      await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 20_000 });
      assert.ok(!tab.url().includes('token='), 'the token left the address bar');
      assert.ok(!(await tab.content()).includes('s3cret-spice'));
      let lit = 0;
      for (let i = 0; i < 75 && lit < 500; i++) {
        lit = await tab.evaluate(() => {
          let n = 0;
          for (const cv of document.querySelectorAll('#spice-screen canvas')) {
            const c = cv as HTMLCanvasElement;
            const d = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
            if (d) for (let j = 0; j < d.length; j += 4) if ((d[j] ?? 0) + (d[j + 1] ?? 0) + (d[j + 2] ?? 0) > 150) n++;
          }
          return n;
        });
        if (lit < 500) await tab.waitForTimeout(200);
      }
      await tab.screenshot({ path: 'test-output/e2e/spice-console.png' }).catch(() => undefined);
      assert.ok(lit >= 500, `the SPICE display canvas shows the guest (${lit} lit pixels)`);
      const sessions = (await gw.api('GET', '/v1/sessions')).body.sessions as Array<{ protocol: string; channels: number; instance: string }>;
      const spice = sessions.filter((s) => s.protocol === 'spice' && s.instance === 'locked');
      assert.equal(spice.length, 1, `one console: ${JSON.stringify(sessions)}`);
      assert.ok((spice[0]?.channels ?? 0) >= 3, `main, display, inputs, cursor… (${spice[0]?.channels ?? 0} channels)`);
      void token;
    } finally {
      await browser.close();
    }
  });
});
