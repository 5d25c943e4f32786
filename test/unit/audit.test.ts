import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DomainInfo } from '../../src/compute/domain-xml.js';
import { classifyVirshError } from '../../src/compute/virsh.js';
import { auditFindings } from '../../src/ops/audit.js';
import { decodeProcAddress, parseProcNetTcp, parseQemuCmdline, type QemuListener } from '../../src/ops/proc-sockets.js';

test('/proc/net/tcp addresses decode like ss prints them', () => {
  assert.equal(decodeProcAddress('0100007F'), '127.0.0.1');
  assert.equal(decodeProcAddress('00000000'), '0.0.0.0');
  assert.equal(decodeProcAddress('00000000000000000000000000000000'), '::');
  assert.equal(decodeProcAddress('00000000000000000000000001000000'), '::1');
  assert.equal(decodeProcAddress('0000000000000000FFFF00000100007F'), '127.0.0.1');
});

test('parseProcNetTcp keeps LISTEN sockets only', () => {
  const text = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:170F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 55501 1 0000000000000000 100 0 0 10 0
   1: 0100007F:170C 0100007F:A2B4 01 00000000:00000000 00:00000000 00000000     0        0 55502 1 0000000000000000 20 4 30 10 -1
`;
  assert.deepEqual(parseProcNetTcp(text), [{ address: '0.0.0.0', port: 5903, inode: '55501' }]);
});

test('qemu command line: libvirt -name guest=…, -uuid, -vnc', () => {
  assert.deepEqual(parseQemuCmdline(['qemu-system-x86_64', '-name', 'guest=web,,1,debug-threads=on', '-uuid', 'ABC', '-vnc', '0.0.0.0:3,tls-creds=x']),
    { domain: 'web,1', uuid: 'abc', vncArg: '0.0.0.0:3,tls-creds=x' });
  assert.deepEqual(parseQemuCmdline(['qemu-system-x86_64', '-name', 'porthole-demo']), { domain: 'porthole-demo' });
});

test('virsh errors are classified', () => {
  assert.equal(classifyVirshError("error: failed to get domain 'x'"), 'not-found');
  assert.equal(classifyVirshError('error: failed to connect to the hypervisor\nerror: Failed to connect socket to /run/libvirt/libvirt-sock'), 'unreachable');
  assert.equal(classifyVirshError('error: something else'), 'failed');
});

const dom = (name: string, listen: string, extra: Partial<DomainInfo['graphics'][number]> = {}): DomainInfo => ({
  name, uuid: `${name}-uuid`, running: true, charDevices: [],
  graphics: [{ type: 'vnc', port: 5900, autoport: true, listenAddress: listen, listens: [{ type: 'address', address: listen }], hasPassword: false, ...extra }],
});
const listener = (d: DomainInfo, address: string, vncArg?: string): QemuListener =>
  ({ inode: '1', address, port: 5900, pid: 42, domain: d.name, uuid: d.uuid, vncArg });

test('audit: a clean host has no findings', () => {
  const a = dom('a', '127.0.0.1');
  assert.deepEqual(auditFindings({ listeners: [listener(a, '127.0.0.1')], domains: [{ live: a, persistent: a }], serverListen: '127.0.0.1' }), []);
});

test('audit: wildcard listener, drift, mismatch and missing auth each found with a fix', () => {
  const wild = dom('wild', '0.0.0.0');
  const drifted = dom('drifted', '127.0.0.1');
  const mgmt = dom('mgmt', '10.1.0.5', { hasPassword: true });
  const findings = auditFindings({
    listeners: [listener(wild, '0.0.0.0'), listener(drifted, '127.0.0.1'), listener(mgmt, '10.1.0.5')],
    domains: [{ live: wild, persistent: wild }, { live: drifted, persistent: dom('drifted', '0.0.0.0') }, { live: mgmt, persistent: mgmt }],
    serverListen: '127.0.0.1',
  });
  assert.deepEqual(findings.map((f) => [f.code, f.domain]), [
    ['PH_AUDIT_WILDCARD_LISTEN', 'wild'],
    ['PH_AUDIT_NO_AUTH', 'wild'],
    ['PH_AUDIT_LISTEN_DRIFT', 'drifted'],
    ['PH_AUDIT_LISTEN_MISMATCH', 'mgmt'],
  ]);
  assert.ok(findings.every((f) => f.fix.length > 10));
  assert.match(findings[2]?.fix ?? '', /virsh destroy drifted && virsh start drifted/);
});

test('audit: TLS on the -vnc argument counts as auth', () => {
  const tls = dom('tls', '10.1.0.5');
  const f = auditFindings({ listeners: [listener(tls, '10.1.0.5', '10.1.0.5:0,tls-creds=vnc-tls-creds0')], domains: [{ live: tls, persistent: tls }], serverListen: '10.1.0.5' });
  assert.deepEqual(f, []);
});
