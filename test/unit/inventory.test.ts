import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseInventory } from '../../src/compute/inventory.js';

test('parses instances with optional uuid and protocol', () => {
  const { entries, problems } = parseInventory(
    '[demo-vm]\nhost = 127.0.0.1\nport = 5907\n# comment\n[db-1]\nhost = ::1\nport = 5908\nuuid = 9169FDB2-1234-4321-ABCD-0123456789AB\nprotocol = vnc\n', 'inv.ini');
  assert.deepEqual(problems, []);
  assert.deepEqual(entries, [
    { name: 'demo-vm', uuid: undefined, host: '127.0.0.1', port: 5907, protocol: 'vnc' },
    { name: 'db-1', uuid: '9169fdb2-1234-4321-abcd-0123456789ab', host: '::1', port: 5908, protocol: 'vnc' },
  ]);
});

test('reports every problem with file and line', () => {
  const { entries, problems } = parseInventory(
    '[a]\nhost = 127.0.0.1\n[b]\nhost = 127.0.0.1\nport = 99999\n[c]\nhost = 127.0.0.1\nprot = 5900\nport = 5900\n[d]\nport=1\nhost=x\nuuid=nope\n', 'inv.ini');
  assert.deepEqual(entries.map((e) => e.name), ['c']);
  assert.deepEqual(problems, [
    'inv.ini:8: [c] prot: unknown key, did you mean port?',
    'inv.ini:1: [a] port: missing (the VNC server\'s TCP port, e.g. 5900)',
    'inv.ini:3: [b] port: must be from 1 to 65535, got 99999',
    'inv.ini:10: [d] uuid: expected a UUID, got "nope"',
  ]);
});

test('duplicate instance and duplicate uuid are refused', () => {
  const u = '9169fdb2-1234-4321-abcd-0123456789ab';
  const { problems } = parseInventory(`[a]\nhost=h\nport=1\nuuid=${u}\n[b]\nhost=h\nport=2\nuuid=${u}\n[a]\nhost=h\nport=3\n`, 'i');
  assert.ok(problems.some((p) => /\[a\]: instance defined twice/.test(p)));
  assert.ok(problems.some((p) => /uuid: .* is used by another instance/.test(p)));
});

test('serial_port: a TCP serial console besides the VNC one, on the same host; the static driver serves both', async () => {
  const text = '[vm]\nhost = 10.0.0.5\nport = 5901\nserial_port = 10001\n[bad]\nhost = h\nport = 1\nprotocol = serial\nserial_port = 2\n[worse]\nhost = h\nport = 1\nserial_port = 70000\n';
  const { entries, problems } = parseInventory(text, 'inv.ini');
  assert.deepEqual(entries, [{ name: 'vm', uuid: undefined, host: '10.0.0.5', port: 5901, protocol: 'vnc', serialPort: 10001 }]);
  assert.deepEqual(problems, [
    'inv.ini:5: [bad] serial_port: protocol = serial already makes port the serial console; use one of them',
    'inv.ini:10: [worse] serial_port: must be from 1 to 65535, got 70000',
  ]);
  const { StaticDriver } = await import('../../src/compute/static-driver.js');
  const { pino } = await import('pino');
  const driver = await StaticDriver.open({ inventoryFile: '', builtin: entries, logger: pino({ level: 'silent' }) });
  try {
    assert.deepEqual(await driver.resolve('vm', 'serial'), { instance: 'vm', instanceUuid: undefined, protocol: 'serial', host: '10.0.0.5', port: 10001 });
    assert.equal((await driver.resolve('vm', 'vnc'))?.port, 5901);
    assert.deepEqual((await driver.list())[0]?.protocols, ['vnc', 'serial']);
  } finally {
    await driver.close();
  }
});
