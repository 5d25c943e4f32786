import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runTempDir } from '../helpers/run.js';
import { pino } from 'pino';
import { StaticDriver } from '../../src/compute/static-driver.js';

const UUID = '9169fdb2-1234-4321-abcd-0123456789ab';

test('static driver: lookup by name or UUID; edits reload; a broken edit keeps the last good inventory', async () => {
  const dir = runTempDir('inventory');
  const file = join(dir, 'inventory.ini');
  try {
    await writeFile(file, `[web-1]\nhost = 10.0.0.5\nport = 5901\nuuid = ${UUID.toUpperCase()}\n`);
    const driver = await StaticDriver.open({ inventoryFile: file, logger: pino({ level: 'silent' }) });
    assert.deepEqual(await driver.resolve('web-1', 'vnc'), { instance: 'web-1', instanceUuid: UUID, protocol: 'vnc', host: '10.0.0.5', port: 5901 });
    assert.equal((await driver.resolve(UUID, 'vnc'))?.instance, 'web-1');
    assert.equal(await driver.resolve('nope', 'vnc'), undefined);
    await assert.rejects(driver.resolve('web-1', 'serial'), (err: Error & { code?: string }) => err.code === 'PH_ERR_INSTANCE_NO_CONSOLE');

    await writeFile(file, `[web-1]\nhost = 10.0.0.5\nport = 5902\n[web-2]\nhost = 10.0.0.6\nport = 5900\n`);
    assert.equal((await driver.resolve('web-1', 'vnc'))?.port, 5902, 'a changed file is re-read');
    assert.equal((await driver.resolve('web-2', 'vnc'))?.host, '10.0.0.6');

    await writeFile(file, `[web-1]\nhost = 10.0.0.5\nport = fifty\n`);
    assert.equal((await driver.resolve('web-2', 'vnc'))?.host, '10.0.0.6', 'the last good inventory stays in use');
    const health = await driver.health();
    assert.equal(health.ok, false);
    assert.match(health.detail ?? '', /inventory\.ini:1: \[web-1\] port: expected a whole number/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('static driver: an invalid inventory at start is PH_ERR_INVENTORY_INVALID listing the problems', async () => {
  const dir = runTempDir('inventory');
  try {
    const file = join(dir, 'bad.ini');
    await writeFile(file, '[a]\nhots = 1.2.3.4\nport = 5900\n');
    await assert.rejects(StaticDriver.open({ inventoryFile: file, logger: pino({ level: 'silent' }) }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'PH_ERR_INVENTORY_INVALID');
      assert.match(err.message, /bad\.ini:2: \[a\] hots: unknown key, did you mean host\?/);
      return true;
    });
    await assert.rejects(StaticDriver.open({ inventoryFile: join(dir, 'missing.ini'), logger: pino({ level: 'silent' }) }),
      (err: Error & { code?: string }) => err.code === 'PH_ERR_INVENTORY_INVALID' && /ENOENT/.test(err.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
