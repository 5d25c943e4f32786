/**
 * Scale on one node (`npm run bench:scale`): many concurrent consoles through one real
 * `porthole serve` (memory token store, limits lifted, open-files limit 20,000 — two sockets per
 * console in the proxy). Each console is a WebSocket from this process (bench/lean-client.ts)
 * through the proxy to the stand-in VNC server (its own process), which greets and then holds.
 *
 * Reports: memory per idle console as PSS growth over the empty process at 1k, 4k and 8k
 * consoles (the slope), event-loop lag p99 with all idle and with 100 active (echo round trips
 * in a loop), setups/s with 8,000 open against the empty proxy, and 200 stalled readers against
 * flooding VMs: memory each, and the round-trip p99 of another console meanwhile. Lag comes from the
 * proxy's own /metrics (prom-client's event-loop monitor, reset at every scrape). GC is not forced
 * (no handle on the proxy's heap from outside): PSS is read after 3 s of quiet.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForPort } from '../test/helpers/net.js';
import { BENCH_LIMITS, settleGc, stopChild, treePssBytes, type Conn } from './common.js';
import { consoleServer, GREETING, listen } from './console-server.js';
import { leanConn } from './lean-client.js';

const LEVELS = (process.env.BENCH_SCALE_LEVELS ?? '1000,4000,8000').split(',').map(Number);
const ACTIVE = 100;
const STALLED = 200;
const MiB = 1024 * 1024;

async function runTargets(): Promise<void> {
  const sockets = new Set<Socket>();
  const server = await listen((s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); consoleServer(s, 64 * 1024); });
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  process.once('SIGTERM', () => { for (const s of sockets) s.destroy(); server.close(() => process.exit(0)); });
}

async function freePort(): Promise<number> {
  const srv = await listen(() => undefined);
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  // This process holds a socket per console, the stand-in VM (inheriting the limit) another.
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), '--nofile=20000:20000'], { stdio: 'pipe' });
  } catch (err) {
    process.stderr.write(`cannot raise this process's open-files limit to 20000 (${String((err as { stderr?: Buffer }).stderr ?? err).trim()}); run as root or raise the hard limit\n`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'porthole-scale-'));
  const targets = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--targets'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const targetPort = await new Promise<number>((resolve) => targets.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const proxyPort = await freePort();
  const apiPort = await freePort();
  const inspectPort = await freePort();
  await writeFile(join(dir, 'inventory.ini'), `[console]\nhost = 127.0.0.1\nport = ${targetPort}\n`);
  await writeFile(join(dir, 'porthole.conf'), `[DEFAULT]\nstate_path = ${dir}/state\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\n` +
    `novncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n[cache]\nbackend = memory\n[api]\nport = ${apiPort}\n` +
    `[static]\ninventory_file = ${dir}/inventory.ini\n[console]\nshutdown_grace_period = 0\n${BENCH_LIMITS}`);
  const proxy = spawn('prlimit', ['--nofile=20000:20000', process.execPath, `--inspect=127.0.0.1:${inspectPort}`, 'bin/porthole.js', 'serve', '--config-file', join(dir, 'porthole.conf')], { stdio: ['ignore', 'ignore', 'ignore'] });
  const conns: Conn[] = [];
  try {
    await waitForPort(apiPort, proxy, 'porthole');
    const pid = Number((await readFile(`/proc/${proxy.pid}/task/${proxy.pid}/children`, 'utf8').catch(() => '')).trim()) || (proxy.pid as number);
    const key = (await readFile(join(dir, 'state', 'api-key'), 'utf8')).trim();
    const minted = await fetch(`http://127.0.0.1:${apiPort}/v1/consoles`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ instance: 'console' }) });
    const { token } = (await minted.json()) as { token: string };
    const url = `ws://127.0.0.1:${proxyPort}/websockify?token=${token}`;
    const origin = `http://127.0.0.1:${proxyPort}`;
    const lagP99 = async () => {
      const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
      return Number(/^nodejs_eventloop_lag_p99_seconds (\S+)/m.exec(text)?.[1] ?? NaN) * 1000;
    };
    /** A console that got its greeting; `after` sees what comes next. */
    const open = async (command?: string): Promise<{ c: Conn; next: (fn: (d: Buffer) => void) => void }> => {
      const c = await leanConn(url, origin);
      let seen = 0;
      let after: ((d: Buffer) => void) | undefined;
      await new Promise<void>((resolve, reject) => {
        c.onData((d) => {
          if (seen >= GREETING.length) { after?.(d); return; }
          seen += d.length;
          if (seen >= GREETING.length) resolve();
        });
        void c.done.then(() => reject(new Error('a console closed before its greeting')));
      });
      if (command !== undefined) c.send(Buffer.from(command));
      return { c, next: (fn) => { after = fn; } };
    };
    const setups = async (seconds: number) => {
      const deadline = Date.now() + seconds * 1000;
      let n = 0;
      const start = Date.now();
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (Date.now() < deadline) {
          const { c } = await open();
          c.destroy();
          n++;
        }
      }));
      return n / ((Date.now() - start) / 1000);
    };
    const rttP99 = async (ms: number) => {
      const { c, next } = await open('E');
      const times: number[] = [];
      const until = Date.now() + ms;
      await new Promise<void>((resolve) => {
        let sentAt = 0n;
        const send = () => { sentAt = process.hrtime.bigint(); c.send(Buffer.alloc(16, 1)); };
        let pending = 16;
        next((d) => {
          pending -= d.length;
          if (pending > 0) return;
          times.push(Number(process.hrtime.bigint() - sentAt) / 1000);
          pending = 16;
          if (Date.now() < until) send(); else resolve();
        });
        send();
      });
      c.destroy();
      times.sort((a, b) => a - b);
      return times[Math.floor(times.length * 0.99)] ?? NaN;
    };

    await sleep(3000);
    const emptyHeap = (await settleGc(inspectPort)).heapUsedBytes;
    const empty = await treePssBytes(pid);
    const emptySetups = await setups(3);
    await sleep(2000);
    const lines: string[] = [];
    let previous = { n: 0, pss: empty };
    for (const level of LEVELS) {
      while (conns.length < level) {
        const batch = await Promise.all(Array.from({ length: Math.min(100, level - conns.length) }, () => open()));
        for (const b of batch) conns.push(b.c);
      }
      await sleep(3000);
      const heap = (await settleGc(inspectPort)).heapUsedBytes;
      const pss = await treePssBytes(pid);
      lines.push(`| ${level} idle consoles | ${((pss - empty) / MiB).toFixed(1)} MiB over the empty process | ${((pss - empty) / level / 1024).toFixed(1)} KiB per console (JS heap ${((heap - emptyHeap) / level / 1024).toFixed(1)}) | ${((pss - previous.pss) / (level - previous.n) / 1024).toFixed(1)} KiB per console added since ${previous.n} |`);
      previous = { n: level, pss };
      process.stderr.write(`${lines[lines.length - 1] ?? ''}\n`);
    }
    const top = LEVELS[LEVELS.length - 1] ?? 0;
    await lagP99(); // reset the monitor
    await sleep(5000);
    const idleLag = await lagP99();
    const idleRtt = await rttP99(3000);
    const active = await Promise.all(Array.from({ length: ACTIVE }, () => open('E')));
    let running = true;
    for (const a of active) {
      const ping = () => { if (running) a.c.send(Buffer.alloc(16, 2)); };
      a.next(ping);
      ping();
    }
    await lagP99();
    await sleep(5000);
    const activeLag = await lagP99();
    running = false;
    for (const a of active) a.c.destroy();
    await sleep(1000);
    const loadedSetups = await setups(3);
    await sleep(2000);
    const beforeStalled = await treePssBytes(pid);
    const stalled = await Promise.all(Array.from({ length: STALLED }, async () => {
      const s = await open();
      s.c.pauseReading();
      s.c.send(Buffer.from('F'));
      return s.c;
    }));
    await sleep(3000);
    const stalledPss = await treePssBytes(pid);
    const stalledRtt = await rttP99(3000);
    for (const s of stalled) s.destroy();
    lines.push(
      `| event-loop delay p99, ${top} idle | ${idleLag.toFixed(1)} ms | ${(idleLag - 10).toFixed(1)} ms beyond the monitor's 10 ms interval | |`,
      `| event-loop delay p99, ${top} idle + ${ACTIVE} active (echo round trips in a loop) | ${activeLag.toFixed(1)} ms | ${(activeLag - 10).toFixed(1)} ms beyond the 10 ms interval | |`,
      `| setups/s (8 at a time): empty proxy / with ${top} open | ${emptySetups.toFixed(0)} / ${loadedSetups.toFixed(0)} | ${(loadedSetups / emptySetups * 100).toFixed(0)} % | |`,
      `| ${STALLED} stalled readers against flooding VMs (3 s) | ${((stalledPss - beforeStalled) / STALLED / 1024).toFixed(0)} KiB each | another console's RTT p99 ${idleRtt.toFixed(0)} µs before, ${stalledRtt.toFixed(0)} µs during | |`,
    );
    process.stdout.write(`Porthole scale benchmark — one \`porthole serve\` (memory store, open-files limit 20000), lean WebSocket clients, stand-in VNC server in its own process; loopback\n\n| scenario | figure | | |\n|---|---|---|---|\n${lines.join('\n')}\n`);
  } finally {
    for (const c of conns) c.destroy();
    await stopChild(proxy);
    await stopChild(targets);
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--targets')) await runTargets();
else await main();
