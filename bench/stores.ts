/**
 * Store and multi-node benchmark (`npm run bench:stores`): token validations per second for every
 * backend (real Redis, memcached, PostgreSQL, MariaDB started here), and console setups per second
 * through nginx with 3 Porthole nodes against 1, in the same run. Loopback only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { MemoryTokenStore } from '../src/tokens/memory-store.js';
import { MemcachedTokenStore } from '../src/tokens/memcached-store.js';
import { RedisTokenStore } from '../src/tokens/redis-store.js';
import { SqliteTokenStore } from '../src/tokens/sqlite-store.js';
import { SqlTokenStore } from '../src/tokens/sql-store.js';
import type { TokenStore } from '../src/tokens/store.js';
import { startBalancer } from '../test/helpers/balancers.js';
import { BENCH_LIMITS } from './common.js';
import { freePort } from '../test/helpers/net.js';
import { startMariadb, startMemcached, startPostgres, startRedis } from '../test/helpers/services.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const CONCURRENCY = 32;

async function validationsPerSecond(store: TokenStore): Promise<number> {
  const { token } = await store.authorize({ instance: 'bench', protocol: 'vnc', consoleType: 'novnc', host: '127.0.0.1', port: 5900, accessUrlBase: 'http://x/' }, 600_000);
  const deadline = Date.now() + SECONDS * 1000;
  let n = 0;
  const start = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < deadline) {
      await store.validate(token);
      n++;
    }
  }));
  return n / ((Date.now() - start) / 1000);
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`node exited ${child.exitCode}`);
    try {
      await fetch(`http://127.0.0.1:${port}/healthz`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`no node on ${port}`);
}

const OUTCOMES = new Map<string, number>();

async function setupsPerSecond(url: string, origin: string): Promise<number> {
  const deadline = Date.now() + SECONDS * 1000 + 1000;
  let n = 0;
  const note = (k: string) => OUTCOMES.set(k, (OUTCOMES.get(k) ?? 0) + 1);
  const start = Date.now();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const ws = new WebSocket(url, ['binary'], { origin });
        ws.once('message', () => { n++; ws.terminate(); resolve(); });
        ws.once('close', (code) => { note(`close ${code}`); resolve(); });
        ws.once('unexpected-response', (_q, r) => { note(`http ${r.statusCode}`); ws.terminate(); resolve(); });
        ws.once('error', (e) => { note(`error ${e.message}`); resolve(); });
      });
    }
  }));
  return n / ((Date.now() - start) / 1000);
}

async function main(): Promise<void> {
  const rows: string[] = ['| backend | validations/s |', '|---|---|'];
  const dir = await mkdtemp(join(tmpdir(), 'porthole-bench-stores-'));
  const [redis, mc, pg, maria] = await Promise.all([startRedis(), startMemcached(), startPostgres(), startMariadb()]);
  try {
    const stores: Array<[string, () => Promise<TokenStore>]> = [
      ['memory', async () => new MemoryTokenStore()],
      ['sqlite', () => SqliteTokenStore.open({ path: join(dir, 'tokens.sqlite') })],
      ['redis', () => RedisTokenStore.open({ server: redis.address })],
      ['memcached', () => MemcachedTokenStore.open({ servers: [mc.address] })],
      ['postgresql', () => SqlTokenStore.open({ connection: pg.url })],
      ['mysql (MariaDB)', () => SqlTokenStore.open({ connection: maria.url })],
    ];
    for (const [name, open] of stores) {
      const store = await open();
      rows.push(`| ${name} | ${(await validationsPerSecond(store)).toFixed(0)} |`);
      await store.close();
    }

    // Console setups through nginx: 3 nodes vs 1, each a `porthole serve` process on the shared Redis.
    const greeter = createServer((s) => { s.on('error', () => s.destroy()); s.end('RFB 003.008\n'); });
    await new Promise<void>((r) => greeter.listen(0, '127.0.0.1', r));
    await writeFile(join(dir, 'inventory.ini'), `[greeter]\nhost = 127.0.0.1\nport = ${(greeter.address() as AddressInfo).port}\n`);
    const nodes: Array<{ child: ChildProcess; proxyPort: number; apiPort: number; dir: string }> = [];
    for (let i = 0; i < 3; i++) {
      const proxyPort = await freePort();
      const apiPort = await freePort();
      const nodeDir = join(dir, `node${i}`);
      const conf = join(dir, `node${i}.conf`);
      await writeFile(conf, `[DEFAULT]\nstate_path = ${nodeDir}\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\n[api]\nport = ${apiPort}\n` +
        `[cache]\nbackend = redis\nredis_server = ${redis.address}\n[static]\ninventory_file = ${dir}/inventory.ini\n[console]\nshutdown_grace_period = 0\n${BENCH_LIMITS}`);
      const child = spawn(process.execPath, ['bin/porthole.js', 'serve', '--config-file', conf], { stdio: ['ignore', 'ignore', process.env.BENCH_NODE_LOG ? 'inherit' : 'ignore'] });
      await waitForPort(proxyPort, child);
      nodes.push({ child, proxyPort, apiPort, dir: nodeDir });
    }
    const first = nodes[0] as (typeof nodes)[number];
    const key = (await readFile(join(first.dir, 'api-key'), 'utf8')).trim();
    const minted = await fetch(`http://127.0.0.1:${first.apiPort}/v1/consoles`, {
      method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ instance: 'greeter' }),
    });
    const token = ((await minted.json()) as { token: string }).token;
    const setupRows = ['| nginx in front of | console setups/s |', '|---|---|'];
    const results: number[] = [];
    for (const count of (process.env.BENCH_NODE_COUNTS ?? "1,3").split(",").map(Number)) {
      await new Promise((r) => setTimeout(r, 2000)); // let the previous run's connections and sessions drain
      const lb = await startBalancer('nginx', nodes.slice(0, count).map((n) => n.proxyPort));
      const rate = await setupsPerSecond(`${lb.url.replace('http:', 'ws:')}/websockify?token=${token}`, lb.url);
      results.push(rate);
      if (process.env.BENCH_VERBOSE) process.stderr.write(`${count} nodes: ${rate.toFixed(0)}/s, other outcomes ${JSON.stringify([...OUTCOMES])}\n`);
      OUTCOMES.clear();
      if (process.env.BENCH_VERBOSE) {
        for (const n of nodes) {
          const h = await fetch(`http://127.0.0.1:${n.proxyPort}/healthz`).then((r) => r.status, (e: Error) => e.message);
          process.stderr.write(`  node :${n.proxyPort} pid ${n.child.pid} exit ${n.child.exitCode} healthz ${h}\n`);
        }
      }
      setupRows.push(`| ${count} node${count > 1 ? 's' : ''} | ${rate.toFixed(0)} |`);
      await lb.stop();
    }
    setupRows.push(`| ratio 3 / 1 | ${((results[1] ?? 0) / (results[0] ?? 1)).toFixed(2)}× |`);
    for (const n of nodes) n.child.kill('SIGTERM');
    await new Promise((r) => greeter.close(r));
    process.stdout.write(`Token validations per second (${CONCURRENCY} concurrent, ${SECONDS} s each; loopback)\n\n${rows.join('\n')}\n\n` +
      `Console setups through nginx, Redis store, 16 concurrent clients (2-core machine: the nodes, nginx, Redis and the client share the cores)\n\n${setupRows.join('\n')}\n`);
  } finally {
    await Promise.all([redis.stop(), mc.stop(), pg.destroy(), maria.destroy()]);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
