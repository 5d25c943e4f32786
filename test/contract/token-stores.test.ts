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

test('[sqlite] a corrupt database file is not healthy; health and mint say it is corrupt, where, and what to do (regression: ok: true)', async () => {
  const { closeSync, fstatSync, openSync, writeSync } = await import('node:fs');
  const { randomBytes } = await import('node:crypto');
  const path = await tempPath();
  let store = await SqliteTokenStore.open({ path });
  for (let i = 0; i < 300; i++) await store.authorize(info('vm-a'), 60_000);
  await store.close();
  // Damage every page after the first two (header and schema intact: the file still opens).
  const fd = openSync(path, 'r+');
  const size = fstatSync(fd).size;
  writeSync(fd, randomBytes(size - 8192), 0, size - 8192, 8192);
  closeSync(fd);
  store = await SqliteTokenStore.open({ path });
  try {
    const health = await store.health();
    assert.equal(health.ok, false);
    assert.match(health.detail ?? '', new RegExp(`token database ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is corrupt .*move the file aside`));
    await assert.rejects(store.authorize(info('vm-a'), 60_000), (err: Error & { code?: string }) =>
      err.code === 'PH_ERR_STORE_UNAVAILABLE' && /is corrupt/.test(err.message));
  } finally {
    await store.close();
  }
});

test('[sqlite] errors name the file and the remedy: read-only, full, corrupt', async () => {
  const { describeSqliteError } = await import('../../src/tokens/sqlite-store.js');
  const err = (code: string, message: string) => Object.assign(new Error(message), { code });
  assert.match(describeSqliteError(err('SQLITE_CANTOPEN', 'unable to open database file'), '/ro/t.sqlite'), /cannot write the token database \/ro\/t\.sqlite .*read-only.*\[cache\] sqlite_path/);
  assert.match(describeSqliteError(err('SQLITE_FULL', 'database or disk is full'), '/x/t.sqlite'), /disk holding the token database \/x\/t\.sqlite is full/);
  assert.match(describeSqliteError(err('SQLITE_NOTADB', 'file is not a database'), '/x/t.sqlite'), /is corrupt/);
});

test('[sqlite] a token table from before `who` gets the column on open; its old tokens still validate', async () => {
  const { default: Database } = await import('better-sqlite3');
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { SqliteTokenStore } = await import('../../src/tokens/sqlite-store.js');
  const { hashToken } = await import('../../src/tokens/token.js');
  const dir = await mkdtemp(join(tmpdir(), 'porthole-t-old-schema-'));
  try {
    const path = join(dir, 'tokens.sqlite');
    const old = new Database(path);
    old.exec(`CREATE TABLE console_auth_tokens (token_hash TEXT PRIMARY KEY, instance TEXT NOT NULL, instance_uuid TEXT, protocol TEXT NOT NULL,
      console_type TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL, access_url_base TEXT NOT NULL, expires INTEGER NOT NULL, revoked_at INTEGER, created_at INTEGER NOT NULL)`);
    const token = 'A'.repeat(32);
    old.prepare('INSERT INTO console_auth_tokens VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, NULL, ?)').run(hashToken(token), 'vm', 'vnc', 'novnc', '127.0.0.1', 5900, 'http://x/', Date.now() + 60_000, Date.now());
    old.close();
    const store = await SqliteTokenStore.open({ path });
    try {
      const found = await store.validate(token);
      assert.equal(found.status, 'valid');
      assert.equal(found.status === 'valid' && found.connectInfo.who, undefined);
      const issued = await store.authorize({ instance: 'vm', protocol: 'vnc', consoleType: 'novnc', host: '127.0.0.1', port: 5900, accessUrlBase: 'http://x/', who: { key: 'k' } }, 60_000);
      const again = await store.validate(issued.token);
      assert.deepEqual(again.status === 'valid' && again.connectInfo.who, { key: 'k' });
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
