/**
 * One contract every token store backend must pass (undici's cacheStoreTests pattern).
 * Each backend's test file calls tokenStoreContract with a factory for a fresh, empty store.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { TokenStore, TokenStoreClock } from '../../src/tokens/store.js';
import type { ConnectInfo } from '../../src/console/types.js';
import { TOKEN_TOMBSTONE_MS } from '../../src/tokens/token.js';

export class ManualClock implements TokenStoreClock {
  constructor(public t = 1_800_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface ContractSubject {
  readonly store: TokenStore;
  /** Close and open the same persistent store again (restart); absent for non-persistent backends. */
  readonly reopen?: () => Promise<TokenStore>;
}

export function info(instance: string, port = 5900): ConnectInfo {
  return {
    instance, instanceUuid: undefined, protocol: 'vnc', consoleType: 'novnc',
    host: '127.0.0.1', port, accessUrlBase: 'http://127.0.0.1:6080/vnc_lite.html',
  };
}

export function tokenStoreContract(backend: string, open: (clock: ManualClock) => Promise<ContractSubject>): void {
  const withStore = (name: string, fn: (s: ContractSubject, clock: ManualClock) => Promise<void>): void => {
    test(`[${backend}] ${name}`, async () => {
      const clock = new ManualClock();
      const subject = await open(clock);
      let store = subject.store;
      try {
        await fn({ ...subject, ...(subject.reopen ? { reopen: async () => (store = await subject.reopen!()) } : {}) }, clock);
      } finally {
        await store.close();
      }
    });
  };

  withStore('authorize then validate returns the connect info until expiry', async ({ store }, clock) => {
    const issued = await store.authorize(info('vm-a', 5901), 60_000);
    assert.equal(issued.expiresAt, clock.now() + 60_000);
    const found = await store.validate(issued.token);
    assert.equal(found.status, 'valid');
    assert.deepEqual(found.status === 'valid' && found.connectInfo, info('vm-a', 5901));
    clock.advance(59_999);
    assert.equal((await store.validate(issued.token)).status, 'valid', 'tokens are reusable until expiry');
    clock.advance(1);
    assert.equal((await store.validate(issued.token)).status, 'expired');
  });

  withStore('who minted it (API key name, user, project) comes back with the connect info, and survives a restart', async ({ store, reopen }) => {
    const who = { key: 'horizon', user: 'alice@example.org', project: 'p-42' };
    const issued = await store.authorize({ ...info('vm-who'), who }, 60_000);
    const found = await store.validate(issued.token);
    assert.deepEqual(found.status === 'valid' && found.connectInfo.who, who);
    const onlyKey = await store.authorize({ ...info('vm-who'), who: { key: 'cli' } }, 60_000);
    const again = reopen ? await reopen() : store;
    const kept = await again.validate(onlyKey.token);
    assert.deepEqual(kept.status === 'valid' && kept.connectInfo.who, { key: 'cli' });
  });

  withStore('the grants view_only and record come back with the connect info (alone or with who), and survive a restart', async ({ store, reopen }) => {
    const both = await store.authorize({ ...info('vm-grants'), viewOnly: true, record: true }, 60_000);
    const withWho = await store.authorize({ ...info('vm-grants'), viewOnly: true, who: { user: 'u' } }, 60_000);
    const plain = await store.authorize(info('vm-grants'), 60_000);
    const again = reopen ? await reopen() : store;
    const grants = async (token: string) => {
      const r = await again.validate(token);
      assert.equal(r.status, 'valid');
      return r.status === 'valid' ? { viewOnly: r.connectInfo.viewOnly, record: r.connectInfo.record, who: r.connectInfo.who } : undefined;
    };
    assert.deepEqual(await grants(both.token), { viewOnly: true, record: true, who: undefined });
    assert.deepEqual(await grants(withWho.token), { viewOnly: true, record: undefined, who: { user: 'u' } });
    assert.deepEqual(await grants(plain.token), { viewOnly: undefined, record: undefined, who: undefined });
  });

  withStore('unknown and malformed tokens are "unknown", never an error', async ({ store }) => {
    await store.authorize(info('vm-a'), 60_000);
    assert.equal((await store.validate('A'.repeat(32))).status, 'unknown');
    assert.equal((await store.validate('')).status, 'unknown');
    assert.equal((await store.validate("'; DROP TABLE console_auth_tokens; --")).status, 'unknown');
  });

  withStore('revokeInstance revokes every live token of that instance only', async ({ store }) => {
    // Unique names: shared backends keep rows from earlier tests and runs.
    const [vmA, vmB] = [`vm-a-${randomBytes(4).toString('hex')}`, `vm-b-${randomBytes(4).toString('hex')}`];
    const a1 = await store.authorize(info(vmA), 60_000);
    const a2 = await store.authorize(info(vmA), 60_000);
    const b1 = await store.authorize(info(vmB), 60_000);
    const revoked = await store.revokeInstance(vmA);
    if (store.countsRevocations) assert.equal(revoked, 2);
    assert.equal((await store.validate(a1.token)).status, 'revoked');
    assert.equal((await store.validate(a2.token)).status, 'revoked');
    assert.equal((await store.validate(b1.token)).status, 'valid');
    if (store.countsRevocations) {
      assert.equal(await store.revokeInstance(vmA), 0);
      assert.equal(await store.revokeInstance('no-such-vm'), 0);
    }
  });

  withStore('revokeInstance by UUID revokes what was minted for that UUID, by name too (regression: revoke by UUID after the inventory forgot it)', async ({ store }) => {
    const name = `vm-u-${randomBytes(4).toString('hex')}`;
    const uuid = randomUUID();
    const other = await store.authorize({ ...info(`${name}-other`), instanceUuid: randomUUID() }, 60_000);
    const t1 = await store.authorize({ ...info(name), instanceUuid: uuid }, 60_000);
    const revoked = await store.revokeInstance(uuid);
    if (store.countsRevocations) assert.equal(revoked, 1);
    assert.equal((await store.validate(t1.token)).status, 'revoked');
    assert.equal((await store.validate(other.token)).status, 'valid');
    const t2 = await store.authorize({ ...info(name), instanceUuid: uuid }, 60_000);
    await store.revokeInstance(name);
    assert.equal((await store.validate(t2.token)).status, 'revoked', 'by name as before');
  });

  withStore('purgeExpired drops tokens past expiry plus the tombstone time, keeps live ones', async ({ store }, clock) => {
    if (store.backend === 'redis' || store.backend === 'memcached') return; // the server expires keys itself, on its own clock
    const old = await store.authorize(info('vm-a'), 1_000);
    const live = await store.authorize(info('vm-b'), TOKEN_TOMBSTONE_MS * 2);
    clock.advance(1_000 + TOKEN_TOMBSTONE_MS - 1);
    assert.equal(await store.purgeExpired(), 0, 'expired tokens are kept a while so users hear "expired"');
    assert.equal((await store.validate(old.token)).status, 'expired');
    clock.advance(1);
    assert.equal(await store.purgeExpired(), 1);
    assert.equal((await store.validate(old.token)).status, 'unknown');
    assert.equal((await store.validate(live.token)).status, 'valid');
  });

  withStore('tokens are unique under concurrent minting', async ({ store }) => {
    const issued = await Promise.all(Array.from({ length: 200 }, (_, i) => store.authorize(info(`vm-${i % 7}`), 60_000)));
    assert.equal(new Set(issued.map((t) => t.token)).size, 200);
    const lookups = await Promise.all(issued.map((t) => store.validate(t.token)));
    assert.ok(lookups.every((l) => l.status === 'valid'));
  });

  withStore('health reports the backend', async ({ store }) => {
    const h = await store.health();
    assert.equal(h.backend, backend);
    assert.equal(h.ok, true);
  });

  withStore('a restart loses no token (persistent backends)', async (subject, clock) => {
    if (!subject.reopen) return;
    const t = await subject.store.authorize(info('vm-a', 5905), 60_000);
    const revoked = await subject.store.authorize(info('vm-r'), 60_000);
    await subject.store.revokeInstance('vm-r');
    const reopened = await subject.reopen();
    clock.advance(1_000);
    const found = await reopened.validate(t.token);
    assert.equal(found.status, 'valid');
    assert.equal(found.status === 'valid' && found.connectInfo.port, 5905);
    assert.equal((await reopened.validate(revoked.token)).status, 'revoked');
  });
}
