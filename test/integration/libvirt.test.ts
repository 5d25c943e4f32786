/**
 * The libvirt driver against a real libvirtd + QEMU (TCG, diskless domains): minting by name and
 * UUID, RFB through the proxy, shut-off and destroyed domains, the stale-port guard, vncdisplay,
 * audit, and Chromium showing a domain's SeaBIOS screen.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchChromium, litPixels } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestLibvirt, TestDomains, type TestLibvirt } from '../helpers/libvirt.js';
import { runTempDir } from '../helpers/run.js';
import { openConsole, rfbSecurityTypes } from '../helpers/ws-client.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { openSerial } from '../helpers/serial-client.js';
import { linkChannel } from '../helpers/spice-client.js';

const cli = (args: string[]) => runCli(args);

describe('libvirt driver against real libvirtd', () => {
  let libvirt: TestLibvirt;
  let domains: TestDomains;
  let gw: TestGateway;
  let dir: string;
  let conf: string;
  const vms: Array<{ name: string; uuid: string; port: number }> = [];

  before(async () => {
    libvirt = await startTestLibvirt();
    domains = new TestDomains(libvirt);
    for (const n of ['a', 'b', 'c']) vms.push(await domains.create(n));
    await domains.define('off');
    // poll_interval is long here so the connect-time port re-check is what is tested.
    gw = await startTestGateway({ ini: `[compute]\ndriver = libvirt\n${libvirt.ini}poll_interval = 3600\n` });
    dir = runTempDir('libvirt-cli');
    conf = join(dir, 'porthole.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/state\n[compute]\ndriver = libvirt\n${libvirt.ini}`);
  });

  after(async () => {
    await gw?.close();
    await domains?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
    await libvirt?.stop();
  });

  const ws = (token: string) => `${gw.wsUrl}?token=${token}`;
  /** The run-unique name of a test domain. */
  const N = (short: string) => domains.name(short);
  const virsh = (...args: string[]) => libvirt.virsh(...args);

  test('GET /v1/instances lists domains with state and console protocols', async () => {
    const res = await gw.api('GET', '/v1/instances');
    assert.equal(res.status, 200);
    const list = res.body.instances as Array<{ name: string; uuid: string; state: string; protocols: string[] }>;
    const mine = list.filter((i) => i.name.startsWith(N(''))).sort((a, b) => a.name.localeCompare(b.name));
    assert.deepEqual(mine.map((i) => [i.name, i.state, i.protocols]), [
      [N('a'), 'running', ['vnc']], [N('b'), 'running', ['vnc']], [N('c'), 'running', ['vnc']], [N('off'), 'shut off', ['vnc']],
    ]);
  });

  test('mint by name and by UUID; the RFB handshake reaches each domain through the proxy', async () => {
    for (const vm of vms) {
      for (const key of [vm.name, vm.uuid]) {
        const minted = await gw.mint(key);
        assert.equal(minted.status, 201, JSON.stringify(minted.body));
        assert.equal(minted.body.instance, vm.name);
        const { version, types } = await rfbSecurityTypes(ws(minted.body.token as string), gw.proxyUrl);
        assert.equal(version, 'RFB 003.008\n');
        assert.deepEqual(types, [1]);
      }
    }
  });

  test('shut-off domain → 409 PH_ERR_INSTANCE_NOT_RUNNING; unknown → 404', async () => {
    const off = await gw.mint(N('off'));
    assert.equal(off.status, 409);
    assert.equal(off.body.code, 'PH_ERR_INSTANCE_NOT_RUNNING');
    const unknown = await gw.mint(N('nope'));
    assert.equal(unknown.status, 404);
  });

  test('a domain restarted on another port: the old token cannot reach what now listens on the old port', async () => {
    const victim = await domains.create('victim');
    const token = (await gw.mint(N('victim'))).body.token as string;
    await virsh('destroy', N('victim'));
    const intruder = await domains.create('intruder');
    assert.equal(intruder.port, victim.port, 'libvirt gave the freed port to the next domain');
    await virsh('start', N('victim'));
    assert.notEqual(await domains.port('victim'), victim.port);
    const out = await openConsole(ws(token), { origin: gw.proxyUrl });
    assert.equal(out.closeCode, 4015);
    assert.match(out.closeReason ?? '', /^PH_ERR_TARGET_STALE/);
    assert.equal(out.received.length, 0, 'not one byte from the other domain');
  });

  test('a domain destroyed after minting: its token stops working (stale at once, revoked by the poll)', async () => {
    const g2 = await startTestGateway({ ini: `[compute]\ndriver = libvirt\n${libvirt.ini}poll_interval = 1\n` });
    try {
      await domains.create('doomed');
      const token = (await g2.mint(N('doomed'))).body.token as string;
      await virsh('destroy', N('doomed'));
      const first = await openConsole(`${g2.wsUrl}?token=${token}`, { origin: g2.proxyUrl });
      assert.ok(first.closeCode === 4015 || first.closeCode === 4004, `close code ${first.closeCode}`);
      await new Promise((r) => setTimeout(r, 2500));
      const later = await openConsole(`${g2.wsUrl}?token=${token}`, { origin: g2.proxyUrl });
      assert.equal(later.closeCode, 4004, 'the lifecycle poll revoked the token');
      await virsh('start', N('doomed'));
      const restarted = await openConsole(`${g2.wsUrl}?token=${token}`, { origin: g2.proxyUrl });
      assert.equal(restarted.closeCode, 4004, 'a revoked token stays revoked when the domain comes back');
    } finally {
      await g2.close();
    }
  });

  test('porthole vncdisplay prints the display, listen address and reachability', async () => {
    const vm = vms[0] as { name: string; port: number };
    const res = await cli(['vncdisplay', vm.name, '--config-file', conf]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.split('\n')[0], `:${vm.port - 5900}`);
    assert.match(res.stdout, new RegExp(`listen: +127\\.0\\.0\\.1 port ${vm.port}`));
    assert.match(res.stdout, /reachable: +yes \(RFB 003\.008\)/);
    const off = await cli(['vncdisplay', N('off'), '--config-file', conf]);
    assert.equal(off.code, 1);
    assert.match(off.stderr, /PH_ERR_INSTANCE_NOT_RUNNING/);
  });

  test('porthole audit: clean host → exit 0; a 0.0.0.0 domain and a drifted domain are exactly what it reports', async () => {
    const clean = await cli(['audit', '--config-file', conf]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /no problems found/);

    await domains.create('wild', '0.0.0.0');
    await domains.create('drift', '127.0.0.1');
    const inactive = (await virsh('dumpxml', '--inactive', N('drift'))).replaceAll("'127.0.0.1'", "'0.0.0.0'");
    await writeFile(join(dir, 'drift.xml'), inactive);
    await virsh('define', join(dir, 'drift.xml')); // new definition; the running qemu keeps 127.0.0.1

    const res = await cli(['audit', '--json', '--config-file', conf]);
    assert.equal(res.code, 1);
    const report = JSON.parse(res.stdout) as { findings: Array<{ code: string; domain: string; fix: string }> };
    assert.deepEqual(report.findings.map((f) => [f.code, f.domain]).sort(), [
      ['PH_AUDIT_LISTEN_DRIFT', N('drift')],
      ['PH_AUDIT_NO_AUTH', N('wild')],
      ['PH_AUDIT_WILDCARD_LISTEN', N('wild')],
    ]);
    const human = await cli(['audit', '--config-file', conf]);
    assert.equal(human.code, 1);
    assert.match(human.stdout, new RegExp(`PH_AUDIT_WILDCARD_LISTEN .*${N('wild')} .*listens on 0\\.0\\.0\\.0:\\d+ \\(qemu pid \\d+\\)`));
    assert.match(human.stdout, new RegExp(`fix: .*virsh destroy ${N('drift')} && virsh start ${N('drift')}`));
    await virsh('destroy', N('wild'));
    await virsh('destroy', N('drift'));
  });

  test('a domain with passwd=: the proxy reads it with --security-info and authenticates; the browser gets None', async () => {
    await domains.create('locked', '127.0.0.1', "passwd='lvs3cret'");
    const g2 = await startTestGateway({ ini: `[compute]\ndriver = libvirt\n${libvirt.ini}poll_interval = 3600\n[vnc]\nauth_schemes = vnc,none\n` });
    try {
      const token = (await g2.mint(N('locked'))).body.token as string;
      const { version, types } = await rfbSecurityTypes(`${g2.wsUrl}?token=${token}`, g2.proxyUrl);
      assert.equal(version, 'RFB 003.008\n');
      // The proxy greets the browser only after QEMU accepted its password: [1] here means it did.
      assert.deepEqual(types, [1], 'the browser is offered None, not the domain\'s VNC auth');
      assert.ok(!g2.logLines.some((l) => l.includes('lvs3cret')));
    } finally {
      await g2.close();
      await virsh('destroy', N('locked'));
    }
  });

  test('serial: <serial type=\'tcp\'> reached through the proxy (output and input), a pty-only serial → 409 naming virsh console', async () => {
    const service = await freePort();
    // As Nova writes it (no <protocol>, libvirt defaults to raw); SeaBIOS prints on it with useserial.
    await domains.create('tty', '127.0.0.1', '', {
      os: "<bios useserial='yes'/><bootmenu enable='yes' timeout='60000'/>",
      devices: `<serial type='tcp'><source mode='bind' host='127.0.0.1' service='${service}'/><target port='0'/></serial>`,
    });
    await domains.create('pty', '127.0.0.1', '', { devices: "<serial type='pty'><target port='0'/></serial>" });
    const serialPort = await freePort();
    const g2 = await startTestGateway({
      ini: `[compute]\ndriver = libvirt\n${libvirt.ini}poll_interval = 3600\n[serial_console]\nenabled = true\nserialproxy_host = 127.0.0.1\nserialproxy_port = ${serialPort}\nbase_url = ws://127.0.0.1:${serialPort}/\n`,
    });
    try {
      const listed = (await g2.api('GET', '/v1/instances')).body.instances as Array<{ name: string; protocols?: string[] }>;
      assert.ok(listed.find((i) => i.name === N('tty'))?.protocols?.includes('serial'), JSON.stringify(listed));
      const minted = await g2.mint(N('tty'), { protocol: 'serial' });
      assert.equal(minted.status, 201, JSON.stringify(minted.body));
      assert.equal(minted.body.url, `ws://127.0.0.1:${serialPort}/?token=${String(minted.body.token)}`);
      const client = await openSerial(minted.body.url as string);
      try {
        client.type('\x1b');
        await client.waitFor(/Select boot device/);
      } finally {
        await client.close();
      }
      const pty = await g2.mint(N('pty'), { protocol: 'serial' });
      assert.equal(pty.status, 409);
      assert.equal(pty.body.code, 'PH_ERR_INSTANCE_SERIAL_PTY_ONLY');
      assert.match(String(pty.body.message), /virsh console/);
    } finally {
      await g2.close();
      await Promise.all([virsh('destroy', N('tty')), virsh('destroy', N('pty'))]);
    }
  });

  test('SPICE: <graphics type=\'spice\' passwd=…> reached through the proxy, which links with the password read from libvirt', async () => {
    await domains.create('sp', '127.0.0.1', '', {
      devices: "<graphics type='spice' autoport='yes' listen='127.0.0.1' passwd='sp1ce-pw'><listen type='address' address='127.0.0.1'/></graphics>",
    });
    const spicePort = await freePort();
    const g2 = await startTestGateway({
      ini: `[compute]\ndriver = libvirt\n${libvirt.ini}poll_interval = 3600\n[spice]\nenabled = true\nhtml5proxy_host = 127.0.0.1\nhtml5proxy_port = ${spicePort}\nhtml5proxy_base_url = http://127.0.0.1:${spicePort}/spice_auto.html\n`,
    });
    try {
      const listed = (await g2.api('GET', '/v1/instances')).body.instances as Array<{ name: string; protocols?: string[] }>;
      assert.ok(listed.find((i) => i.name === N('sp'))?.protocols?.includes('spice'), JSON.stringify(listed));
      const minted = await g2.mint(N('sp'), { protocol: 'spice' });
      assert.equal(minted.status, 201, JSON.stringify(minted.body));
      const main = await linkChannel(`ws://127.0.0.1:${spicePort}/websockify?token=${String(minted.body.token)}`, 1);
      assert.equal(main.result, 0, `link result ${main.result} ${main.closeCode ?? ''} ${main.closeReason ?? ''}`);
      main.ws.close();
      assert.ok(!g2.logLines.some((l) => l.includes('sp1ce-pw')));
      const vncOnly = await g2.mint(N('a'), { protocol: 'spice' });
      assert.equal(vncOnly.status, 409);
      assert.match(String(vncOnly.body.message), /no SPICE graphics \(it has: vnc\)/);
    } finally {
      await g2.close();
      await virsh('destroy', N('sp'));
    }
  });

  test('Chromium shows a libvirt domain\'s SeaBIOS screen through the proxy', async () => {
    const out = join(process.cwd(), 'test-output', 'e2e');
    await mkdir(out, { recursive: true });
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage({ viewport: { width: 900, height: 560 } });
      await tab.goto((await gw.mint(N('b'))).body.url as string);
      await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
      let lit = 0;
      const deadline = Date.now() + 15_000;
      while ((lit = await litPixels(tab)) < 500 && Date.now() < deadline) await tab.waitForTimeout(200);
      await tab.screenshot({ path: join(out, 'libvirt-domain.png') });
      assert.ok(lit >= 500, `canvas has ${lit} lit pixels`);
      assert.ok(((await tab.locator('#status').textContent()) ?? '').includes(N('b')));
    } finally {
      await browser.close();
    }
  });
});
