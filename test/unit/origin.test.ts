import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAllowedOrigin, type AllowedOrigin } from '../../src/config/allowed-origin.js';
import { parseAllowedOrigins } from '../../src/config/schema.js';
import { checkOrigin, hostnameOf } from '../../src/proxy/origin.js';

const base = { allowedOrigins: [] as AllowedOrigin[], expectedScheme: 'http:' };

test('no Origin (native client) is allowed, as in Nova', () => {
  assert.deepEqual(checkOrigin({ ...base, origin: undefined, host: 'proxy:6080' }), { ok: true });
});

test('Origin host must equal the Host header host', () => {
  assert.equal(checkOrigin({ ...base, origin: 'http://proxy.example:6080', host: 'proxy.example:6080' }).ok, true);
  assert.equal(checkOrigin({ ...base, origin: 'http://PROXY.example', host: 'proxy.example:6080' }).ok, true);
  const v = checkOrigin({ ...base, origin: 'http://evil.example', host: 'proxy.example:6080' });
  assert.deepEqual(v, { ok: false, reason: 'Origin header does not match this host' });
});

test('allowed_origins extends the accepted hosts', () => {
  const o = { ...base, allowedOrigins: ['dashboard.example', '[::1]'].map(parseAllowedOrigin) };
  assert.equal(checkOrigin({ ...o, origin: 'http://dashboard.example', host: 'proxy:6080' }).ok, true);
  assert.equal(checkOrigin({ ...o, origin: 'http://[::1]:8080', host: 'proxy:6080' }).ok, true);
  assert.equal(checkOrigin({ ...o, origin: 'http://other.example', host: 'proxy:6080' }).ok, false);
});

test('allowed_origins: host, host:port and scheme://host[:port] each mean what they say (regression: entries with a scheme or port never matched)', () => {
  const o = { ...base, allowedOrigins: ['https://dash.example', 'ops.example:8443', 'Any.Example'].map(parseAllowedOrigin), expectedScheme: 'https:' };
  const ok = (origin: string) => checkOrigin({ ...o, origin, host: 'proxy:6080' }).ok;
  assert.equal(ok('https://dash.example'), true, 'scheme://host: that origin, default port');
  assert.equal(ok('https://dash.example:443'), true);
  assert.equal(ok('https://dash.example:8443'), false, 'another port is another origin');
  assert.equal(ok('https://ops.example:8443'), true, 'host:port');
  assert.equal(ok('https://ops.example'), false);
  assert.equal(ok('https://any.example:1234'), true, 'bare host: any port');
  assert.equal(checkOrigin({ ...o, expectedScheme: 'http:', origin: 'http://dash.example', host: 'proxy:6080' }).ok, false, 'scheme://host pins the scheme');
});

test('allowed_origins: paths, wildcards and ws schemes are refused with what to write; every bad entry is listed', () => {
  assert.throws(() => parseAllowedOrigin('https://dash.example/console'), /no path, query or user; did you mean https:\/\/dash\.example\?/);
  assert.throws(() => parseAllowedOrigin('wss://dash.example'), /did you mean https:\/\/dash\.example\?/);
  assert.throws(() => parseAllowedOrigin('*.example'), /wildcards are not supported/);
  assert.throws(() => parseAllowedOrigin('dash.example/x'), /did you mean dash\.example\?/);
  assert.throws(() => parseAllowedOrigins('good.example, https://a/x, *.b, ftp://c'), (err: Error) =>
    /^3 bad entries: .*https:\/\/a\/x.*\*\.b.*ftp:\/\/c/.test(err.message));
  assert.deepEqual(parseAllowedOrigins('a.example, https://b.example:8443'), ['a.example', 'https://b.example:8443']);
});

test('scheme must fit the console page scheme', () => {
  assert.deepEqual(checkOrigin({ ...base, expectedScheme: 'https:', origin: 'http://proxy', host: 'proxy' }),
    { ok: false, reason: 'Origin header protocol does not match this host' });
  assert.equal(checkOrigin({ ...base, expectedScheme: 'https:', origin: 'https://proxy', host: 'proxy' }).ok, true);
  assert.equal(checkOrigin({ ...base, expectedScheme: 'http:', origin: 'https://proxy', host: 'proxy' }).ok, false);
});

test('garbage and null Origins are refused', () => {
  for (const origin of ['null', 'not a url', 'file:///etc/passwd']) {
    assert.equal(checkOrigin({ ...base, origin, host: 'proxy' }).ok, false, origin);
  }
});

