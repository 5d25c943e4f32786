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

test('audit: serial consoles on a wildcard, outside port_range, or on a foreign address; libvirt\'s <console> mirror counted once', () => {
  const tcp = (element: 'serial' | 'console', host: string, port: number) => ({ element, type: 'tcp', mode: 'bind', host, port });
  const wild: DomainInfo = { ...dom('wild', '127.0.0.1'), charDevices: [tcp('serial', '0.0.0.0', 10001), tcp('console', '0.0.0.0', 10001)] } as DomainInfo;
  const far: DomainInfo = { ...dom('far', '127.0.0.1'), charDevices: [tcp('serial', '127.0.0.1', 30000), tcp('console', '127.0.0.1', 30000)] } as DomainInfo;
  const foreign: DomainInfo = { ...dom('foreign', '127.0.0.1'), charDevices: [tcp('serial', '192.0.2.9', 10002)] } as DomainInfo;
  const ok: DomainInfo = { ...dom('ok', '127.0.0.1'), charDevices: [tcp('serial', '10.1.0.5', 10003)] } as DomainInfo;
  const findings = auditFindings({
    listeners: [{ inode: '2', address: '0.0.0.0', port: 10001, pid: 43, domain: 'wild', uuid: 'wild-uuid', vncArg: undefined }],
    domains: [wild, far, foreign, ok].map((d) => ({ live: d, persistent: d })),
    serverListen: '127.0.0.1', serialPortRange: { start: 10000, stop: 20000 }, serialAddress: '10.1.0.5',
  });
  assert.deepEqual(findings.map((f) => [f.code, f.domain]), [
    ['PH_AUDIT_WILDCARD_LISTEN', 'wild'],
    ['PH_AUDIT_SERIAL_PORT_RANGE', 'far'],
    ['PH_AUDIT_SERIAL_NOT_LOOPBACK', 'foreign'],
  ]);
  assert.match(findings[0]?.message ?? '', /serial console \(no authentication at all\)/);
  assert.match(findings[0]?.fix ?? '', /<source mode='bind'/);
  assert.match(findings[1]?.message ?? '', /outside \[serial_console\] port_range 10000:20000/);
});
