import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeEnd, parseListen } from '../../src/cli/commands/tunnel.js';
import { consoleSocketOf } from '../../src/native/console-url.js';

test('console URLs → their WebSocket: page URLs, noVNC path= forms, WebSocket URLs; others refused', () => {
  assert.deepEqual(consoleSocketOf('http://p:6080/vnc_lite.html?token=abc'), { wsUrl: 'ws://p:6080/websockify?token=abc', token: 'abc' });
  assert.deepEqual(consoleSocketOf('https://c.example/console/vnc_lite.html?token=abc'), { wsUrl: 'wss://c.example/console/websockify?token=abc', token: 'abc' });
  // Nova's own URL: vnc_auto.html?path=%3Ftoken%3D… (noVNC: the path is relative to the root)
  assert.deepEqual(consoleSocketOf('http://p:6080/vnc_auto.html?path=%3Ftoken%3Dxyz'), { wsUrl: 'ws://p:6080/?token=xyz', token: 'xyz' });
  assert.deepEqual(consoleSocketOf('http://p:6080/vnc_lite.html?path=websockify%3Ftoken%3Dxyz'), { wsUrl: 'ws://p:6080/websockify?token=xyz', token: 'xyz' });
  assert.deepEqual(consoleSocketOf('ws://p:6083/?token=s1'), { wsUrl: 'ws://p:6083/?token=s1', token: 's1' });
  assert.equal(consoleSocketOf('http://p:6080/vnc_lite.html'), undefined);
  assert.equal(consoleSocketOf('ftp://p/?token=x'), undefined);
  assert.equal(consoleSocketOf('web-1'), undefined);
});

test('--listen host:port, IPv6 in brackets; nonsense is a usage error', () => {
  assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListen('[::1]:5999'), { host: '::1', port: 5999 });
  assert.throws(() => parseListen('5999'), /expected host:port/);
  assert.throws(() => parseListen('h:70000'), /expected host:port/);
});

test('a tunnelled connection\'s end, as one line', () => {
  const base = { remote: '127.0.0.1:5', opened: true, bytesToClient: 0, bytesToServer: 0 };
  assert.match(describeEnd({ ...base, code: 4003, reason: 'PH_ERR_TOKEN_EXPIRED: console token has expired' }), /refused: 4003 PH_ERR_TOKEN_EXPIRED/);
  assert.match(describeEnd({ ...base, code: 4012, reason: 'PH_ERR_UPSTREAM_CLOSED: x', bytesToClient: 100 }), /closed: 4012/);
  assert.match(describeEnd({ ...base, code: 1000, reason: '', bytesToClient: 100 }), /closed \(100 bytes in, 0 out\)/);
  assert.match(describeEnd({ ...base, opened: false, code: 1006, reason: 'HTTP 429 PH_ERR_TOO_MANY_FAILURES: wait', httpStatus: 429 }), /refused: HTTP 429/);
});

test('.vv files: the token as a lower-case host (GLib lower-cases CONNECT hosts) and back; the file\'s keys', async () => {
  const { mintToken, tokenAsHost, tokenFromHost } = await import('../../src/tokens/token.js');
  const { virtViewerFile } = await import('../../src/native/virt-viewer-file.js');
  for (let i = 0; i < 50; i++) {
    const token = mintToken();
    const host = tokenAsHost(token);
    assert.match(host, /^[0-9a-f]{48}$/);
    assert.equal(tokenFromHost(host), token);
    assert.equal(tokenFromHost(host.toUpperCase()), token);
  }
  assert.equal(tokenFromHost('pvespiceproxy:abc'), 'pvespiceproxy:abc', 'anything else is taken as it is');
  const vv = virtViewerFile({ token: 'AAAA', proxyUrl: 'http://p:6082', title: 'web-1\n[evil]', password: 'x' });
  assert.match(vv, /^\[virt-viewer\]\ntype=spice\nhost=000000\n/);
  assert.match(vv, /\nproxy=http:\/\/p:6082\n/);
  assert.match(vv, /\ntitle=web-1 \[evil\]\n/, 'a title cannot start a new INI line');
  assert.match(vv, /\ndelete-this-file=1\n/);
});
