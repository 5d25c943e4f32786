import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashesEqual, hashToken, isWellFormedToken, mintToken, TOKEN_BYTES, tokenLogId } from '../../src/tokens/token.js';

test('tokens carry at least 128 random bits and are URL-safe', () => {
  assert.ok(TOKEN_BYTES * 8 >= 128);
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const t = mintToken();
    assert.match(t, /^[A-Za-z0-9_-]{32}$/);
    assert.ok(isWellFormedToken(t));
    seen.add(t);
  }
  assert.equal(seen.size, 1000);
});

test('stored form is SHA-256 hex; log id is a short prefix of it', () => {
  const t = 'abcdefghijklmnopqrstuvwxyz012345';
  assert.equal(hashToken(t), '653bb1245e828fcda4fa53fcd5a3def5bd7654e651f54b4132b73d74e64435c4'); // sha256sum of the same bytes
  assert.equal(tokenLogId(t), hashToken(t).slice(0, 8));
  assert.ok(!hashToken(t).includes(t));
});

test('hashesEqual is exact', () => {
  const h = hashToken('x'.repeat(32));
  assert.ok(hashesEqual(h, h));
  assert.ok(!hashesEqual(h, hashToken('y'.repeat(32))));
  assert.ok(!hashesEqual(h, ''));
});

test('malformed tokens are rejected before any store lookup', () => {
  for (const bad of ['', 'short', 'has space in it 1234567', 'a'.repeat(300), '../../etc/passwd', 'tok%00en0123456789']) {
    assert.ok(!isWellFormedToken(bad), bad);
  }
});

test('store failures are described in plain words; the library text is kept only when nothing fits', async () => {
  const { describeStoreFailure } = await import('../../src/tokens/store.js');
  const err = (message: string, code?: string) => Object.assign(new Error(message), code === undefined ? {} : { code });
  assert.match(describeStoreFailure(err("Stream isn't writeable and enableOfflineQueue options is false")), /^not connected/);
  assert.match(describeStoreFailure(err('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED')), /^connection refused/);
  assert.match(describeStoreFailure(err('Connection terminated unexpectedly')), /^not connected/);
  assert.match(describeStoreFailure(err('WRONGPASS invalid username-password pair')), /^authentication failed/);
  assert.match(describeStoreFailure(err('getaddrinfo ENOTFOUND redis.invalid', 'ENOTFOUND')), /does not resolve/);
  assert.equal(describeStoreFailure(err('something else entirely')), 'something else entirely');
});
