/** Real Chromium opens minted console URLs through the proxy to a real QEMU VM. */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { launchChromium, litPixels } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startQemuVnc } from '../helpers/qemu.js';

const OUT = join(process.cwd(), 'test-output', 'e2e');

describe('console in a real browser', () => {
  let vm: DemoVm;
  let gw: TestGateway;
  let browser: Browser;

  before(async () => {
    await mkdir(OUT, { recursive: true });
    vm = await startQemuVnc();
    gw = await startTestGateway({ builtin: [vm.entry, { ...vm.entry, name: 'alpha' }, { ...vm.entry, name: 'beta' }] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await gw?.close();
    await vm?.stop();
  });

  for (const page of ['vnc_lite.html', 'vnc.html', 'vnc_auto.html']) {
    test(`${page}: the minted URL shows the VM's screen`, async () => {
      const minted = await gw.mint('demo');
      assert.equal(minted.status, 201);
      const url = (minted.body.url as string).replace('vnc_lite.html', page);
      const tab = await browser.newPage({ viewport: { width: 900, height: 560 } });
      const errors: string[] = [];
      tab.on('pageerror', (e) => errors.push(e.message));
      try {
        await tab.goto(url);
        await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
        await tab.waitForFunction(() => {
          const cv = document.querySelector('#screen canvas') as HTMLCanvasElement | null;
          return cv !== null && cv.width >= 100;
        }, null, { timeout: 10_000 });
        let lit = 0;
        const deadline = Date.now() + 15_000;
        while ((lit = await litPixels(tab)) < 500 && Date.now() < deadline) await tab.waitForTimeout(200);
        await tab.screenshot({ path: join(OUT, page.replace('.html', '.png')) });
        assert.ok(lit >= 500, `canvas has ${lit} lit pixels`);
        assert.match((await tab.locator('#status').textContent()) ?? '', /^Connected \(unencrypted\) to QEMU/);
        assert.deepEqual(errors, []);
      } finally {
        await tab.close();
      }
    });
  }

  const connected = (tab: Page) => tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
  /** Instances of the sessions that reached relaying, in order (from the gateway's log). */
  const relayedInstances = () => gw.logLines.filter((l) => l.includes('console session relaying')).map((l) => (JSON.parse(l) as { instance: string }).instance);

  test('the page swaps the URL token for an HttpOnly SameSite cookie and removes it from the address bar', async () => {
    const minted = await gw.mint('demo');
    const token = minted.body.token as string;
    const context = await browser.newContext();
    const tab = await context.newPage();
    const sockets: string[] = [];
    const leaks: string[] = [];
    tab.on('websocket', (ws) => sockets.push(ws.url()));
    tab.on('request', (r) => {
      const referer = r.headers().referer ?? '';
      if (referer.includes(token)) leaks.push(`Referer of ${r.url()}`);
      if (r.url().includes(token) && r.url() !== minted.body.url) leaks.push(r.url());
    });
    try {
      await tab.goto(minted.body.url as string);
      await connected(tab);
      assert.ok(!tab.url().includes(token), `address bar: ${tab.url()}`);
      assert.equal(new URL(tab.url()).pathname, '/vnc_lite.html');
      assert.equal(sockets.length, 1);
      assert.match(sockets[0] ?? '', /^ws:\/\/127\.0\.0\.1:\d+\/websockify\/c\/[\w-]+$/, 'the WebSocket URL carries no token');
      assert.deepEqual(leaks, [], 'no later request carries the token in its URL or Referer');
      const cookie = (await context.cookies()).find((c) => c.name === 'porthole_console');
      assert.ok(cookie);
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, 'Strict');
      assert.equal(cookie.path, new URL(sockets[0] ?? '').pathname);
      assert.ok(cookie.expires > Date.now() / 1000 && cookie.expires <= Date.now() / 1000 + 601, 'lives no longer than the token');
      assert.equal(await tab.evaluate(() => document.cookie), '', 'scripts cannot read it');
      assert.ok(!(await tab.content()).includes(token));
    } finally {
      await context.close();
    }
  });

  test('two console tabs in one browser keep their own consoles, also across a reload', async () => {
    const context = await browser.newContext();
    try {
      const alpha = await context.newPage();
      const beta = await context.newPage();
      await alpha.goto((await gw.mint('alpha')).body.url as string);
      await connected(alpha);
      await beta.goto((await gw.mint('beta')).body.url as string);
      await connected(beta);
      const paths = (await context.cookies()).filter((c) => c.name === 'porthole_console').map((c) => c.path);
      assert.equal(new Set(paths).size, 2, 'one cookie per console, each at its own path');
      await alpha.reload();
      await connected(alpha);
      assert.deepEqual(relayedInstances().slice(-3), ['alpha', 'beta', 'alpha'], 'the reloaded tab reconnected to its own VM');
    } finally {
      await context.close();
    }
  });

  test('a browser that does not send the cookie, or cannot reach the exchange, still connects (token kept in page memory)', async () => {
    const context = await browser.newContext();
    try {
      // Third-party-cookie blocking, as in a cross-site dashboard iframe: the Set-Cookie never lands.
      await context.route('**/console-session', async (route) => {
        const response = await route.fetch();
        const headers = { ...response.headers() };
        delete headers['set-cookie'];
        await route.fulfill({ response, headers });
      });
      const noCookie = await context.newPage();
      await noCookie.goto((await gw.mint('demo')).body.url as string);
      await connected(noCookie);
      await context.unroute('**/console-session');
      await context.route('**/console-session', (route) => route.abort());
      const noExchange = await context.newPage();
      await noExchange.goto((await gw.mint('demo')).body.url as string);
      await connected(noExchange);
      assert.ok(!noExchange.url().includes('token='), 'the address bar is cleaned either way');
    } finally {
      await context.close();
    }
  });

  test('noVNC\'s path= form (websockify%3Ftoken%3D…) works too', async () => {
    const token = (await gw.mint('demo')).body.token as string;
    const tab = await browser.newPage();
    try {
      await tab.goto(`${gw.proxyUrl}/vnc_lite.html?path=${encodeURIComponent(`websockify?token=${token}`)}`);
      await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
    } finally {
      await tab.close();
    }
  });

  for (const c of [
    { name: 'bad-token', query: `token=${'q'.repeat(32)}`, status: /console token is not valid/, reason: /not valid: the token is unknown/ },
    { name: 'no-token', query: '', status: /no console token/, reason: /has no token/ },
  ]) {
    test(`a ${c.name} URL shows the readable reason, not a bare code 1006`, async () => {
      const tab = await browser.newPage({ viewport: { width: 900, height: 300 } });
      try {
        await tab.goto(`${gw.proxyUrl}/vnc_lite.html?${c.query}`);
        await tab.waitForFunction(() => !(document.getElementById('reason')?.hidden ?? true), null, { timeout: 10_000 });
        await tab.screenshot({ path: join(OUT, `${c.name}.png`) });
        assert.match((await tab.locator('#status').textContent()) ?? '', c.status);
        const reason = (await tab.locator('#reason').textContent()) ?? '';
        assert.match(reason, c.reason);
        assert.doesNotMatch(reason, /1006/);
      } finally {
        await tab.close();
      }
    });
  }

  test('a stopped VNC server shows "could not reach the VM\'s console"', async () => {
    const vm2 = await startQemuVnc();
    const g2 = await startTestGateway({ builtin: [{ ...vm2.entry, name: 'gone' }] });
    const tab = await browser.newPage({ viewport: { width: 900, height: 300 } });
    try {
      const url = (await g2.mint('gone')).body.url as string;
      await vm2.stop();
      await tab.goto(url);
      await tab.waitForFunction(() => !(document.getElementById('reason')?.hidden ?? true), null, { timeout: 10_000 });
      assert.match((await tab.locator('#reason').textContent()) ?? '', /could not reach the VM's console \(VNC or serial\)/);
    } finally {
      await tab.close();
      await g2.close();
      await vm2.stop();
    }
  });
});
