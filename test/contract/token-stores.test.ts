import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MemoryTokenStore } from '../../src/tokens/memory-store.js';
import { SqliteTokenStore } from '../../src/tokens/sqlite-store.js';
import { info, ManualClock, tokenStoreContract } from './token-store.js';
import { runTempDir } from '../helpers/run.js';

const dirs: string[] = [];
after(async () => { await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))); });

async function tempPath(): Promise<string> {
  const dir = runTempDir('store');
  dirs.push(dir);
  return join(dir, 'sub', 'tokens.sqlite');
}

tokenStoreContract('memory', async (clock) => ({ store: new MemoryTokenStore({ clock }) }));

tokenStoreContract('sqlite', async (clock) => {
  const path = await tempPath();
  const store = await SqliteTokenStore.open({ path, clock });
  return {
    store,
    reopen: async () => {
      await store.close();
      return SqliteTokenStore.open({ path, clock });
    },
  };
});

test('[sqlite] the database holds hashes, never the raw token', async () => {
  const path = await tempPath();
  const store = await SqliteTokenStore.open({ path, clock: new ManualClock() });
  const { token } = await store.authorize(info('vm-a'), 60_000);
  await store.close();
  for (const file of [path, `${path}-wal`]) {
    const bytes = await readFile(file).catch(() => Buffer.alloc(0));
    assert.ok(!bytes.includes(Buffer.from(token)), `${file} contains the raw token`);
  }
});

test('[sqlite] an unopenable path is PH_ERR_STORE_UNAVAILABLE naming the path', async () => {
  const notADir = join(await tempPath(), '..', '..', 'plain-file');
  await writeFile(notADir, 'x');
  const path = join(notADir, 'tokens.sqlite');
  await assert.rejects(SqliteTokenStore.open({ path }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'PH_ERR_STORE_UNAVAILABLE');
    assert.ok(err.message.includes(path), err.message);
    return true;
  });
});

test('[sqlite] a closed database makes validate throw STORE_UNAVAILABLE, not "unknown"', async () => {
  const store = await SqliteTokenStore.open({ path: await tempPath() });
  const { token } = await store.authorize(info('vm-a'), 60_000);
  await store.close();
  await assert.rejects(store.validate(token), (err: Error & { code?: string }) => err.code === 'PH_ERR_STORE_UNAVAILABLE');
});
