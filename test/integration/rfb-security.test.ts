/**
 * The RFB security proxy against a real QEMU whose VNC server requires a password: the proxy
 * authenticates, the browser sees only "None" and never the password.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { launchChromium, litPixels } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startQemuVncWithPassword } from '../helpers/qemu.js';
import { openConsole, rfbSecurityTypes } from '../helpers/ws-client.js';

const PASSWORD = 's3cret';

/** Browser-side RFB 3.8 up to ServerInit, choosing None. Returns the framebuffer size. */
async function handshakeToServerInit(url: string, origin: string): Promise<{ width: number; height: number }> {
  const ws = new WebSocket(url, ['binary'], { origin });
  let buf = Buffer.alloc(0);
  const steps: Array<[number, (b: Buffer) => Buffer | undefined]> = [
    [12, () => Buffer.from('RFB 003.008\n')],
    [2, (b) => { assert.deepEqual([...b], [1, 1], 'the proxy offers exactly one type: None'); return Buffer.from([1]); }],
    [4, (b) => { assert.equal(b.readUInt32BE(0), 0); return Buffer.from([1]); }],
  ];
  try {
    return await new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('close', (code, reason) => reject(new Error(`closed ${code} ${String(reason)}`)));
      ws.on('message', (data: Buffer) => {
        buf = Buffer.concat([buf, data]);
        try {
          for (;;) {
            const step = steps[0];
            if (step === undefined) {
              if (buf.length >= 4) resolve({ width: buf.readUInt16BE(0), height: buf.readUInt16BE(2) });
              return;
            }
            if (buf.length < step[0]) return;
            const reply = step[1](buf.subarray(0, step[0]));
            buf = buf.subarray(step[0]);
            steps.shift();
            if (reply) ws.send(reply);
          }
        } catch (err) {
          reject(err as Error);
        }
      });
    });
  } finally {
    ws.terminate();
  }
}

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
    const out = join(process.cwd(), 'test-output', 'e2e');
    await mkdir(out, { recursive: true });
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage({ viewport: { width: 900, height: 560 } });
      let prompted = false;
      tab.on('dialog', (d) => { prompted = true; void d.dismiss(); });
      await tab.goto((await gw.mint('locked')).body.url as string);
      await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
      let lit = 0;
      const deadline = Date.now() + 15_000;
      while ((lit = await litPixels(tab)) < 500 && Date.now() < deadline) await tab.waitForTimeout(200);
      await tab.screenshot({ path: join(out, 'vnc-password-qemu.png') });
      assert.ok(lit >= 500, `canvas has ${lit} lit pixels`);
      assert.equal(prompted, false, 'no password prompt');
      assert.ok(!(await tab.content()).includes(PASSWORD));
    } finally {
      await browser.close();
    }
  });
});
