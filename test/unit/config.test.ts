import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runTempDir } from '../helpers/run.js';
import { parseIni } from '../../src/config/ini.js';
import { buildConfig, crossCheck, loadConfig, validateSources } from '../../src/config/load.js';
import { suggest } from '../../src/config/suggest.js';

const ENV = { uid: 1000, home: '/home/op' };

function check(text: string) {
  return validateSources([{ file: 'porthole.conf', text }]);
}

test('INI: groups, entries with line numbers, comments, continuation lines', () => {
  const doc = parseIni('# comment\n[vnc]\nnovncproxy_port = 6080\n; other\n[console]\nallowed_origins = a,\n  b\n', 'x.conf');
  assert.deepEqual(doc.problems, []);
  assert.deepEqual(doc.entries.map((e) => [e.group, e.key, e.value, e.line]), [
    ['vnc', 'novncproxy_port', '6080', 3],
    ['console', 'allowed_origins', 'a,\nb', 6],
  ]);
});

test('INI: option before any group and garbage lines are problems with line numbers', () => {
  const doc = parseIni('debug = true\n[vnc]\n!!!\n', 'x.conf');
  assert.equal(doc.problems.length, 2);
  assert.equal(doc.problems[0]?.line, 1);
  assert.equal(doc.problems[1]?.line, 3);
});

test('defaults match nova.conf and the issue', () => {
  const c = buildConfig(new Map(), ENV);
  assert.equal(c.vnc.novncproxy_host, '0.0.0.0');
  assert.equal(c.vnc.novncproxy_port, 6080);
  assert.equal(c.vnc.novncproxy_base_url, 'http://127.0.0.1:6080/vnc_lite.html');
  assert.equal(c.consoleauth.token_ttl, 600);
  assert.equal(c.cache.backend, 'sqlite');
  assert.equal(c.api.host, '127.0.0.1');
  assert.equal(c.api.port, 6070);
  assert.equal(c.compute.driver, 'static');
  assert.equal(c.DEFAULT.state_path, '/home/op/.local/state/porthole');
  assert.equal(c.cache.sqlite_path, '/home/op/.local/state/porthole/tokens.sqlite');
  assert.equal(buildConfig(new Map(), { uid: 0, home: '/root' }).DEFAULT.state_path, '/var/lib/porthole');
});

test('config is deep-frozen', () => {
  const c = buildConfig(new Map(), ENV);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.vnc));
  assert.throws(() => { (c.vnc as { novncproxy_port: number }).novncproxy_port = 1; });
});

test('unknown option gets a did-you-mean with file and line', () => {
  const { problems } = check('[vnc]\nnovncproxy_prot = 6080\n');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.line, 2);
  assert.equal(problems[0]?.message, '[vnc] novncproxy_prot: unknown option, did you mean novncproxy_port?');
});

test('option in the wrong group says where it belongs', () => {
  const { problems } = check('[vnc]\ntoken_ttl = 60\n');
  assert.match(problems[0]?.message ?? '', /\[vnc\] token_ttl: unknown option; it belongs in \[consoleauth\]/);
});

test('unknown group gets a did-you-mean', () => {
  const { problems } = check('[consolauth]\ntoken_ttl = 60\n');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.message, '[consolauth]: unknown group, did you mean [consoleauth]?');
});

test('bad types and ranges are errors naming what was expected', () => {
  const { problems } = check('[vnc]\nnovncproxy_port = 70000\nenabled = maybe\nnovncproxy_base_url = ftp://x/\n[consoleauth]\ntoken_ttl = ten\n[cache]\nbackend = mongodb\n');
  const messages = problems.map((p) => p.message);
  assert.deepEqual(messages, [
    '[vnc] novncproxy_port: must be from 0 to 65535, got 70000',
    '[vnc] enabled: expected true or false, got "maybe"',
    '[vnc] novncproxy_base_url: expected an http:// or https:// URL, got scheme "ftp:"',
    '[consoleauth] token_ttl: expected a whole number from 1 to 604800, got "ten"',
    '[cache] backend: expected one of sqlite, memory, redis, memcached, postgresql, mysql, got "mongodb"',
  ]);
});

test('legacy [DEFAULT] names are accepted with a warning naming the new option', () => {
  const { values, problems } = check('[DEFAULT]\nvncserver_proxyclient_address = 10.0.0.5\nnovncproxy_port = 6081\nvnc_enabled = false\n');
  assert.equal(values.get('vnc.server_proxyclient_address'), '10.0.0.5');
  assert.equal(values.get('vnc.novncproxy_port'), 6081);
  assert.equal(values.get('vnc.enabled'), false);
  assert.ok(problems.every((p) => p.severity === 'warning'));
  assert.equal(problems[0]?.message, '[DEFAULT] vncserver_proxyclient_address is deprecated; use [vnc] server_proxyclient_address');
});

