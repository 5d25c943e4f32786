/**
 * Shared token stores through the whole gateway: a store outage makes new consoles close promptly
 * with "store unavailable" (never "invalid token") while open consoles keep relaying, and service
 * comes back by itself; misconfigured or unreachable shared stores refuse to start.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { runCli } from '../helpers/cli.js';
import { startTestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { runTempDir } from '../helpers/run.js';
import { startMemcached, startRedis, type RunningService } from '../helpers/services.js';
import { openConsole } from '../helpers/ws-client.js';

async function echoRoundTrip(ws: WebSocket, payload: string): Promise<string> {
  const got = new Promise<string>((r) => ws.once('message', (d: Buffer) => r(d.toString())));
  ws.send(Buffer.from(payload));
  return got;
}

describe('store outage and recovery', () => {
  let echo: Server;
  let echoPort: number;

  before(async () => {
    echo = createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as AddressInfo).port;
  });
  after(async () => { await new Promise((r) => echo.close(r)); });

  for (const backend of ['redis', 'memcached'] as const) {
    test(`${backend}: new consoles get 4013 within 1 s, open ones keep relaying, recovery needs no restart`, async () => {
      const svc: RunningService = backend === 'redis' ? await startRedis() : await startMemcached();
      const gw = await startTestGateway({
        ini: backend === 'redis' ? `[cache]\nbackend = redis\nredis_server = ${svc.address}\n` : `[cache]\nbackend = memcached\nmemcache_servers = ${svc.address}\n`,
        builtin: [{ name: 'echo', host: '127.0.0.1', port: echoPort, protocol: 'vnc' }],
      });
      try {
        const token = (await gw.mint('echo')).body.token as string;
        const open = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
        await new Promise((r) => open.once('open', r));
        assert.equal(await echoRoundTrip(open, 'before'), 'before');

        await svc.stop();
        const during = await openConsole(`${gw.wsUrl}?token=${token}`, { origin: gw.proxyUrl });
        assert.equal(during.closeCode, 4013);
        assert.match(during.closeReason ?? '', /^PH_ERR_STORE_UNAVAILABLE/);
        assert.ok(during.elapsedMs <= 1000, `closed after ${during.elapsedMs} ms`);
        const mint = await gw.mint('echo');
        assert.equal(mint.status, 503);
        assert.equal(mint.body.code, 'PH_ERR_STORE_UNAVAILABLE');
        // What is wrong in plain words, not the client library's internals (regression: "Stream isn't writeable and enableOfflineQueue options is false").
        assert.match(mint.body.message as string, /(connection refused|not connected|no answer in time)/, mint.body.message as string);
        assert.doesNotMatch(mint.body.message as string, /enableOfflineQueue|Stream isn't writeable/);
        const health = await fetch(`${gw.proxyUrl}/healthz`);
        assert.equal(health.status, 503);
        assert.equal(((await health.json()) as { ok: boolean }).ok, false);
        const detailed = await gw.api('GET', '/healthz');
        assert.equal(detailed.status, 503);
        assert.equal((detailed.body.store as { backend: string }).backend, backend, 'the API with a key names the store');
        assert.equal(await echoRoundTrip(open, 'during'), 'during', 'an open console keeps relaying');

        await svc.start();
        let fresh: string | undefined;
        const deadline = Date.now() + 5000;
        while (fresh === undefined && Date.now() < deadline) {
          const res = await gw.mint('echo');
          if (res.status === 201) fresh = res.body.token as string;
          else await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(fresh, 'minting works again once the store is back');
        const again = new WebSocket(`${gw.wsUrl}?token=${fresh}`, ['binary'], { origin: gw.proxyUrl });
        await new Promise((r) => again.once('open', r));
        assert.equal(await echoRoundTrip(again, 'after'), 'after');
        again.close();
        open.close();
      } finally {
        await gw.close();
        await svc.stop();
      }
    });
  }

  test('the seed typo (memcached_servers) and an unreachable shared store refuse to start', async () => {
    const dir = runTempDir('seed');
    try {
      const typo = join(dir, 'typo.conf');
      await writeFile(typo, '[cache]\nbackend = dogpile.cache.memcached\nmemcached_servers = 127.0.0.1:11211\n');
      const refused = await runCli(['serve', '--config-file', typo]);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /typo\.conf:3: \[cache\] memcached_servers: unknown option, did you mean memcache_servers\?/);

      const dead = `127.0.0.1:${await freePort()}`;
      const unreachable = join(dir, 'dead.conf');
      await writeFile(unreachable, `[DEFAULT]\nstate_path = ${dir}/state\n[api]\nport = ${await freePort()}\n[vnc]\nnovncproxy_port = ${await freePort()}\n[cache]\nbackend = redis\nredis_server = ${dead}\n`);
      const down = await runCli(['serve', '--config-file', unreachable]);
      assert.equal(down.code, 1);
      assert.match(down.stderr, new RegExp(`PH_ERR_STORE_UNAVAILABLE: redis token store at ${dead} is unreachable`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
