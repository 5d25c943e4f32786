/**
 * Tempest's own noVNC tests (Debian 12 python3-tempest 33.0.0, NoVNCConsoleTestJSON.test_novnc and
 * test_novnc_bad_token, unchanged) against Porthole and a real QEMU, through Porthole's
 * Nova-compatible os-getVNCConsole call: transparent relay, and the RFB security proxy talking
 * VNC auth to QEMU. See test/fixtures/tempest/run_novnc.py for what is supplied around them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startQemuVnc, startQemuVncWithPassword } from '../helpers/qemu.js';
import { openConsole } from '../helpers/ws-client.js';

const run = promisify(execFile);
const HARNESS = join(process.cwd(), 'test', 'fixtures', 'tempest', 'run_novnc.py');

/** Debian's python3 (the one with Debian's tempest), never a pyenv shim on PATH. */
async function tempest(gw: TestGateway, instance: string): Promise<Record<string, string>> {
  const { stdout } = await run('/usr/bin/python3', [HARNESS, gw.apiUrl, gw.apiKey, instance], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, string>;
}

describe('Tempest noVNC tests', () => {
  let vm: DemoVm;
  let locked: { port: number; stop(): Promise<void> };
  before(async () => {
    vm = await startQemuVnc();
    locked = await startQemuVncWithPassword('tempest1');
  });
  after(async () => {
    await vm?.stop();
    await locked?.stop();
  });

  test('test_novnc and test_novnc_bad_token pass (regression: the bad-token close frame\'s code was "data" to Tempest)', async () => {
    const gw = await startTestGateway({ builtin: [{ name: 'tempest-vm', host: '127.0.0.1', port: vm.entry.port, protocol: 'vnc' }] });
    try {
      assert.deepEqual(await tempest(gw, 'tempest-vm'), { test_novnc: 'ok', test_novnc_bad_token: 'ok' });
      // A browser (it sends Origin) still gets the readable close code and reason.
      const browser = await openConsole(`${gw.wsUrl}?token=bad${'x'.repeat(30)}`, { origin: gw.proxyUrl });
      assert.equal(browser.closeCode, 4002);
      assert.match(browser.closeReason ?? '', /^PH_ERR_TOKEN_INVALID/);
    } finally {
      await gw.close();
    }
  });

  test('with the RFB security proxy (VNC auth to QEMU, None to Tempest) every handshake message is its own frame', async () => {
    const gw = await startTestGateway({
      ini: '[vnc]\nauth_schemes = vnc,none\n',
      builtin: [{ name: 'tempest-locked', host: '127.0.0.1', port: locked.port, protocol: 'vnc', password: 'tempest1' }],
    });
    try {
      assert.deepEqual(await tempest(gw, 'tempest-locked'), { test_novnc: 'ok', test_novnc_bad_token: 'ok' });
    } finally {
      await gw.close();
    }
  });
});