test('loadConfig lists every problem of every file at once; later files win', async () => {
  const dir = runTempDir('config');
  const a = join(dir, 'a.conf');
  const b = join(dir, 'b.conf');
  await writeFile(a, '[vnc]\nnovncproxy_port = 7000\n[consoleauth]\ntoken_ttl = 30\n');
  await writeFile(b, '[vnc]\nnovncproxy_port = 7001\n');
  const ok = loadConfig([a, b]);
  assert.equal(ok.config.vnc.novncproxy_port, 7001);
  assert.equal(ok.config.consoleauth.token_ttl, 30);

  await writeFile(b, '[vnc]\nnovncproxy_prot = 1\n[cache]\nbakend = memory\n');
  assert.throws(() => loadConfig([a, b, join(dir, 'missing.conf')]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'PH_ERR_CONFIG_INVALID');
    assert.match(err.message, /3 problems/);
    assert.match(err.message, /missing\.conf: cannot read config file: ENOENT/);
    assert.match(err.message, /b\.conf:2: \[vnc\] novncproxy_prot: unknown option, did you mean novncproxy_port\?/);
    assert.match(err.message, /b\.conf:4: \[cache\] bakend: unknown option, did you mean backend\?/);
    return true;
  });
  const { rm } = await import('node:fs/promises');
  await rm(dir, { recursive: true, force: true });
});

test('suggest: close typos only', () => {
  assert.equal(suggest('memcached_servers', ['memcache_servers', 'backend']), 'memcache_servers');
  assert.equal(suggest('zzzz', ['backend', 'sqlite_path']), undefined);
});

test('the seed typo: [cache] memcached_servers is refused with a did-you-mean', () => {
  const { problems } = check('[cache]\nbackend = dogpile.cache.memcached\nmemcached_servers = 10.0.0.1:11211,10.0.0.2:11211\n');
  assert.deepEqual(problems.map((p) => [p.line, p.message]), [[3, '[cache] memcached_servers: unknown option, did you mean memcache_servers?']]);
});

test('oslo.cache backend names map to ours', () => {
  const { values, problems } = check('[cache]\nbackend = oslo_cache.memcache_pool\nmemcache_servers = a:1\n');
  assert.deepEqual(problems, []);
  assert.equal(values.get('cache.backend'), 'memcached');
  assert.equal(check('[cache]\nbackend = dogpile.cache.redis\n').values.get('cache.backend'), 'redis');
});

test('shared-store settings that would not take effect are errors, never a silent private store', () => {
  const problems = (text: string) => crossCheck(buildConfig(check(text).values, ENV)).map((p) => p.message);
  assert.deepEqual(problems('[cache]\nmemcache_servers = a:1,b:2\n'), [
    '[cache] memcache_servers is set but [cache] backend = sqlite: tokens would stay private to this node; set backend = memcached (or remove memcache_servers)',
  ]);
  assert.deepEqual(problems('[cache]\nbackend = redis\n'), ['[cache] backend = redis needs [cache] redis_server (host:port or redis:// URL) or [cache] redis_sentinels']);
  assert.deepEqual(problems('[cache]\nbackend = memcached\n'), ['[cache] backend = memcached needs [cache] memcache_servers (host:port,host:port)']);
  assert.deepEqual(problems('[cache]\nbackend = redis\nredis_server = 127.0.0.1:6379\n'), []);
});

test('VeNCrypt options: CA required, client cert and key together, and never set without the scheme', () => {
  const problems = (text: string) => crossCheck(buildConfig(check(text).values, ENV)).map((p) => p.message);
  assert.deepEqual(problems('[vnc]\nauth_schemes = vencrypt,vnc\n'),
    ['[vnc] auth_schemes includes vencrypt, which needs [vnc] vencrypt_ca_certs (the CA that signed the VNC servers\' certificates)']);
  assert.deepEqual(problems('[vnc]\nauth_schemes = vencrypt\nvencrypt_ca_certs = /ca.pem\nvencrypt_client_cert = /c.pem\n'),
    ['[vnc] vencrypt_client_cert and [vnc] vencrypt_client_key must be set together']);
  assert.match(problems('[vnc]\nvencrypt_ca_certs = /ca.pem\n')[0] ?? '', /auth_schemes does not include vencrypt/);
  assert.deepEqual(problems('[vnc]\nauth_schemes = vencrypt\nvencrypt_ca_certs = /ca.pem\nvencrypt_client_cert = /c.pem\nvencrypt_client_key = /k.pem\n'), []);
  assert.match(check('[vnc]\nauth_schemes = vencrypt,tls\n').problems[0]?.message ?? '', /expected one of none, vnc, vencrypt, got "tls"/);
});

test('an option set twice in one file is an error naming both lines (regression: silently last-wins); across files the later wins', () => {
  const { problems } = check('[vnc]\nnovncproxy_port = 6080\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = 6081\n');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.line, 4);
  assert.equal(problems[0]?.message, '[vnc] novncproxy_port is set twice in this file (lines 2 and 4); keep one');
  const alias = check('[DEFAULT]\nvnc_enabled = true\n[vnc]\nenabled = false\n');
  assert.ok(alias.problems.some((p) => p.severity === 'error' && /\[vnc\] enabled is set twice/.test(p.message)), 'a deprecated alias and its new name count as one option');
  const two = validateSources([{ file: 'a.conf', text: '[vnc]\nnovncproxy_port = 6080\n' }, { file: 'b.conf', text: '[vnc]\nnovncproxy_port = 6081\n' }]);
  assert.equal(two.problems.length, 0);
  assert.equal(two.values.get('vnc.novncproxy_port'), 6081);
});

test('nova mode: oslo-style $substitution from [DEFAULT]; $$ is a literal dollar', async () => {
  const { interpolate } = await import('../../src/config/load.js');
  const d = new Map([['my_ip', '10.0.0.5']]);
  assert.equal(interpolate('$my_ip', d), '10.0.0.5');
  assert.equal(interpolate('${my_ip}:6080', d), '10.0.0.5:6080');
  assert.equal(interpolate('pa$$word', d), 'pa$word');
  assert.equal(interpolate('$unknown', d), '$unknown');
});
