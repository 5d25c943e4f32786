import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { LibvirtDriver } from '../../src/compute/libvirt-driver.js';
import { createVirshRunner } from '../../src/compute/virsh.js';

function driver(virshPath: string, uri: string): LibvirtDriver {
  return new LibvirtDriver({
    virsh: createVirshRunner(uri, virshPath), connectionUri: uri, proxyClientAddress: '127.0.0.1',
    logger: pino({ level: 'silent' }), pollIntervalMs: 3_600_000, onDomainStopped: async () => undefined,
  });
}

test('virsh missing: health says exactly that, and lookups fail with PH_ERR_LIBVIRT_UNAVAILABLE', async () => {
  const d = driver('/nonexistent/virsh', 'qemu:///system');
  try {
    const h = await d.health();
    assert.equal(h.ok, false);
    assert.match(h.detail ?? '', /\/nonexistent\/virsh not found: install libvirt-clients/);
    await assert.rejects(d.resolve('vm', 'vnc'), (e: Error & { code?: string }) => e.code === 'PH_ERR_LIBVIRT_UNAVAILABLE');
  } finally {
    await d.close();
  }
});

test('libvirtd not answering: health names the URI and the failure', async () => {
  const uri = 'qemu+unix:///system?socket=/nonexistent/libvirt-sock';
  const d = driver('virsh', uri);
  try {
    const h = await d.health();
    assert.equal(h.ok, false);
    assert.ok(h.detail?.includes(uri), h.detail);
    assert.match(h.detail ?? '', /connect/i);
  } finally {
    await d.close();
  }
});