test('hostnameOf handles ports and IPv6', () => {
  assert.equal(hostnameOf('Example.COM:6080'), 'example.com');
  assert.equal(hostnameOf('[::1]:6080'), '::1');
  assert.equal(hostnameOf('a b'), undefined);
});

test('FailureLimiter: per-address sliding window, bounded table', async () => {
  const { FailureLimiter } = await import('../../src/proxy/failure-limiter.js');
  let now = 0;
  const l = new FailureLimiter(3, { windowMs: 1000, maxAddresses: 2, now: () => now });
  const guess = async (address: string) => {
    assert.equal(await l.acquire(address), true);
    l.release(address, true);
  };
  for (let i = 0; i < 3; i++) await guess('a');
  assert.equal(l.blocked('a'), true);
  assert.equal(await l.acquire('a'), false);
  assert.equal(l.blocked('b'), false);
  now = 1001;
  assert.equal(l.blocked('a'), false, 'the window slides');
  for (let i = 0; i < 3; i++) { await guess('b'); await guess('c'); }
  await guess('d');
  assert.equal(l.blocked('b'), false, 'the oldest address was evicted past maxAddresses');
  assert.equal(l.blocked('c'), true);
});

test('FailureLimiter: simultaneous guesses stop at exactly the limit (regression: checked before, recorded after the look-up)', async () => {
  const { FailureLimiter } = await import('../../src/proxy/failure-limiter.js');
  const l = new FailureLimiter(20);
  let lookups = 0;
  const attempt = async () => {
    if (!(await l.acquire('x'))) return 'refused';
    lookups++;
    await new Promise((r) => setTimeout(r, 5)); // an asynchronous store
    l.release('x', true);
    return 'looked-up';
  };
  const results = await Promise.all(Array.from({ length: 500 }, attempt));
  assert.equal(lookups, 20);
  assert.equal(results.filter((r) => r === 'refused').length, 480);
});

test('FailureLimiter: known tokens never lock an address out; valid connects beyond the budget wait, not fail', async () => {
  const { FailureLimiter } = await import('../../src/proxy/failure-limiter.js');
  const l = new FailureLimiter(5);
  for (let i = 0; i < 50; i++) {
    assert.equal(await l.acquire('nat'), true, 'revoked/expired retries are not guesses');
    l.release('nat', false);
  }
  const attempt = async () => {
    if (!(await l.acquire('nat'))) return false;
    await new Promise((r) => setTimeout(r, 2));
    l.release('nat', false);
    return true;
  };
  const results = await Promise.all(Array.from({ length: 50 }, attempt));
  assert.equal(results.filter(Boolean).length, 50, 'fifty simultaneous valid connects from one address all go through');
  assert.equal(l.blocked('nat'), false);
});

test('TrustedProxies: X-Forwarded-* only from trusted proxies; right-most untrusted hop is the client', async () => {
  const { TrustedProxies } = await import('../../src/proxy/forwarded.js');
  const t = new TrustedProxies(['127.0.0.2', '10.0.0.0/8']);
  assert.equal(t.clientAddress('127.0.0.1', '203.0.113.9'), '127.0.0.1', 'an untrusted peer cannot pick its address');
  assert.equal(t.clientAddress('127.0.0.2', '198.51.100.7, 203.0.113.9'), '203.0.113.9');
  assert.equal(t.clientAddress('::ffff:127.0.0.2', '203.0.113.9, 10.1.2.3'), '203.0.113.9', 'trusted hops are skipped');
  assert.equal(t.host('127.0.0.1', 'proxy:6080', 'public.example'), 'proxy:6080');
  assert.equal(t.host('127.0.0.2', 'proxy:6080', 'public.example'), 'public.example');
  assert.equal(new TrustedProxies([]).clientAddress('127.0.0.2', '203.0.113.9'), '127.0.0.2');
});

test('[console] trusted_proxies accepts addresses and CIDR ranges only', async () => {
  const { parseAddressList } = await import('../../src/config/schema.js');
  assert.deepEqual(parseAddressList('127.0.0.1, 10.0.0.0/8, ::1, fd00::/8'), ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8']);
  assert.throws(() => parseAddressList('proxy.example'), /expected IP addresses or CIDR ranges/);
  assert.throws(() => parseAddressList('10.0.0.0/33'), /expected IP addresses or CIDR ranges/);
});
