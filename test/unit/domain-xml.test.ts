import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { parseDomainXml } from '../../src/compute/domain-xml.js';
import { vncTargetOf } from '../../src/compute/libvirt-console.js';

const fixture = async (name: string) => parseDomainXml(await readFile(`test/fixtures/libvirt/${name}.xml`, 'utf8'));

test('running domain with autoport: live port, listen, running', async () => {
  const d = await fixture('running-autoport');
  assert.equal(d.name, 'phx1');
  assert.match(d.uuid, /^[0-9a-f-]{36}$/);
  assert.equal(d.running, true);
  assert.deepEqual(d.graphics.map((g) => [g.type, g.port, g.autoport, g.listenAddress, g.hasPassword]), [['vnc', 5900, true, '127.0.0.1', false]]);
  assert.deepEqual(vncTargetOf(d, '127.0.0.1'), { instance: 'phx1', instanceUuid: d.uuid, protocol: 'vnc', host: '127.0.0.1', port: 5900 });
});

test('<domstatus> wrapper (/run/libvirt/qemu/NAME.xml) is read like the live XML', async () => {
  const d = await fixture('domstatus');
  assert.equal(d.running, true);
  assert.equal(d.graphics[0]?.port, 5900);
});

test('inactive and shut-off XML: port -1 is no port, not running → PH_ERR_INSTANCE_NOT_RUNNING', async () => {
  for (const name of ['inactive-autoport', 'shutoff']) {
    const d = await fixture(name);
    assert.equal(d.running, false);
    assert.equal(d.graphics[0]?.port, undefined);
    assert.throws(() => vncTargetOf(d, '127.0.0.1'), (e: Error & { code?: string }) => e.code === 'PH_ERR_INSTANCE_NOT_RUNNING');
  }
});

test('spice + vnc: both graphics, VNC chosen', async () => {
  const d = await fixture('spice');
  assert.deepEqual(d.graphics.map((g) => [g.type, g.listenAddress]), [['spice', '0.0.0.0'], ['vnc', '127.0.0.1']]);
});

test('no graphics → PH_ERR_INSTANCE_NO_CONSOLE', async () => {
  const d = { ...(await fixture('nographics')), running: true };
  assert.deepEqual(d.graphics, []);
  assert.throws(() => vncTargetOf(d, '127.0.0.1'), (e: Error & { code?: string }) => e.code === 'PH_ERR_INSTANCE_NO_CONSOLE');
});

test('unix socket listen and network listen', async () => {
  const sock = { ...(await fixture('socket')), running: true };
  assert.equal(sock.graphics[0]?.listens[0]?.type, 'socket');
  assert.throws(() => vncTargetOf(sock, '127.0.0.1'), (e: Error & { code?: string; message: string }) =>
    e.code === 'PH_ERR_INSTANCE_CONSOLE_UNREACHABLE' && /unix socket/.test(e.message));
  const net = await fixture('network');
  assert.deepEqual(net.graphics[0]?.listens, [{ type: 'network', address: undefined, network: 'default', socket: undefined }]);
});

test('loopback listen while the proxy is remote is a clear error', async () => {
  const d = await fixture('running-autoport');
  assert.throws(() => vncTargetOf(d, '10.0.0.5'), (e: Error & { code?: string; message: string }) =>
    e.code === 'PH_ERR_INSTANCE_CONSOLE_UNREACHABLE' && /listens only on 127\.0\.0\.1, but the proxy reaches this host through 10\.0\.0\.5/.test(e.message));
});

test('--security-info XML exposes the password; wildcard listen parsed', async () => {
  const d = await fixture('wildcard-passwd-secinfo');
  assert.equal(d.graphics[0]?.listenAddress, '0.0.0.0');
  assert.equal(d.graphics[0]?.hasPassword, true);
  assert.equal(d.graphics[0]?.password, 's3cret');
});

test('not a domain → error', () => {
  assert.throws(() => parseDomainXml('<network><name>x</name></network>'), /no <domain>/);
  assert.throws(() => parseDomainXml('<domain><name>x</name></domain>'), /without <name> or <uuid>/);
});

