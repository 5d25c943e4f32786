/**
 * Serial consoles against a real QEMU TCP serial server (SeaBIOS's serial console): Nova's URL on
 * the serial listener, output and input through the proxy, text and binary frames, fan-out to a
 * second viewer with the late joiner's scrollback, refusals with their reasons, the sessions API
 * with a VNC and a serial session, Chromium's xterm.js page, and the page through real nginx.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { launchChromium } from '../helpers/browser.js';
import { startBalancer } from '../helpers/balancers.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startQemuSerial, type QemuSerialVm } from '../helpers/qemu.js';
import { openSerial } from '../helpers/serial-client.js';
import { openConsole } from '../helpers/ws-client.js';

const ESC = '\x1b';
const MENU = /Select boot device:[\s\S]*option rom\r\n/;
/** SeaBIOS reads the menu's answer only once the menu is printed; a key sent earlier is dropped. */
const settle = () => new Promise((r) => setTimeout(r, 700));

describe('serial consoles (real QEMU TCP serial)', () => {
  let vm: QemuSerialVm;
  let gw: TestGateway;
  let serialPort: number;
  let serialBase: string;
  let origin: string;
  /** Added to the token store's clock: how tokens expire without waiting. */
  let skewMs = 0;

  before(async () => {
    vm = await startQemuSerial();
    serialPort = await freePort();
    serialBase = `ws://127.0.0.1:${serialPort}/`;
    gw = await startTestGateway({
      clock: { now: () => Date.now() + skewMs },
      builtin: [{ name: 'vm', host: '127.0.0.1', port: vm.vncPort, serialPort: vm.serialPort, protocol: 'vnc' }],
      ini: `[serial_console]\nenabled = true\nserialproxy_host = 127.0.0.1\nserialproxy_port = ${serialPort}\nbase_url = ${serialBase}\n[console]\ntoken_recheck_interval = 0\n`,
    });
    origin = gw.proxyUrl;
  });

  after(async () => {
    await gw?.close();
    await vm?.stop();
  });

  const mintSerial = async () => {
    const res = await gw.mint('vm', { protocol: 'serial' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as { url: string; page_url: string; token: string; type: string; protocol: string };
  };

  /** A fresh boot of the guest, so its 60 s boot prompt is waiting for ESC. */
  const rebootGuest = async () => {
    await vm.reset();
    await new Promise((r) => setTimeout(r, 1500));
  };

  test('API and Nova calls return Nova\'s URL (base_url?token=) and the page; the listener is WebSocket only (405)', async () => {
    const minted = await mintSerial();
    assert.equal(minted.protocol, 'serial');
    assert.equal(minted.type, 'serial');
    assert.equal(minted.url, `${serialBase}?token=${minted.token}`);
    assert.equal(minted.page_url, `${gw.proxyUrl}/serial.html?token=${minted.token}`);
    const nova = await gw.api('POST', '/v2.1/servers/vm/remote-consoles', { remote_console: { protocol: 'serial', type: 'serial' } });
    assert.equal(nova.status, 200);
    assert.match((nova.body.remote_console as { url: string }).url, new RegExp(`^${serialBase.replace(/[/.]/g, '\\$&')}\\?token=`));
    const action = await gw.api('POST', '/v2.1/servers/vm/action', { 'os-getSerialConsole': { type: 'serial' } });
    assert.equal(action.status, 200);
    assert.equal((action.body.console as { type: string }).type, 'serial');
    const plain = await fetch(`http://127.0.0.1:${serialPort}/`);
    assert.equal(plain.status, 405);
    await plain.arrayBuffer();
    const page = await fetch(`${gw.proxyUrl}/serial.html`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self';/);
    assert.match(await page.text(), /porthole-serial\.js/);
    for (const asset of ['/xterm/lib/xterm.mjs', '/xterm/css/xterm.css', '/xterm-addon-fit/lib/addon-fit.mjs']) {
      const res = await fetch(`${gw.proxyUrl}${asset}`);
      assert.equal(res.status, 200, asset);
      await res.arrayBuffer();
    }
  });

  test('output reaches the client and its keystrokes reach the guest, as binary and as text frames', async () => {
    await rebootGuest();
    const { url } = await mintSerial();
    const client = await openSerial(url);
    try {
      client.type(ESC, 'text'); // xterm.js's attach addon sends text; nova-serialproxy would close with 1003
      await client.waitFor(MENU);
      await settle();
      const mark = client.text().length;
      client.type('1', 'binary'); // boot entry 1: the option ROM, which fails over to "No bootable device"
      await client.waitFor(/No bootable device/, 15_000, mark);
    } finally {
      await client.close();
    }
  });

  test('a subprotocol list with spaces (Chromium\'s "binary, base64") is accepted; the answer is binary', async () => {
    const { token } = await mintSerial();
    const status = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: serialPort, path: `/?token=${token}`, headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Protocol': 'base64, binary',
      } });
      req.on('upgrade', (res, socket) => { socket.destroy(); resolve(`${res.statusCode} ${String(res.headers['sec-websocket-protocol'])}`); });
      req.on('response', (res) => { res.resume(); resolve(`${res.statusCode}`); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, '101 binary');
  });

  test('two viewers share one upstream: the late joiner gets the scrollback, both see output, input from either reaches the guest', async () => {
    await rebootGuest();
    const first = await openSerial((await mintSerial()).url);
    let second: Awaited<ReturnType<typeof openSerial>> | undefined;
    try {
      first.type(ESC);
      await first.waitFor(MENU);
      second = await openSerial((await mintSerial()).url);
      await second.waitFor(MENU, 5000); // scrollback: printed before it joined
      // One TCP connection to QEMU's serial port, whatever the number of viewers.
      const upstreams = await countConnections(vm.serialPort);
      assert.equal(upstreams, 1, `proxy connections to the serial port: ${upstreams}`);
      await settle();
      const a = first.text().length;
      const b = second.text().length;
      second.type('1'); // the second viewer types; QEMU would have queued this for a second raw client
      await first.waitFor(/No bootable device/, 15_000, a);
      await second.waitFor(/No bootable device/, 15_000, b);
      const list = await gw.api('GET', '/v1/sessions');
      const serial = (list.body.sessions as Array<{ protocol: string; bytesToClient: number; bytesToServer: number }>).filter((s) => s.protocol === 'serial');
      assert.equal(serial.length, 2);
      assert.ok(serial.every((s) => s.bytesToClient > 0), JSON.stringify(serial));
      assert.ok(serial.some((s) => s.bytesToServer > 0), JSON.stringify(serial));
    } finally {
      await second?.close();
      await first.close();
    }
  });

  test('sessions API lists a VNC and a serial session with bytes; DELETE closes one with 4030 and the client sees it', async () => {
    const serial = await openSerial((await mintSerial()).url, { origin });
    const vncToken = (await gw.mint('vm')).body.token as string;
    const vnc = openConsole(`${gw.wsUrl}?token=${vncToken}`, { origin, timeoutMs: 15_000 });
    try {
      let sessions: Array<{ id: string; protocol: string; bytesToClient: number; state: string; remote: string; instance: string }> = [];
      for (let i = 0; i < 50; i++) {
        sessions = (await gw.api('GET', '/v1/sessions')).body.sessions as typeof sessions;
        if (sessions.some((s) => s.protocol === 'vnc' && s.bytesToClient > 0) && sessions.some((s) => s.protocol === 'serial' && s.state === 'relaying')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const v = sessions.find((s) => s.protocol === 'vnc');
      const s = sessions.find((x) => x.protocol === 'serial');
      assert.ok(v && v.bytesToClient >= 12, JSON.stringify(sessions)); // at least the RFB greeting
      assert.ok(s && s.state === 'relaying' && s.instance === 'vm' && s.remote === '127.0.0.1', JSON.stringify(sessions));
      const del = await gw.api('DELETE', `/v1/sessions/${s.id}`);
      assert.equal(del.status, 204);
      const closed = await serial.closed;
      assert.equal(closed.code, 4030);
      assert.match(closed.reason, /PH_ERR_SESSION_CLOSED_BY_ADMIN/);
      const delVnc = await gw.api('DELETE', `/v1/sessions/${v.id}`);
      assert.equal(delVnc.status, 204);
      assert.equal((await vnc).closeCode, 4030);
    } finally {
      await serial.close();
    }
  });

  test('bad, expired and revoked tokens and a VNC token are refused on the serial listener with their reasons', async () => {
    const bad = await openConsole(`${serialBase}?token=nope`, { origin });
    assert.equal(bad.closeCode, 4002);
    // Without Origin (Tempest-style clients) the close frame is empty, as from Nova's proxy.
    const tempest = await openConsole(`${serialBase}?token=nope`);
    assert.equal(tempest.closeCode, 1005);
    const vncToken = (await gw.mint('vm')).body.token as string;
    const wrongKind = await openConsole(`${serialBase}?token=${vncToken}`, { origin });
    assert.equal(wrongKind.closeCode, 4006);
    assert.match(wrongKind.closeReason ?? '', /PH_ERR_TOKEN_CONSOLE_TYPE/);
    const expiring = (await mintSerial()).url;
    skewMs = 3600_000;
    try {
      const expired = await openConsole(expiring, { origin });
      assert.equal(expired.closeCode, 4003);
      assert.match(expired.closeReason ?? '', /PH_ERR_TOKEN_EXPIRED/);
    } finally {
      skewMs = 0;
    }
    const open = await openSerial((await mintSerial()).url, { origin });
    const revokedLater = (await mintSerial()).url;
    const revoke = await gw.api('DELETE', '/v1/instances/vm/consoles');
    assert.equal(revoke.status, 200);
    assert.equal((await open.closed).code, 4004, 'an open serial console closes at once on revoke');
    assert.equal((await openConsole(revokedLater, { origin })).closeCode, 4004);
  });

  test('Chromium: /serial.html shows the guest\'s output in xterm.js, typing and pasting reach the guest, it refits on resize, a second tab sees the scrollback', async () => {
    await rebootGuest();
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
      const tab = await context.newPage();
      await tab.goto((await mintSerial()).page_url);
      await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
      assert.ok(!tab.url().includes('token='), `token left in the address bar: ${tab.url()}`);
      const screen = (page: typeof tab) => page.evaluate(() => {
        const buffer = (window as unknown as { portholeTerminal: { buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } } } }).portholeTerminal.buffer.active;
        const lines: string[] = [];
        for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
        return lines.join('\n');
      });
      await tab.locator('#terminal').click();
      await tab.keyboard.press('Escape');
      await tab.waitForFunction(() => {
        const b = (window as unknown as { portholeTerminal: { buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } } } }).portholeTerminal.buffer.active;
        for (let i = 0; i < b.length; i++) if (b.getLine(i)?.translateToString(true).includes('Select boot device')) return true;
        return false;
      }, null, { timeout: 15_000 });
      // Paste, as the browser delivers it (a paste event on xterm's textarea): boot entry 1.
      await tab.waitForTimeout(700);
      await tab.evaluate(() => {
        const data = new DataTransfer();
        data.setData('text/plain', '1');
        document.querySelector('.xterm-helper-textarea')?.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
      });
      for (let i = 0; i < 100 && !/No bootable device/.test(await screen(tab)); i++) await tab.waitForTimeout(100);
      assert.match(await screen(tab), /No bootable device/, 'the pasted text reached the guest');
      const cols = await tab.evaluate(() => (window as unknown as { portholeTerminal: { cols: number } }).portholeTerminal.cols);
      await tab.setViewportSize({ width: 600, height: 400 });
      await tab.waitForFunction((before) => (window as unknown as { portholeTerminal: { cols: number } }).portholeTerminal.cols < before, cols, { timeout: 5000 });
      const second = await context.newPage();
      await second.goto((await mintSerial()).page_url);
      await second.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
      for (let i = 0; i < 50 && !/Select boot device/.test(await screen(second)); i++) await second.waitForTimeout(100);
      assert.match(await screen(second), /Select boot device/, 'the second tab shows the scrollback');
      await tab.screenshot({ path: 'test-output/e2e/serial-console.png' }).catch(() => undefined);
      // A closed console tells the person why: revoke, and the page shows the sentence.
      await gw.api('DELETE', '/v1/instances/vm/consoles');
      await tab.waitForFunction(() => /revoked/.test(document.getElementById('reason')?.textContent ?? ''), null, { timeout: 10_000 });
    } finally {
      await browser.close();
    }
  });

  test('Chromium: expired and bad links on /serial.html say why', async () => {
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage();
      await tab.goto(`${gw.proxyUrl}/serial.html?token=not-a-token`);
      await tab.waitForFunction(() => /not valid/.test(document.getElementById('reason')?.textContent ?? ''), null, { timeout: 10_000 });
    } finally {
      await browser.close();
    }
  });

  test('through real nginx: the serial page and its WebSocket work behind a reverse proxy', async () => {
    await rebootGuest();
    const lb = await startBalancer('nginx', [Number(new URL(gw.proxyUrl).port)]);
    try {
      const { token } = await mintSerial();
      const lbUrl = new URL(lb.url);
      const client = await openSerial(`ws://${lbUrl.host}/websockify?token=${token}`, { origin: lbUrl.origin });
      try {
        client.type(ESC);
        await client.waitFor(MENU);
      } finally {
        await client.close();
      }
      const page = await fetch(new URL("/serial.html", lb.url));
      assert.equal(page.status, 200);
      await page.arrayBuffer();
    } finally {
      await lb.stop();
    }
  });
});

/** Established TCP connections from this machine to 127.0.0.1:port (ss), i.e. the proxy's upstreams. */
async function countConnections(port: number): Promise<number> {
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `dst 127.0.0.1:${port}`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

