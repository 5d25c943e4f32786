import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cookieValue, extractToken, splitTarget } from '../../src/proxy/request.js';
import { consoleUrl } from '../../src/api/consoles.js';
import { redactQuery } from '../../src/log.js';

test('splitTarget never turns //host into a host', () => {
  assert.equal(splitTarget('//evil.example/x?y=1').path, '//evil.example/x');
  assert.equal(splitTarget('/websockify?token=abc#frag').query.get('token'), 'abc');
});

test('token from the query, else from the token cookie', () => {
  assert.equal(extractToken('/websockify?token=abc', 'token=zzz'), 'abc');
  assert.equal(extractToken('/websockify', 'a=1; token=zzz; b=2'), 'zzz');
  assert.equal(extractToken('/websockify?token=', undefined), undefined);
  assert.equal(extractToken('/', undefined), undefined);
  assert.equal(cookieValue('token="q%20w"', 'token'), 'q w');
});

test('console URL keeps the base URL and adds the token', () => {
  assert.equal(consoleUrl('http://h:6080/vnc_lite.html', 'T'), 'http://h:6080/vnc_lite.html?token=T');
  assert.equal(consoleUrl('https://h/console/vnc.html?scale=true', 'T'), 'https://h/console/vnc.html?scale=true&token=T');
});

test('log URLs lose token and path values', () => {
  assert.equal(redactQuery('/vnc_lite.html?token=secret&x=1'), '/vnc_lite.html?token=[redacted]&x=1');
  assert.equal(redactQuery('/vnc_lite.html?path=websockify%3Ftoken%3Dsecret'), '/vnc_lite.html?path=[redacted]');
});
