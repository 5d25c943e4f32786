/** The token store contract on real Redis and memcached (two servers), plus their shared-store specifics. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { MemcachedTokenStore, normaliseMemcacheServers } from '../../src/tokens/memcached-store.js';
import { RedisTokenStore, redisDisplayName } from '../../src/tokens/redis-store.js';
import { freePort } from '../helpers/net.js';
import { startMariadb, startMemcached, startPostgres, startRedis, startSentinel, type DatabaseService, type RunningService } from '../helpers/services.js';
import { SqlTokenStore } from '../../src/tokens/sql-store.js';
import { info, ManualClock, tokenStoreContract } from './token-store.js';

let redis: RunningService;
let mc1: RunningService;
let mc2: RunningService;
let pg: DatabaseService;
let maria: DatabaseService;

before(async () => {
  [redis, mc1, mc2, pg, maria] = await Promise.all([startRedis(), startMemcached(), startMemcached(), startPostgres(), startMariadb()]);
});
after(async () => {
  await Promise.all([redis?.stop(), mc1?.stop(), mc2?.stop(), pg?.destroy(), maria?.destroy()]);
});

tokenStoreContract('postgresql', async (clock) => {
  const store = await SqlTokenStore.open({ connection: pg.url, clock });
  return { store, reopen: async () => { await store.close(); return SqlTokenStore.open({ connection: pg.url, clock }); } };
});

tokenStoreContract('mysql', async (clock) => {
  const store = await SqlTokenStore.open({ connection: maria.url.replace('mysql://', 'mysql+pymysql://'), clock });
  return { store, reopen: async () => { await store.close(); return SqlTokenStore.open({ connection: maria.url, clock }); } };
});

tokenStoreContract('redis', async (clock) => ({
  store: await RedisTokenStore.open({ server: redis.address, clock, keyPrefix: `test-${randomBytes(4).toString('hex')}:` }),
}));

tokenStoreContract('memcached', async (clock) => ({
  store: await MemcachedTokenStore.open({ servers: [mc1.address, mc2.address], clock }),
}));

describe('shared store specifics', () => {
  test('memcached: nodes listing the servers in different orders see the same tokens and revocations', async () => {
    const clock = new ManualClock();
    const a = await MemcachedTokenStore.open({ servers: [mc1.address, mc2.address], clock });
    const b = await MemcachedTokenStore.open({ servers: [` ${mc2.address} `, mc1.address], clock });
    try {
      const instance = `vm-${randomBytes(4).toString('hex')}`;
      const tokens = await Promise.all(Array.from({ length: 40 }, () => a.authorize(info(instance), 60_000)));
      for (const t of tokens) assert.equal((await b.validate(t.token)).status, 'valid');
      await b.revokeInstance(instance);
      for (const t of tokens) assert.equal((await a.validate(t.token)).status, 'revoked');
      const fresh = await a.authorize(info(instance), 60_000);
      assert.equal((await b.validate(fresh.token)).status, 'valid', 'tokens minted after a revoke work');
      const [ha, hb] = [await a.health(), await b.health()];
      assert.ok(ha.fingerprint !== undefined && ha.fingerprint === hb.fingerprint, 'both nodes report the same store fingerprint');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('memcached server lists are normalised: sorted, default port, duplicates dropped', () => {
    assert.deepEqual(normaliseMemcacheServers(['b:1', 'a', ' b:1 ', '']), ['a:11211', 'b:1']);
  });

  test('redis: revocations and tokens are visible to a second client (another node)', async () => {
    const prefix = `test-${randomBytes(4).toString('hex')}:`;
    const a = await RedisTokenStore.open({ server: redis.address, keyPrefix: prefix });
    const b = await RedisTokenStore.open({ server: `redis://${redis.address}/0`, keyPrefix: prefix });
    try {
      const t = await a.authorize(info('vm-x'), 60_000);
      assert.equal((await b.validate(t.token)).status, 'valid');
      assert.equal(await b.revokeInstance('vm-x'), 1);
      assert.equal((await a.validate(t.token)).status, 'revoked');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('an unreachable shared store is a startup error naming the backend and address', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    await assert.rejects(RedisTokenStore.open({ server: dead }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'PH_ERR_STORE_UNAVAILABLE');
      assert.match(e.message, new RegExp(`redis token store at ${dead} is unreachable`));
      return true;
    });
    await assert.rejects(MemcachedTokenStore.open({ servers: [mc1.address, dead] }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'PH_ERR_STORE_UNAVAILABLE');
      assert.match(e.message, new RegExp(`not answering: ${dead}`));
      assert.doesNotMatch(e.message, new RegExp(`${mc1.address} \\(`), 'the live server is not blamed');
      return true;
    });
  });

  test('redis through Sentinel: the store finds the primary and shares tokens with direct clients', async () => {
    const sentinel = await startSentinel(redis);
    const prefix = `test-${randomBytes(4).toString('hex')}:`;
    try {
      const viaSentinel = await RedisTokenStore.open({ server: '', sentinels: [sentinel.address], sentinelName: 'mymaster', keyPrefix: prefix });
      const direct = await RedisTokenStore.open({ server: redis.address, keyPrefix: prefix });
      try {
        const t = await viaSentinel.authorize(info('vm-s'), 60_000);
        assert.equal((await direct.validate(t.token)).status, 'valid');
        assert.match((await viaSentinel.health()).detail ?? '', new RegExp(`sentinel:${sentinel.address}/mymaster`));
      } finally {
        await viaSentinel.close();
        await direct.close();
      }
    } finally {
      await sentinel.destroy();
    }
  });

  test('redis: the password never appears in messages', () => {
    assert.equal(redisDisplayName('redis://:hunter2@10.0.0.9:6380/2'), '10.0.0.9:6380/2');
  });

  test('a store that goes away: operations fail fast with PH_ERR_STORE_UNAVAILABLE, and work again when it is back', async () => {
    for (const open of [
      () => RedisTokenStore.open({ server: redis.address, keyPrefix: `test-${randomBytes(4).toString('hex')}:` }),
      () => MemcachedTokenStore.open({ servers: [mc1.address] }),
    ]) {
      const store = await open();
      const service = store.backend === 'redis' ? redis : mc1;
      try {
        const t = await store.authorize(info('vm-o'), 60_000);
        await service.stop();
        const started = Date.now();
        await assert.rejects(store.validate(t.token), (e: Error & { code?: string }) => e.code === 'PH_ERR_STORE_UNAVAILABLE');
        assert.ok(Date.now() - started <= 1500, `${store.backend}: failed after ${Date.now() - started} ms`);
        await service.start();
        const deadline = Date.now() + 5000;
        let fresh: { token: string } | undefined;
        while (!fresh && Date.now() < deadline) {
          fresh = await store.authorize(info('vm-o'), 60_000).catch(() => undefined);
          if (!fresh) await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(fresh, `${store.backend}: the store recovered without a restart`);
        assert.equal((await store.validate(fresh.token)).status, 'valid');
      } finally {
        await store.close();
      }
    }
  });
});

test('private stores have per-node fingerprints; shared ones do not depend on the node', async () => {
  const { MemoryTokenStore } = await import('../../src/tokens/memory-store.js');
  const [m1, m2] = [new MemoryTokenStore(), new MemoryTokenStore()];
  assert.notEqual((await m1.health()).fingerprint, (await m2.health()).fingerprint);
});
