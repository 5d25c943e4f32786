/**
 * Session recording: a real QEMU VNC console seen in Chromium is written in websockify's
 * VNC_frame_data format (0600, in a 0700 directory, named in the session list and the audit
 * lines) and replays in Chromium on /admin/play.html through noVNC's own RFB class (the VM's
 * screen is drawn); a real serial console is written as asciicast v2 and replays in
 * asciinema-player; the size caps close or refuse with their codes; downloads need the key and
 * take only listed names.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { parseVncRecording } from '../../src/recording/formats.js';
import { launchChromium, litPixels } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startQemuSerial, startQemuVnc, type QemuSerialVm } from '../helpers/qemu.js';
import { runTempDir } from '../helpers/run.js';
import { openSerial } from '../helpers/serial-client.js';
import { openRfbViewer } from '../helpers/ws-client.js';

describe('session recording', () => {
  let vm: DemoVm;
  let serialVm: QemuSerialVm;
  let gw: TestGateway;
  let dir: string;
  let recordDir: string;
  let auditFile: string;

  before(async () => {
    [vm, serialVm] = await Promise.all([startQemuVnc(), startQemuSerial()]);
    dir = runTempDir('recording');
    recordDir = join(dir, 'recordings');
    auditFile = join(dir, 'audit.jsonl');
    const serialPort = await freePort();
    gw = await startTestGateway({
      builtin: [{ ...vm.entry, name: 'vm' }, { name: 'serial-vm', host: '127.0.0.1', port: serialVm.vncPort, serialPort: serialVm.serialPort, protocol: 'vnc' }],
      ini: `[console]\nrecord_dir = ${recordDir}\n[audit]\nfile = ${auditFile}\n` +
        `[serial_console]\nenabled = true\nserialproxy_host = 127.0.0.1\nserialproxy_port = ${serialPort}\nbase_url = ws://127.0.0.1:${serialPort}/\n`,
    });
  });

  after(async () => {
    await gw?.close();
    await Promise.all([vm?.stop(), serialVm?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const login = async (page: import('playwright-core').Page) => {
    await page.fill('#key', gw.apiKey);
    await page.click('#login button[type=submit]');
  };

  test('VNC: recorded from Chromium, VNC_frame_data on disk (0600, named in sessions and audit), replayed by noVNC on /admin/recordings/<name> (reached from the list)', async () => {
    const minted = await gw.api('POST', '/v1/consoles', { instance: 'vm', record: true });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    assert.equal(minted.body.record, true);
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
      const tab = await context.newPage();
      await tab.goto(minted.body.url as string);
      await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
      assert.match((await tab.locator('#status').textContent()) ?? '', /this session is recorded/, 'the viewer is told');
      let lit = 0;
      const deadline = Date.now() + 15_000;
      while ((lit = await litPixels(tab)) < 500 && Date.now() < deadline) await tab.waitForTimeout(200);
      assert.ok(lit >= 500);
      const listed = (await gw.api('GET', '/v1/sessions')).body.sessions as Array<{ recording?: string }>;
      const name = listed[0]?.recording ?? '';
      assert.match(name, /^\d{4}-\d\d-\d\dT[\d-]+Z-vm-[0-9a-z-]+\.vnc\.js$/);
      await tab.close();

      const path = join(recordDir, name);
      const deadline2 = Date.now() + 5000;
      while (!(await readFile(path, 'utf8')).endsWith("'EOF'];\n") && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 50));
      const text = await readFile(path, 'utf8');
      assert.ok(text.startsWith('var VNC_frame_data = [\n') && text.endsWith("'EOF'];\n"), 'the file is what noVNC\'s playback harness loads');
      const frames = parseVncRecording(text);
      assert.equal(frames[0]?.bytes.toString('latin1'), 'RFB 003.008\n', 'the first frame is the greeting the browser got');
      assert.ok(frames.length > 5 && frames.every((f) => !f.fromClient), 'server frames only ([console] record_input = false)');
      const total = frames.reduce((n, f) => n + f.bytes.length, 0);
      assert.ok(total > 500, `screen updates are in it (${total} bytes)`);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.equal((await stat(recordDir)).mode & 0o777, 0o700);
      const audit = (await readFile(auditFile, 'utf8')).split('\n').filter((l) => l.includes('"console.closed"'));
      assert.ok(audit.some((l) => l.includes(`"recording":"${name}"`)), 'the close line names the recording');

      const api = await gw.api('GET', '/v1/recordings');
      assert.deepEqual((api.body.recordings as Array<{ name: string; protocol: string }>).map((r) => [r.name, r.protocol]), [[name, 'vnc']]);
      assert.equal((await fetch(`${gw.apiUrl}/v1/recordings/${name}`)).status, 401, 'downloads need the key');
      assert.equal((await gw.api('GET', `/v1/recordings/${encodeURIComponent('../state/api-key')}`)).status, 404);

      // The list links each recording to /admin/recordings/<name>, the player.
      const list = await context.newPage();
      await list.goto(`${gw.apiUrl}/admin/recordings/`);
      await login(list);
      const link = list.locator('#rows a').first();
      await link.waitFor({ timeout: 10_000 });
      assert.equal(await link.textContent(), name);
      assert.equal(await link.getAttribute('href'), `/admin/recordings/${name}`);
      const player = await context.newPage();
      await player.goto(`${gw.apiUrl}/admin/recordings/${encodeURIComponent(name)}?speed=0`); // a new tab has its own sessionStorage: it logs in again
      await login(player);
      await player.waitForFunction(() => (window as unknown as { portholePlayback?: { done: boolean } }).portholePlayback?.done === true, null, { timeout: 20_000 });
      let replayed = 0;
      const deadline3 = Date.now() + 10_000;
      while ((replayed = await litPixels(player)) < 500 && Date.now() < deadline3) await player.waitForTimeout(200);
      await mkdir(join(process.cwd(), 'test-output', 'e2e'), { recursive: true });
      await player.screenshot({ path: join(process.cwd(), 'test-output', 'e2e', 'recording-playback.png') });
      assert.ok(replayed >= 500, `the replayed screen shows the VM (${replayed} lit pixels)`);
    } finally {
      await browser.close();
    }
  });

  test('serial: asciicast v2 on disk, replayed in asciinema-player', async () => {
    await serialVm.reset();
    await new Promise((r) => setTimeout(r, 1500));
    const minted = await gw.api('POST', '/v1/consoles', { instance: 'serial-vm', protocol: 'serial', record: true });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    const client = await openSerial(minted.body.url as string, { origin: gw.proxyUrl });
    client.type('\x1b');
    await client.waitFor(/Select boot device/, 10_000);
    await client.close();
    const name = (await readdir(recordDir)).find((n) => n.endsWith('.cast')) ?? '';
    assert.match(name, /-serial-vm-[0-9a-z-]+\.cast$/);
    await new Promise((r) => setTimeout(r, 200));
    const [header, ...events] = (await readFile(join(recordDir, name), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as unknown);
    assert.equal((header as { version: number }).version, 2);
    assert.ok(events.every((e) => Array.isArray(e) && typeof e[0] === 'number' && e[1] === 'o'), 'output events only (input not recorded by default)');
    assert.match(events.map((e) => (e as [number, string, string])[2]).join(''), /Select boot device/);

    const browser = await launchChromium();
    try {
      const player = await (await browser.newContext({ viewport: { width: 900, height: 560 } })).newPage();
      await player.goto(`${gw.apiUrl}/admin/play.html?name=${encodeURIComponent(name)}&speed=0`);
      await login(player);
      await player.waitForFunction(() => /Select boot device/.test(document.getElementById('screen')?.textContent ?? ''), null, { timeout: 20_000 });
      await player.screenshot({ path: join(process.cwd(), 'test-output', 'e2e', 'serial-playback.png') });
    } finally {
      await browser.close();
    }
  });
});

describe('recording limits', () => {
  let vm: DemoVm;
  let gw: TestGateway;

  before(async () => {
    vm = await startQemuVnc();
    gw = await startTestGateway({
      builtin: [{ ...vm.entry, name: 'vm' }],
      ini: '[console]\nrecord = true\nrecord_max_file_size = 20K\nrecord_max_total_size = 100\n',
    });
  });

  after(async () => {
    await gw?.close();
    await vm?.stop();
  });

  test('[console] record: every console recorded; a file at its cap closes the console (4035) and ends properly; a full directory refuses the next (4034); SPICE refused at mint', async () => {
    const first = await gw.mint('vm');
    assert.equal(first.body.record, true, 'recorded without asking: [console] record');
    const viewer = await openRfbViewer(`${gw.wsUrl}?token=${first.body.token as string}`, gw.proxyUrl);
    viewer.ws.send(Buffer.from([2, 0, 0, 1, 0, 0, 0, 0])); // Raw encoding only: the full screen is big
    viewer.ws.send(Buffer.from([3, 0, 0, 0, 0, 0, 2, 0x80, 1, 0xe0]));
    const closed = await viewer.closed;
    assert.equal(closed.code, 4035);
    const dir = gw.gateway.recordings.dir;
    const [name] = await readdir(dir);
    const text = await readFile(join(dir, name as string), 'utf8');
    assert.ok(text.endsWith("'EOF'];\n"), 'the capped recording still ends and replays');
    assert.ok(Buffer.byteLength(text) <= 20 * 1024 + 16);

    const second = await gw.mint('vm');
    const refused = await openRfbViewer(`${gw.wsUrl}?token=${second.body.token as string}`, gw.proxyUrl).catch((err: Error) => err);
    assert.ok(refused instanceof Error && /closed 4034/.test(refused.message), refused instanceof Error ? refused.message : 'it opened');
    const spice = await gw.api('POST', '/v1/consoles', { instance: 'vm', protocol: 'spice' });
    assert.equal(spice.status, 400);
  });
});
