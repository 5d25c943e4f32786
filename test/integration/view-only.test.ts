/**
 * View-only consoles, enforced by the proxy: against a recording RFB stand-in server (which bytes
 * arrive), against real QEMU (its screen, read straight from QEMU's VNC port with vncsnapshot, does
 * not change when a view-only viewer presses ESC; it does for a normal viewer), in Chromium (the page
 * says "view only" and shows the VM), and on a real serial console (typed keys never reach SeaBIOS).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { launchChromium, litPixels } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startQemuSerial, startQemuVnc, type QemuSerialVm } from '../helpers/qemu.js';
import { runTempDir } from '../helpers/run.js';
import { freePort } from '../helpers/net.js';
import { openSerial } from '../helpers/serial-client.js';
import { ByteReader, SERVER_INIT } from '../helpers/vencrypt-server.js';
import { openRfbViewer } from '../helpers/ws-client.js';

const ESC = 0xff1b;
const keyEvent = (down: boolean, keysym: number) => { const b = Buffer.from([4, down ? 1 : 0, 0, 0, 0, 0, 0, 0]); b.writeUInt32BE(keysym, 4); return b; };
const pointer = Buffer.from([5, 1, 0, 10, 0, 10]);
const fbur = Buffer.from([3, 0, 0, 0, 0, 0, 0, 100, 0, 100]);
const cutText = Buffer.concat([Buffer.from([6, 0, 0, 0, 0, 0, 0, 4]), Buffer.from('pwd!')]);
const qemuKey = Buffer.from([255, 0, 0, 1, 0, 0, 0xff, 0x1b, 0, 0, 0, 1]);
const setEncodings = Buffer.from([2, 0, 0, 1, 0, 0, 0, 0]);

/** An RFB 3.8 server offering None that records every byte the client sends after the handshake. */
async function startRecordingRfbServer(): Promise<{ port: number; clientInits: number[]; bytes: () => Buffer; stop(): Promise<void> }> {
  const clientInits: number[] = [];
  let recorded = Buffer.alloc(0);
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const r = new ByteReader();
    s.on('data', r.push);
    void (async () => {
      s.write('RFB 003.008\n');
      await r.read(12);
      s.write(Buffer.from([1, 1]));
      await r.read(1);
      s.write(Buffer.from([0, 0, 0, 0]));
      clientInits.push((await r.read(1))[0] as number);
      s.write(SERVER_INIT);
      recorded = Buffer.concat([recorded, r.rest()]);
      s.off('data', r.push);
      s.on('data', (d: Buffer) => { recorded = Buffer.concat([recorded, d]); });
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port, clientInits, bytes: () => recorded,
    stop: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

describe('view-only consoles', () => {
  let standIn: Awaited<ReturnType<typeof startRecordingRfbServer>>;
  let vm: DemoVm;
  let serialVm: QemuSerialVm;
  let gw: TestGateway;
  let dir: string;

  before(async () => {
    [standIn, vm, serialVm] = await Promise.all([startRecordingRfbServer(), startQemuVnc(), startQemuSerial()]);
    dir = runTempDir('view-only');
    const serialPort = await freePort();
    gw = await startTestGateway({
      builtin: [
        { ...vm.entry, name: 'vm' },
        { name: 'standin', host: '127.0.0.1', port: standIn.port, protocol: 'vnc' },
        { name: 'serial-vm', host: '127.0.0.1', port: serialVm.vncPort, serialPort: serialVm.serialPort, protocol: 'vnc' },
      ],
      ini: `[serial_console]\nenabled = true\nserialproxy_host = 127.0.0.1\nserialproxy_port = ${serialPort}\nbase_url = ws://127.0.0.1:${serialPort}/\n`,
    });
  });

  after(async () => {
    await gw?.close();
    await Promise.all([standIn?.stop(), vm?.stop(), serialVm?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const shot = (name: string) => {
    const file = join(dir, name);
    execFileSync('vncsnapshot', ['-quiet', `127.0.0.1::${vm.entry.port}`, file], { timeout: 20_000 });
    return file;
  };
  const differs = (a: string, b: string) => {
    // `compare` exits 1 when the images differ; it prints the count of differing pixels on stderr.
    try {
      execFileSync('/usr/bin/compare', ['-metric', 'AE', '-fuzz', '20%', a, b, 'null:'], { stdio: 'pipe' });
      return 0;
    } catch (err) {
      return Number(String((err as { stderr?: Buffer }).stderr ?? '').trim().split(/\s/)[0]);
    }
  };

  const mint = async (instance: string, extra: Record<string, unknown> = {}) => {
    const res = await gw.api('POST', '/v1/consoles', { instance, ...extra });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as { token: string; url: string; page_url?: string; view_only: boolean };
  };

  test('stand-in server: key, pointer, clipboard and QEMU key events never arrive; what a viewer needs does, in order; ClientInit is made shared', async () => {
    const minted = await mint('standin', { view_only: true });
    assert.equal(minted.view_only, true);
    const viewer = await openRfbViewer(`${gw.wsUrl}?token=${minted.token}`, gw.proxyUrl, 0);
    for (const m of [setEncodings, keyEvent(true, ESC), fbur, pointer, cutText, keyEvent(false, ESC), qemuKey, fbur]) viewer.ws.send(m);
    const want = Buffer.concat([setEncodings, fbur, fbur]);
    const deadline = Date.now() + 5000;
    while (standIn.bytes().length < want.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // anything more would have arrived by now
    assert.deepEqual(standIn.bytes(), want);
    assert.deepEqual(standIn.clientInits, [1], 'a view-only viewer cannot ask for exclusive access');
    const listed = (await gw.api('GET', '/v1/sessions')).body.sessions as Array<{ viewOnly?: boolean; bytesToServer: number }>;
    assert.equal(listed[0]?.viewOnly, true);
    viewer.ws.send(Buffer.from([77, 1, 2, 3]));
    const closed = await viewer.closed;
    assert.equal(closed.code, 4033);
    assert.match(closed.reason, /PH_ERR_RFB_CLIENT_MESSAGE/);
    assert.ok(gw.logLines.some((l) => l.includes('unknown RFB client message type 77')), 'the log names the message');
    assert.deepEqual(standIn.bytes(), want, 'nothing of the unknown message was passed');
  });

  test('real QEMU: ESC from a view-only viewer leaves QEMU\'s screen as it was; from a normal viewer it opens SeaBIOS\'s boot menu', async () => {
    const before = shot('before.jpg');
    const viewOnly = await openRfbViewer(`${gw.wsUrl}?token=${(await mint('vm', { view_only: true })).token}`, gw.proxyUrl);
    for (let i = 0; i < 3; i++) {
      viewOnly.ws.send(keyEvent(true, ESC));
      viewOnly.ws.send(keyEvent(false, ESC));
      viewOnly.ws.send(qemuKey);
    }
    await new Promise((r) => setTimeout(r, 1500));
    const afterViewOnly = shot('after-view-only.jpg');
    assert.ok(differs(before, afterViewOnly) < 50, `QEMU's screen changed after a view-only viewer's ESC (${differs(before, afterViewOnly)} pixels)`);
    viewOnly.ws.close();

    const normal = await openRfbViewer(`${gw.wsUrl}?token=${(await mint('vm')).token}`, gw.proxyUrl);
    normal.ws.send(keyEvent(true, ESC));
    normal.ws.send(keyEvent(false, ESC));
    await new Promise((r) => setTimeout(r, 1500));
    const afterNormal = shot('after-normal.jpg');
    assert.ok(differs(before, afterNormal) > 500, `a normal viewer's ESC changes the screen (the check can fail): ${differs(before, afterNormal)} pixels`);
    normal.ws.close();
  });

  test('Chromium: the view-only page shows the VM and says "view only"; no Ctrl+Alt+Del button; typing in it leaves QEMU\'s screen as it was', async () => {
    const minted = await mint('vm', { view_only: true });
    const browser = await launchChromium();
    try {
      const tab = await (await browser.newContext({ viewport: { width: 900, height: 560 } })).newPage();
      await tab.goto(minted.url);
      await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
      assert.match((await tab.locator('#status').textContent()) ?? '', /view only/);
      assert.equal(await tab.locator('#sendCtrlAltDelButton').isVisible(), false);
      let lit = 0;
      const deadline = Date.now() + 15_000;
      while ((lit = await litPixels(tab)) < 500 && Date.now() < deadline) await tab.waitForTimeout(200);
      assert.ok(lit >= 500, `the VM's screen is drawn (${lit} lit pixels)`);
      const beforeKeys = shot('chromium-before.jpg');
      await tab.locator('#screen canvas').click();
      for (const key of ['Escape', 'Enter', '1', 'Control+Alt+Delete']) await tab.keyboard.press(key);
      await tab.waitForTimeout(1500);
      const afterKeys = shot('chromium-after.jpg');
      assert.ok(differs(beforeKeys, afterKeys) < 50, `QEMU's screen changed after typing in the view-only page (${differs(beforeKeys, afterKeys)} pixels)`);
      const sessions = (await gw.api('GET', '/v1/sessions')).body.sessions as Array<{ viewOnly?: boolean; bytesToServer: number }>;
      assert.equal(sessions.find((s) => s.viewOnly)?.viewOnly, true);
    } finally {
      await browser.close();
    }
  });

  test('serial: a view-only viewer\'s keys never reach the guest; a normal viewer\'s do', async () => {
    await serialVm.reset();
    await new Promise((r) => setTimeout(r, 1500));
    const viewOnly = await mint('serial-vm', { protocol: 'serial', view_only: true });
    const watcher = await openSerial(viewOnly.url, { origin: gw.proxyUrl });
    try {
      watcher.type('\x1b');
      await new Promise((r) => setTimeout(r, 1500));
      assert.doesNotMatch(watcher.text(), /Select boot device/);
      const typist = await openSerial((await mint('serial-vm', { protocol: 'serial' })).url, { origin: gw.proxyUrl });
      typist.type('\x1b');
      await watcher.waitFor(/Select boot device/, 10_000); // the view-only viewer sees the guest's answer to the other viewer
      await typist.close();
    } finally {
      await watcher.close();
    }
  });
});
