import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { test } from 'node:test';
import type { ConnectInfo } from '../../src/console/types.js';
import { PortholeError } from '../../src/errors.js';
import { passUpgradeGate, type UpgradeGateDeps, type UpgradeRefusal } from '../../src/proxy/upgrade-gate.js';

const INFO: ConnectInfo = { instance: 'vm1', protocol: 'vnc', consoleType: 'novnc', host: '10.0.0.5', port: 5900, accessUrlBase: 'https://console.example/vnc_lite.html' };

/** Gate dependencies that record which steps ran. */
function deps(overrides: Partial<UpgradeGateDeps> & { originOk?: (scheme: string | undefined) => boolean } = {}) {
  const calls: string[] = [];
  const d: UpgradeGateDeps = {
    acquire: async () => { calls.push('acquire'); return true; },
    release: (_r, guessed) => { calls.push(`release:${guessed}`); },
    checkOrigin: (scheme) => {
      calls.push(`origin:${scheme ?? 'host'}`);
      return (overrides.originOk ?? (() => true))(scheme) ? { ok: true } : { ok: false, reason: 'Origin header does not match this host' };
    },
    lookup: async () => { calls.push('lookup'); return { ok: true, connectInfo: INFO, expiresAt: Date.now() + 60_000 }; },
    acceptsConsole: () => { calls.push('accepts'); return undefined; },
    sessionLimits: () => { calls.push('limits'); return undefined; },
    prepare: async (info) => { calls.push('prepare'); return { ok: true, connectInfo: info }; },
    ...overrides,
  };
  return { d, calls };
}

test('upgrade gate: every check in order, cheapest first, the expensive prepare last', async () => {
  const { d, calls } = deps();
  const v = await passUpgradeGate(d, 'tok', '192.0.2.1');
  assert.equal(v.ok, true);
  assert.deepEqual(calls, ['acquire', 'origin:host', 'lookup', 'release:false', 'accepts', 'origin:https:', 'limits', 'prepare', 'limits']);
});

test('upgrade gate: a foreign Origin is refused before any token look-up or driver call, as an HTTP 403', async () => {
  const { d, calls } = deps({ originOk: () => false });
  const events: UpgradeRefusal[] = [];
  const listener = (m: unknown) => events.push(m as UpgradeRefusal);
  subscribe('porthole:upgrade:refused', listener);
  try {
    const v = await passUpgradeGate(d, 'tok', '192.0.2.1');
    assert.equal(v.ok, false);
    assert.equal(!v.ok && v.error.code, 'PH_ERR_ORIGIN_FORBIDDEN');
    assert.equal(!v.ok && v.beforeUpgrade, true);
    assert.deepEqual(calls, ['acquire', 'origin:host', 'release:false'], 'no lookup, no prepare; the limiter slot is given back');
    assert.deepEqual(events, [{ code: 'PH_ERR_ORIGIN_FORBIDDEN', stage: 'origin', remote: '192.0.2.1', instance: undefined }], 'one event per refusal');
  } finally {
    unsubscribe('porthole:upgrade:refused', listener);
  }
});

test('upgrade gate: an address over its failure limit costs nothing more; a wrong token counts as a guess; a wrong scheme is found after the token', async () => {
  const limited = deps({ acquire: async () => false });
  const v1 = await passUpgradeGate(limited.d, 'tok', 'a');
  assert.equal(!v1.ok && v1.error.code, 'PH_ERR_TOO_MANY_FAILURES');
  assert.deepEqual(limited.calls, [], 'not even the Origin is looked at');

  const guess = deps({ lookup: async () => ({ ok: false, error: new PortholeError('PH_ERR_TOKEN_INVALID') }) });
  const v2 = await passUpgradeGate(guess.d, 'tok', 'a');
  assert.equal(!v2.ok && v2.stage, 'token');
  assert.equal(!v2.ok && v2.beforeUpgrade, false, 'closed after the upgrade, so the page can show why');
  assert.ok(guess.calls.includes('release:true'));
  assert.ok(!guess.calls.includes('prepare'));

  const scheme = deps({ originOk: (s) => s !== 'https:' });
  const v3 = await passUpgradeGate(scheme.d, 'tok', 'a');
  assert.equal(!v3.ok && v3.error.code, 'PH_ERR_ORIGIN_FORBIDDEN');
  assert.ok(!scheme.calls.includes('prepare'), 'no driver call for a page of the wrong scheme');

  const serial = deps({ acceptsConsole: () => new PortholeError('PH_ERR_TOKEN_CONSOLE_TYPE') });
  const v4 = await passUpgradeGate(serial.d, 'tok', 'a');
  assert.equal(!v4.ok && v4.stage, 'console-type');
  assert.ok(!serial.calls.includes('prepare'));
});

test('upgrade gate: the limits are checked again after prepare (other upgrades may have taken the last slot meanwhile)', async () => {
  let n = 0;
  const { d } = deps({ sessionLimits: () => (n++ === 0 ? undefined : new PortholeError('PH_ERR_LIMIT_SESSIONS')) });
  const v = await passUpgradeGate(d, 'tok', 'a');
  assert.equal(!v.ok && v.error.code, 'PH_ERR_LIMIT_SESSIONS');
});
