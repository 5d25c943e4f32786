import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PortholeError } from '../../src/errors.js';
import { SessionRegistry, type RegisteredSession, type SessionInfo } from '../../src/sessions/registry.js';

function fake(id: string, instance: string | undefined, group?: string): RegisteredSession & { failed: string[] } {
  const failed: string[] = [];
  return {
    id, instance, group, failed,
    matchesInstance: (keys) => instance !== undefined && keys.includes(instance),
    info: (): SessionInfo => ({ id, instance, protocol: 'vnc', remote: 'r', started: '', bytesToClient: 1, bytesToServer: 2, state: 'relaying' }),
    fail: (err: PortholeError) => { failed.push(err.code); },
  };
}

test('SessionRegistry counts consoles, groups and consoles per instance, and forgets them on remove', () => {
  const reg = new SessionRegistry();
  const a = fake('a', 'vm1');
  const b = fake('b', 'vm1');
  const c1 = fake('c1', 'vm2', 'spice:x');
  const c2 = fake('c2', 'vm2', 'spice:x');
  const d = fake('d', undefined);
  for (const s of [a, b, c1, c2, d]) reg.add(s);
  assert.equal(reg.size, 5, 'connections');
  assert.equal(reg.consoles, 4, 'a SPICE console of two channels is one console');
  assert.equal(reg.countForInstance('vm1'), 2);
  assert.equal(reg.countForInstance('vm2'), 1);
  assert.equal(reg.countForInstance('vm3'), 0);
  assert.ok(reg.hasGroup('spice:x'));
  assert.ok(!reg.hasGroup('spice:y'));
  assert.deepEqual(reg.list().find((i) => i.id === 'c1')?.channels, 2);

  reg.remove(c1);
  assert.ok(reg.hasGroup('spice:x'), 'one channel left: the console is still open');
  assert.equal(reg.countForInstance('vm2'), 1);
  reg.remove(c2);
  assert.ok(!reg.hasGroup('spice:x'));
  assert.equal(reg.countForInstance('vm2'), 0);
  reg.remove(a);
  reg.remove(a); // twice: no effect
  assert.equal(reg.countForInstance('vm1'), 1);
  assert.equal(reg.consoles, 2);
  reg.remove(fake('b', 'vm1')); // another object with the same id: not this registry's session
  assert.equal(reg.countForInstance('vm1'), 1);
  reg.remove(b);
  reg.remove(d);
  assert.equal(reg.size, 0);
  assert.equal(reg.consoles, 0);
});

test('SessionRegistry closes by instance, counting a group once', () => {
  const reg = new SessionRegistry();
  const s = [fake('a', 'vm1'), fake('c1', 'vm1', 'spice:x'), fake('c2', 'vm1', 'spice:x'), fake('z', 'vm9')];
  for (const x of s) reg.add(x);
  assert.equal(reg.closeInstances(['vm1'], () => ({ code: 'PH_ERR_TOKEN_REVOKED' }) as PortholeError), 2);
  assert.deepEqual(s.map((x) => x.failed.length), [1, 1, 1, 0]);
});
