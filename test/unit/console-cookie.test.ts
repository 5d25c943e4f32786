import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newConsolePath, parseExchangeBody, setCookieHeader } from '../../src/proxy/console-cookie.js';

test('console cookie path: under the page directory the browser sees; anything odd falls back to /', () => {
  assert.match(newConsolePath('/'), /^\/websockify\/c\/[\w-]{16}$/);
  assert.match(newConsolePath('/console/'), /^\/console\/websockify\/c\/[\w-]{16}$/);
  assert.match(newConsolePath('/a/b-c/'), /^\/a\/b-c\/websockify\/c\//);
  for (const odd of [undefined, '', 'console/', '/console', '/../', '/a/./', '/a b/', '/a;Path=/;/', '//evil/', `/${'x'.repeat(300)}/`]) {
    assert.match(newConsolePath(odd), /^\/websockify\/c\//, JSON.stringify(odd));
  }
  assert.notEqual(newConsolePath('/'), newConsolePath('/'));
});

test('exchange body and Set-Cookie header', () => {
  assert.deepEqual(parseExchangeBody('token=abc&dir=%2Fconsole%2F'), { token: 'abc', pageDirectory: '/console/' });
  assert.deepEqual(parseExchangeBody('token='), { token: undefined, pageDirectory: undefined });
  assert.equal(setCookieHeader({ token: 'a b', path: '/websockify/c/x', maxAgeSeconds: 0.2, secure: true }),
    'porthole_console=a%20b; Path=/websockify/c/x; Max-Age=1; HttpOnly; SameSite=Strict; Secure');
});
