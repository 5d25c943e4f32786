/**
 * The RFB security proxy against a real QEMU whose VNC server requires a password: the proxy
 * authenticates, the browser sees only "None" and never the password.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { showConsoleInChromium } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startQemuVncWithPassword } from '../helpers/qemu.js';
import { handshakeToServerInit, openConsole, rfbSecurityTypes } from '../helpers/ws-client.js';

const PASSWORD = 's3cret';

describe('RFB security proxy with a password-protected QEMU', () => {
  let vm: { port: number; stop(): Promise<void> };
  let gw: TestGateway;

  before(async () => {
    vm = await startQemuVncWithPassword(PASSWORD);
    gw = await startTestGateway({
      ini: '[vnc]\nauth_schemes = vnc,none\n',
      builtin: [
        { name: 'locked', host: '127.0.0.1', port: vm.port, protocol: 'vnc', password: PASSWORD },
        { name: 'wrong-password', host: '127.0.0.1', port: vm.port, protocol: 'vnc', password: 'nope' },
        { name: 'no-password', host: '127.0.0.1', port: vm.port, protocol: 'vnc' },
      ],
    });
  });
  after(async () => {
    await gw?.close();
    await vm?.stop();
  });

  const url = async (instance: string) => `${gw.wsUrl}?token=${(await gw.mint(instance)).body.token as string}`;

  test('QEMU alone offers only VNC auth (the proxy is what removes the password prompt)', async () => {
    const direct = await startTestGateway({ builtin: [{ name: 'locked', host: '127.0.0.1', port: vm.port, protocol: 'vnc' }] });
    try {
      const { types } = await rfbSecurityTypes(`${direct.wsUrl}?token=${(await direct.mint('locked')).body.token as string}`, direct.proxyUrl);
      assert.deepEqual(types, [2]);
    } finally {
      await direct.close();
    }
  });

  test('the proxy authenticates with the password; the browser gets None and reaches ServerInit', async () => {
    const { width, height } = await handshakeToServerInit(await url('locked'), gw.proxyUrl);
    assert.ok(width >= 320 && height >= 200, `${width}x${height}`);
    assert.ok(gw.logLines.some((l) => l.includes('"auth":"vnc"') && l.includes('RFB security negotiated')));
    assert.ok(!gw.logLines.some((l) => l.includes(PASSWORD)), 'the password is never logged');
  });

  test('a wrong password → 4019 with the server\'s reason; no known password → 4018 naming the offered types', async () => {
    const wrong = await openConsole(await url('wrong-password'), { origin: gw.proxyUrl });
    assert.equal(wrong.closeCode, 4019);
    assert.match(wrong.closeReason ?? '', /^PH_ERR_RFB_AUTH_FAILED/);
    const none = await openConsole(await url('no-password'), { origin: gw.proxyUrl });
    assert.equal(none.closeCode, 4018);
    assert.match(none.closeReason ?? '', /^PH_ERR_RFB_NO_COMMON_AUTH/);
    assert.ok(gw.logLines.some((l) => /offers security types \[2 VNCAuth\]; allowed: vnc, none \(no VNC password is known/.test(l)));
  });

  test('Chromium shows the password-protected console without ever being asked for a password', async () => {
    const seen = await showConsoleInChromium((await gw.mint('locked')).body.url as string, 'vnc-password-qemu.png');
    assert.ok(seen.lit >= 500, `canvas has ${seen.lit} lit pixels`);
    assert.equal(seen.prompted, false, 'no password prompt');
    assert.ok(!seen.html.includes(PASSWORD));
  });
});