test('serial consoles as Nova finds them: first <serial type=tcp mode=bind>, else <console>; host from the XML; pty-only named', async () => {
  const { serialConsoleOf } = await import('../../src/compute/domain-xml.js');
  const wrap = (devices: string) => parseDomainXml(`<domain type='kvm' id='3'><name>s1</name><uuid>81E6FD6F-0000-4000-8000-000000000001</uuid><devices>${devices}</devices></domain>`);
  // The live XML libvirt 9.0 gives for a TCP serial next to a pty one (CONSOLE-FACTS §2.1).
  const live = wrap(`<serial type='tcp'><source mode='bind' host='127.0.0.1' service='10050' tls='no'/><protocol type='raw'/>
    <log file='/var/lib/libvirt/images/x/console.log' append='off'/><target type='isa-serial' port='0'><model name='isa-serial'/></target><alias name='serial0'/></serial>
    <serial type='pty'><source path='/dev/pts/0'/><target type='isa-serial' port='1'><model name='isa-serial'/></target><alias name='serial1'/></serial>
    <console type='tcp'><source mode='bind' host='127.0.0.1' service='10050' tls='no'/><protocol type='raw'/><target type='serial' port='0'/><alias name='serial0'/></console>`);
  assert.equal(live.charDevices.length, 3);
  assert.deepEqual(live.charDevices[1], { element: 'serial', type: 'pty', mode: undefined, host: undefined, port: undefined, targetPort: 1, tty: '/dev/pts/0' });
  assert.deepEqual(serialConsoleOf(live), { kind: 'tcp', host: '127.0.0.1', port: 10050 });
  // Only a <console type=tcp> (no <serial>): Nova falls back to it.
  assert.deepEqual(serialConsoleOf(wrap(`<console type='tcp'><source mode='bind' host='10.0.0.7' service='10001'/><target type='serial' port='0'/></console>`)),
    { kind: 'tcp', host: '10.0.0.7', port: 10001 });
  // mode='connect' is QEMU dialling out: nothing to connect to.
  assert.deepEqual(serialConsoleOf(wrap(`<serial type='tcp'><source mode='connect' host='10.0.0.9' service='4555'/><target port='0'/></serial>`)), { kind: 'none' });
  // pty only (Nova's layout with [serial_console] enabled = false): reachable with `virsh console` only.
  assert.deepEqual(serialConsoleOf(wrap(`<serial type='pty'><target port='0'/></serial><console type='pty' tty='/dev/pts/4'><target type='serial' port='0'/></console>`)),
    { kind: 'pty-only', tty: undefined });
  assert.deepEqual(serialConsoleOf(wrap('')), { kind: 'none' });
});

test('serial target of a libvirt domain: host from the XML (a wildcard → the management address), pty-only → 409 naming virsh console', async () => {
  const { serialTargetOf } = await import('../../src/compute/libvirt-console.js');
  const dom = (devices: string, id = " id='4'") => parseDomainXml(`<domain type='kvm'${id}><name>s2</name><uuid>81e6fd6f-0000-4000-8000-000000000002</uuid><devices>${devices}</devices></domain>`);
  const tcp = (host: string) => `<serial type='tcp'><source mode='bind' host='${host}' service='10007'/><target port='0'/></serial>`;
  assert.deepEqual(serialTargetOf(dom(tcp('10.0.0.8')), '10.0.0.1'), { instance: 's2', instanceUuid: '81e6fd6f-0000-4000-8000-000000000002', protocol: 'serial', host: '10.0.0.8', port: 10007 });
  assert.equal(serialTargetOf(dom(tcp('0.0.0.0')), '10.0.0.1').host, '10.0.0.1');
  const code = (f: () => unknown) => { try { f(); return 'none'; } catch (e) { return (e as { code?: string }).code; } };
  assert.equal(code(() => serialTargetOf(dom(`<serial type='pty'><source path='/dev/pts/3'/><target port='0'/></serial>`), '127.0.0.1')), 'PH_ERR_INSTANCE_SERIAL_PTY_ONLY');
  assert.throws(() => serialTargetOf(dom(`<serial type='pty'><source path='/dev/pts/3'/><target port='0'/></serial>`), '127.0.0.1'), /virsh console s2/);
  assert.equal(code(() => serialTargetOf(dom(''), '127.0.0.1')), 'PH_ERR_INSTANCE_NO_CONSOLE');
  assert.equal(code(() => serialTargetOf(dom(tcp('127.0.0.1'), ''), '127.0.0.1')), 'PH_ERR_INSTANCE_NOT_RUNNING');
});
