/**
 * The operator's sessions view: `porthole sessions` across two nodes (each answers for its own),
 * `--close` on whichever node has the console, and the /admin page in Chromium closing a live
 * console whose page then says an administrator closed it. Real QEMU, real gateways, real Chromium.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { sessionsTable } from '../../src/cli/commands/sessions.js';
import { launchChromium } from '../helpers/browser.js';
import { runCli } from '../helpers/cli.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startQemuVnc } from '../helpers/qemu.js';
import { runTempDir } from '../helpers/run.js';
import { openVncConsole } from '../helpers/ws-client.js';


describe('sessions across nodes and the /admin page', () => {
  let vm: DemoVm;
  let dir: string;
  let a: TestGateway;
  let b: TestGateway;
  const key = randomBytes(24).toString('base64url');
  let keyFile: string;

  before(async () => {
    vm = await startQemuVnc();
    dir = runTempDir('admin');
    keyFile = join(dir, 'keys');
    await writeFile(keyFile, `ops:${key}\n`, { mode: 0o600 });
    const node = (name: string) => startTestGateway({ builtin: [{ ...vm.entry, name: 'vm' }], ini: `auth_keys_file = ${keyFile}\n[porthole]\nnode_name = ${name}\n` });
    a = await node('node-a');
    b = await node('node-b');
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await vm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const mintOn = async (gw: TestGateway, user: string) => {
    const res = await gw.api('POST', '/v1/consoles', { instance: 'vm', user }, key);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as { token: string; url: string };
  };

  test('porthole sessions --peers lists both nodes\' consoles; an unreachable node is named (exit 1) and the rest still shown; --close finds the node', async () => {
    const onA = await openVncConsole(`${a.wsUrl}?token=${(await mintOn(a, 'alice')).token}`, a.proxyUrl);
    const onB = await openVncConsole(`${b.wsUrl}?token=${(await mintOn(b, 'bob')).token}`, b.proxyUrl);
    try {
      const peers = `${a.apiUrl},${b.apiUrl}`;
      const listed = await runCli(['sessions', '--peers', peers, '--api-key-file', keyFile, '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      const sessions = (JSON.parse(listed.stdout) as { sessions: Array<{ id: string; node: string; who: { user: string } }> }).sessions;
      assert.deepEqual(sessions.map((s) => [s.node, s.who.user]), [['node-a', 'alice'], ['node-b', 'bob']]);
      const table = await runCli(['sessions', '--peers', peers, '--api-key-file', keyFile]);
      assert.match(table.stdout, /^NODE +ID +INSTANCE/);
      assert.match(table.stdout, /node-b +\S+ +vm +vnc +bob\/key ops +127\.0\.0\.1/);

      const dead = `http://127.0.0.1:${await freePort()}`;
      const partial = await runCli(['sessions', '--peers', `${peers},${dead}`, '--api-key-file', keyFile]);
      assert.equal(partial.code, 1);
      assert.match(partial.stderr, new RegExp(`cannot reach the Porthole API at ${dead.replace(/\./g, '\\.')}`));
      assert.match(partial.stdout, /node-a[\s\S]*node-b/, 'the reachable nodes are still listed');

      const closedB = new Promise<number>((r) => onB.once('close', (code) => r(code)));
      const bId = sessions[1]?.id ?? '';
      const close = await runCli(['sessions', '--peers', peers, '--api-key-file', keyFile, '--close', bId]);
      assert.equal(close.code, 0, close.stderr);
      assert.match(close.stdout, new RegExp(`closed ${bId} on ${b.apiUrl.replace(/\./g, '\\.')}`));
      assert.equal(await closedB, 4030);
      const again = await runCli(['sessions', '--peers', peers, '--api-key-file', keyFile, '--close', bId]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /no open console/);
    } finally {
      onA.close();
      onB.close();
    }
  });

  test('/admin: no key needed for the page, framing forbidden; the API behind it still needs one', async () => {
    const page = await fetch(`${a.apiUrl}/admin`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Open consoles/);
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal((await fetch(`${a.apiUrl}/v1/sessions`)).status, 401);
    assert.equal((await fetch(`${a.apiUrl}/admin/../v1/sessions`)).status, 401, 'no way around the key through the page prefix');
    assert.equal((await fetch(`${a.apiUrl}/admin/nothing.js`)).status, 404);
    assert.equal((await fetch(`${a.proxyUrl}/admin/index.html`)).status, 404, 'not on the public console proxy');
  });

  test('Chromium: the admin page lists a live console (names shown as text) and closes it; the console page says an administrator closed it', async () => {
    const hostile = '<img src=x onerror="window.pwned=1">';
    const minted = await mintOn(a, hostile);
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ viewport: { width: 1100, height: 600 } });
      const consoleTab = await context.newPage();
      await consoleTab.goto(minted.url);
      await consoleTab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });

      const admin = await context.newPage();
      await admin.goto(`${a.apiUrl}/admin`);
      await admin.fill('#key', 'wrong');
      await admin.click('#login button[type=submit]');
      await admin.waitForFunction(() => /does not know this key/.test(document.getElementById('login-error')?.textContent ?? ''));
      await admin.fill('#key', key);
      await admin.click('#login button[type=submit]');
      const row = admin.locator('#rows tr');
      await row.first().waitFor({ timeout: 10_000 });
      assert.equal(await row.count(), 1);
      const text = (await row.first().textContent()) ?? '';
      assert.ok(text.includes(hostile), 'the user string is shown as it is, as text');
      assert.match(text, /vm.*vnc.*key ops.*127\.0\.0\.1/);
      assert.equal(await admin.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'no markup from a mint field ran');
      assert.match((await admin.locator('#node').textContent()) ?? '', /node-a/);

      await row.first().locator('button').click();
      await consoleTab.waitForFunction(() => !(document.getElementById('reason')?.hidden ?? true), null, { timeout: 10_000 });
      assert.match((await consoleTab.locator('#reason').textContent()) ?? '', /An administrator closed this console/);
      await admin.waitForFunction(() => document.querySelectorAll('#rows tr').length === 0, null, { timeout: 10_000 });
      assert.equal(await admin.locator('#empty').isVisible(), true);
    } finally {
      await browser.close();
    }
  });
});

test('sessionsTable: aligned columns, who as user/project/key', () => {
  const out = sessionsTable([{ id: 's1', node: 'n', instance: 'vm', protocol: 'vnc', remote: '::1', started: new Date(0).toISOString(), bytesToClient: 5, bytesToServer: 6, state: 'relaying', who: { key: 'k', user: 'u' } }], 61_000);
  assert.equal(out, 'NODE  ID  INSTANCE  PROTOCOL  WHO      FROM  SINCE  TO VIEWER  TO SERVER  STATE\nn     s1  vm        vnc       u/key k  ::1   61 s   5          6          relaying\n');
});
