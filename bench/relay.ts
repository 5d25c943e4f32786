/**
 * Relay benchmark: Porthole against raw TCP and against websockify (Debian package), in one run,
 * reported as ratios. Loopback only. Usage: `npm run bench:relay` (needs websockify, which
 * `bash scripts/test.sh` installs with Nova; without it that column is skipped).
 *
 * The workload is what a console user's browser sees, and the same for every path:
 * - one stand-in VNC server (its own process) that, like QEMU, sends the RFB 3.8 greeting first and
 *   then does what the client's first message says: flood 64 KiB writes, count what arrives,
 *   echo, or just hold the connection;
 * - a Node `ws` client (permessage-deflate off, as browsers' noVNC) in this process, sending 64 KiB
 *   messages; one session at a time for bulk transfers, 8 at a time for setups (connect → the first
 *   RFB byte), 2,000 sequential 16-byte round trips for latency;
 * - Porthole as `porthole serve` (memory token store, session limits lifted) and websockify
 *   (TokenFile) each in their own process; medians of BENCH_ROUNDS rounds, with the spread.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { waitForPort } from '../test/helpers/net.js';
import { BENCH_LIMITS, settleGc, stopChild, treeCpuSeconds, treePssBytes, wsConn, type Conn } from './common.js';
import { leanConn, reusableReads } from './lean-client.js';
import { consoleServer, GREETING, listen } from './console-server.js';

const MiB = 1024 * 1024;
const BULK_BYTES = Number(process.env.BENCH_BULK_MIB ?? 512) * MiB;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SETUP_SECONDS = Number(process.env.BENCH_SETUP_SECONDS ?? 3);
const SETUP_CONCURRENCY = 8;
const RTT_MESSAGES = Number(process.env.BENCH_RTT_MESSAGES ?? 2000);
const RTT_WARMUP_MESSAGES = Number(process.env.BENCH_RTT_WARMUP ?? 3000);
const IDLE_SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 200);
/** Size of the stand-in server's writes and of the client's messages. */
const CHUNK_BYTES = Number(process.env.BENCH_CHUNK_KIB ?? 64) * 1024;
const ONLY = new Set((process.env.BENCH_ONLY ?? '').split(',').filter(Boolean));
/**
 * The WebSocket client: `lean` (default; bench/lean-client.ts, as cheap as a browser's native
 * client) or `ws` (the npm package, as the independent harness used; on 2 cores it is as expensive
 * as the proxy and caps both proxies at its own speed).
 */
const CLIENT = process.env.BENCH_CLIENT === 'ws' ? 'ws' : 'lean';
const wsOpen = (url: string, origin: string) => (CLIENT === 'ws' ? wsConn(url, origin) : leanConn(url, origin));
const PATHS = new Set((process.env.BENCH_PATHS ?? 'raw,websockify,porthole').split(','));
/**
 * Where a user's proxy runs it has its cores to itself: the browser and the VM are on other
 * machines. On a small machine the client, the stand-in VM and the proxy would share the cores and
 * the ratio would say more about the scheduler than about the proxy. So each proxy (websockify's
 * forks too) runs pinned to the last CPU, and this process and the stand-in VM to the others.
 * BENCH_PIN=0 turns it off.
 */
const CPUS = availableParallelism();
const PIN = process.env.BENCH_PIN !== '0' && CPUS >= 2;
const PROXY_CPU = String(CPUS - 1);
const CLIENT_CPUS = `0-${CPUS - 2}`;

/** `command args` pinned to the proxy's CPU (taskset, util-linux), or as it is. */
function proxyCommand(command: string, args: readonly string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', PROXY_CPU, command, ...args]] : [command, [...args]];
}

const NOTES = new Set<string>();

interface Targets {
  readonly port: number;
  close(): Promise<void>;
}

/** A way to open a console: raw TCP, or a WebSocket through a proxy. */
interface Path {
  readonly name: string;
  readonly pid?: number;
  /** A Node proxy's inspector port, to settle its GC before memory is read. */
  readonly inspectPort?: number;
  open(): Promise<Conn>;
  close(): Promise<void>;
}

function rawPath(targets: Targets): Path {
  return {
    name: 'raw TCP',
    async open() {
      let early: Buffer[] = [];
      let sink: ((d: Buffer) => void) | undefined;
      // The same reads as the lean client's: one reusable buffer.
      const s = connect({
        host: '127.0.0.1', port: targets.port, noDelay: true,
        onread: reusableReads((d) => { if (sink) sink(d); else early.push(Buffer.from(d)); }),
      });
      await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
      return {
        onData: (fn) => { sink = fn; for (const d of early) fn(d); early = []; },
        send: (d, written) => { s.write(d, written === undefined ? undefined : () => written()); },
        pauseReading: () => s.pause(),
        buffered: () => s.writableLength,
        done: new Promise<void>((r) => s.once('close', () => r())),
        destroy: () => s.destroy(),
      };
    },
    async close() {},
  };
}

async function freePort(): Promise<number> {
  const srv = await listen(() => undefined);
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

async function portholePath(targets: Targets, dir: string): Promise<Path> {
  const proxyPort = await freePort();
  const apiPort = await freePort();
  const inspectPort = await freePort();
  await writeFile(join(dir, 'inventory.ini'), `[console]\nhost = 127.0.0.1\nport = ${targets.port}\n`);
  await writeFile(join(dir, 'porthole.conf'), `[DEFAULT]\nstate_path = ${dir}/state\n[vnc]\nnovncproxy_host = 127.0.0.1\n` +
    `novncproxy_port = ${proxyPort}\nnovncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n[cache]\nbackend = memory\n` +
    `[api]\nport = ${apiPort}\n[static]\ninventory_file = ${dir}/inventory.ini\n[console]\nshutdown_grace_period = 0\n${BENCH_LIMITS}`);
  const child = spawn(...proxyCommand(process.execPath, [`--inspect=127.0.0.1:${inspectPort}`, ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), process.env.BENCH_PORTHOLE_BIN ?? 'bin/porthole.js', 'serve', '--config-file', join(dir, 'porthole.conf')]), { stdio: ['ignore', process.env.BENCH_PROXY_STDOUT ? 'inherit' : 'ignore', 'ignore'] });
  await waitForPort(apiPort, child, 'porthole');
  const key = (await readFile(join(dir, 'state', 'api-key'), 'utf8')).trim();
  const res = await fetch(`http://127.0.0.1:${apiPort}/v1/consoles`, {
    method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ instance: 'console' }),
  });
  const { token } = (await res.json()) as { token: string };
  return {
    name: 'porthole',
    inspectPort,
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    open: () => wsOpen(`ws://127.0.0.1:${proxyPort}/websockify?token=${token}`, `http://127.0.0.1:${proxyPort}`),
    close: () => stopChild(child),
  };
}

async function websockifyPath(targets: Targets, dir: string): Promise<Path | undefined> {
  const port = await freePort();
  const tokenFile = join(dir, 'websockify-tokens.cfg');
  await writeFile(tokenFile, `console: 127.0.0.1:${targets.port}\n`);
  const child = spawn(...proxyCommand('websockify', ['--token-plugin', 'TokenFile', '--token-source', tokenFile, `127.0.0.1:${port}`]), { stdio: ['ignore', 'ignore', 'ignore'] });
  const failed = await new Promise<boolean>((r) => { child.once('error', () => r(true)); setTimeout(() => r(false), 300); });
  if (failed) return undefined;
  await waitForPort(port, child, 'websockify');
  return {
    name: 'websockify',
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    open: () => wsOpen(`ws://127.0.0.1:${port}/websockify?token=console`, `http://127.0.0.1:${port}`),
    close: () => stopChild(child),
  };
}

/** Open a console and wait for the server's greeting (12 bytes); what came after it is passed on. */
async function openConsole(path: Path): Promise<{ c: Conn; data(fn: (d: Buffer) => void): void }> {
  const c = await path.open();
  let seen = 0;
  let after: ((d: Buffer) => void) | undefined;
  let early: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    c.onData((d) => {
      if (seen >= GREETING.length) {
        if (after) after(d);
        else early.push(Buffer.from(d));
        return;
      }
      const take = Math.min(d.length, GREETING.length - seen);
      seen += take;
      if (d.length > take) early.push(Buffer.from(d.subarray(take)));
      if (seen === GREETING.length) resolve();
    });
    void c.done.then(() => reject(new Error(`${path.name}: closed before the greeting`)));
  });
  return { c, data: (fn) => { after = fn; for (const d of early) fn(d); early = []; } };
}

/** MiB/s from the first flood byte until BULK_BYTES arrived, one session. */
async function down(path: Path): Promise<number> {
  const { c, data } = await openConsole(path);
  let got = 0;
  let start = 0n;
  const cpu = process.cpuUsage();
  c.send(Buffer.from('F'));
  await new Promise<void>((resolve) => {
    data((d) => {
      if (start === 0n) start = process.hrtime.bigint();
      got += d.length;
      if (got >= BULK_BYTES) resolve();
    });
    void c.done.then(() => resolve());
  });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  if (process.env.BENCH_VERBOSE) process.stderr.write(`  ${path.name} down: client CPU ${((used.user + used.system) / 1e6 / secs * 100).toFixed(0)}% of one core\n`);
  c.destroy();
  if (got < BULK_BYTES) NOTES.add(`${path.name}: the flood ended after ${got} of ${BULK_BYTES} bytes`);
  return got / MiB / secs;
}

/** MiB/s of 64 KiB messages until the server has counted BULK_BYTES, one session. */
async function up(path: Path): Promise<number> {
  const { c, data } = await openConsole(path);
  const header = Buffer.alloc(5);
  header.write('C');
  header.writeUInt32BE(BULK_BYTES, 1);
  c.send(header);
  const chunk = Buffer.alloc(CHUNK_BYTES, 0x41);
  const acked = new Promise<void>((resolve) => data(() => resolve()));
  const start = process.hrtime.bigint();
  // At most 4 MiB queued in this process; wait for the kernel to take some (no polling: the stand-in
  // VM shares this core, and a spinning client would slow it down for one proxy more than another).
  const window = Math.max(1, Math.floor((4 * MiB) / CHUNK_BYTES));
  let sent = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const written = () => { inFlight--; wake?.(); };
  while (sent < BULK_BYTES) {
    if (inFlight >= window) {
      await new Promise<void>((r) => { wake = r; });
      wake = undefined;
      continue;
    }
    inFlight++;
    c.send(chunk, written);
    sent += chunk.length;
  }
  await acked;
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  c.destroy();
  return BULK_BYTES / MiB / secs;
}

/** Consoles per second that reach the first RFB byte, 8 at a time. */
async function setups(path: Path): Promise<number> {
  const deadline = Date.now() + SETUP_SECONDS * 1000;
  let done = 0;
  const start = Date.now();
  await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, async () => {
    while (Date.now() < deadline) {
      const c = await path.open();
      await new Promise<void>((resolve) => { c.onData(() => resolve()); void c.done.then(() => resolve()); });
      c.destroy();
      done++;
    }
  }));
  return done / ((Date.now() - start) / 1000);
}

/**
 * 2,000 sequential 16-byte round trips through the echo, after RTT_WARMUP_MESSAGES untimed ones on
 * the same console: p50 and p99 in microseconds. The warm-up is there because the first second of
 * a fresh console is noisy on every path here, raw TCP included (milliseconds-long outliers in the
 * first ~2,500 round trips of each round, from the client's and the stand-in VM's processes and
 * the machine, not from a proxy): what a console feels like is the steady state.
 */
async function roundTrips(path: Path): Promise<{ p50: number; p99: number }> {
  const { c, data } = await openConsole(path);
  c.send(Buffer.from('E'));
  const msg = Buffer.alloc(16, 7);
  const times: number[] = [];
  let warmup = RTT_WARMUP_MESSAGES;
  await new Promise<void>((resolve) => {
    let pending = 0;
    let sentAt = 0n;
    const next = () => {
      pending = msg.length;
      sentAt = process.hrtime.bigint();
      c.send(msg);
    };
    data((d) => {
      pending -= d.length;
      if (pending > 0) return;
      if (warmup > 0) warmup--;
      else times.push(Number(process.hrtime.bigint() - sentAt) / 1000);
      if (times.length >= RTT_MESSAGES) resolve();
      else next();
    });
    next();
  });
  c.destroy();
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}

async function idleMemory(path: Path): Promise<number | undefined> {
  if (path.pid === undefined) return undefined;
  await new Promise((r) => setTimeout(r, 500));
  if (path.inspectPort !== undefined) await settleGc(path.inspectPort);
  const before = await treePssBytes(path.pid);
  const conns: Conn[] = [];
  for (let i = 0; i < IDLE_SESSIONS; i++) conns.push((await openConsole(path)).c);
  await new Promise((r) => setTimeout(r, 1000));
  if (path.inspectPort !== undefined) await settleGc(path.inspectPort);
  const after = await treePssBytes(path.pid);
  for (const c of conns) c.destroy();
  await new Promise((r) => setTimeout(r, 1000));
  return (after - before) / IDLE_SESSIONS;
}

async function stalledReader(path: Path): Promise<number | undefined> {
  if (path.pid === undefined) return undefined;
  const before = await treePssBytes(path.pid);
  const { c } = await openConsole(path);
  c.pauseReading();
  c.send(Buffer.from('F'));
  await new Promise((r) => setTimeout(r, 3000));
  const after = await treePssBytes(path.pid);
  c.destroy();
  await new Promise((r) => setTimeout(r, 500));
  return after - before;
}

interface Row {
  readonly key: string;
  readonly metric: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
  /** Per path: every round's value. */
  readonly values: Record<string, number[]>;
}

const median = (v: readonly number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? undefined : (s[Math.floor((s.length - 1) / 2)] as number);
};

function fmt(v: number | undefined, unit: string): string {
  if (v === undefined) return 'n/a';
  if (unit === 'KiB') return `${(v / 1024).toFixed(1)} KiB`;
  if (unit === 'MiB') return `${(v / MiB).toFixed(1)} MiB`;
  if (unit === 's') return `${v.toFixed(2)} s`;
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${unit}`;
}

function cell(values: readonly number[] | undefined, unit: string): string {
  if (values === undefined || values.length === 0) return 'n/a';
  const m = fmt(median(values), unit);
  if (values.length < 2) return m;
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return `${m} (${fmt(lo, unit).split(' ')[0] ?? ''}–${fmt(hi, unit)})`;
}

/** The stand-in server runs in its own process, so this process's client has a core's worth of CPU. */
async function spawnTargets(): Promise<Targets> {
  const child = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--targets'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', (code) => reject(new Error(`target process exited ${code}`)));
  });
  return { port, close: () => stopChild(child) };
}

async function runTargets(): Promise<void> {
  const sockets = new Set<Socket>();
  const server = await listen((s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); consoleServer(s, CHUNK_BYTES); });
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  process.once('SIGTERM', () => { for (const s of sockets) s.destroy(); server.close(() => process.exit(0)); });
}

/**
 * Wait until no proxy process uses CPU (at most 10 s): websockify's master reaps hundreds of
 * per-connection children after the setups row, on the CPU the next proxy is pinned to; measured
 * without this wait, Porthole's up row halved whenever it followed websockify's.
 */
async function quiet(paths: readonly Path[]): Promise<void> {
  const pids = paths.map((p) => p.pid).filter((p): p is number => p !== undefined);
  const total = async () => (await Promise.all(pids.map((p) => treeCpuSeconds(p)))).reduce((a, b) => a + b, 0);
  const deadline = Date.now() + 10_000;
  let last = await total();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await total();
    if (now - last < 0.02) return;
    last = now;
  }
}

async function main(): Promise<void> {
  if (PIN) execFileSync('taskset', ['-pc', CLIENT_CPUS, String(process.pid)], { stdio: 'ignore' }); // the stand-in VM inherits it
  const dir = await mkdtemp(join(tmpdir(), 'porthole-bench-'));
  const targets = await spawnTargets();
  const paths: Path[] = [];
  if (PATHS.has('raw')) paths.push(rawPath(targets));
  if (PATHS.has('porthole')) paths.push(await portholePath(targets, dir));
  if (PATHS.has('websockify')) {
    const websockify = await websockifyPath(targets, dir);
    if (websockify) paths.push(websockify);
    else process.stderr.write('websockify not found (apt-get install websockify): its column is skipped\n');
  }
  const rows: Row[] = [
    { key: 'down', metric: 'relay down (VM → browser)', unit: 'MiB/s', better: 'higher', values: {} },
    { key: 'up', metric: 'relay up (browser → VM)', unit: 'MiB/s', better: 'higher', values: {} },
    { key: 'setups', metric: 'console setups (8 at a time, to the first RFB byte)', unit: '/s', better: 'higher', values: {} },
    { key: 'p50', metric: `small-message round trip p50 (${RTT_MESSAGES} sequential)`, unit: 'µs', better: 'lower', values: {} },
    { key: 'p99', metric: 'small-message round trip p99', unit: 'µs', better: 'lower', values: {} },
    { key: 'idle', metric: 'memory per idle console', unit: 'KiB', better: 'lower', values: {} },
    { key: 'stalled', metric: 'memory, stalled reader + flooding VM (3 s)', unit: 'MiB', better: 'lower', values: {} },
    { key: 'cpu', metric: `proxy CPU per GiB down (${CHUNK_BYTES / 1024} KiB writes)`, unit: 's', better: 'lower', values: {} },
  ];
  const row = (key: string) => rows.find((r) => r.key === key) as Row;
  const wanted = (key: string) => ONLY.size === 0 || ONLY.has(key);
  const add = (key: string, path: Path, v: number | undefined) => {
    if (v === undefined) return;
    if (process.env.BENCH_VERBOSE) process.stderr.write(`  ${path.name} ${key}: ${v.toFixed(1)}\n`);
    (row(key).values[path.name] ??= []).push(v);
  };
  try {
    // Rounds alternate between the paths, so a slow moment of the machine does not land on one path's rounds only.
    for (let round = 0; round < ROUNDS; round++) {
      for (const p of paths) {
        await quiet(paths);
        process.stderr.write(`round ${round + 1}/${ROUNDS}: ${p.name}…\n`);
        if (wanted('down') || wanted('cpu')) {
          const cpu0 = p.pid === undefined ? undefined : await treeCpuSeconds(p.pid);
          add('down', p, await down(p));
          await new Promise((r) => setTimeout(r, 300)); // websockify's child for the session exits
          if (p.pid !== undefined && cpu0 !== undefined) add('cpu', p, ((await treeCpuSeconds(p.pid)) - cpu0) * (1024 * MiB / BULK_BYTES));
        }
        if (wanted('up')) {
          await quiet(paths);
          const upCpu0 = p.pid === undefined ? 0 : await treeCpuSeconds(p.pid);
          const t0 = performance.now();
          add('up', p, await up(p));
          if (process.env.BENCH_VERBOSE && p.pid !== undefined) process.stderr.write(`  ${p.name} up: proxy busy ${(((await treeCpuSeconds(p.pid)) - upCpu0) / ((performance.now() - t0) / 1000) * 100).toFixed(0)}% of a CPU\n`);
        }
        if (wanted('setups')) add('setups', p, await setups(p));
        if (wanted('p50') || wanted('p99')) {
          await quiet(paths);
          const rtt = await roundTrips(p);
          add('p50', p, rtt.p50);
          add('p99', p, rtt.p99);
        }
      }
    }
    for (const p of paths) {
      if (wanted('idle')) add('idle', p, await idleMemory(p));
      if (wanted('stalled')) add('stalled', p, await stalledReader(p));
    }
  } finally {
    for (const p of paths) await p.close();
    await targets.close();
    await rm(dir, { recursive: true, force: true });
  }
  const lines = [
    `Porthole relay benchmark — ${BULK_BYTES / MiB} MiB bulk transfers in ${CHUNK_BYTES / 1024} KiB writes/messages, one session at a time; ` +
      `${SETUP_CONCURRENCY} concurrent setups for ${SETUP_SECONDS} s; ${RTT_MESSAGES} round trips (after ${RTT_WARMUP_MESSAGES} untimed); ${IDLE_SESSIONS} idle consoles; ` +
      `median of ${ROUNDS} rounds (min–max); loopback, same run; ${CLIENT === 'ws' ? 'client: the ws package' : 'client: bench/lean-client.ts'}; ${PIN ? `each proxy pinned to CPU ${PROXY_CPU}, client and stand-in VM to CPU ${CLIENT_CPUS}` : 'no CPU pinning'}`,
    '',
    '| metric | raw TCP | websockify | porthole | porthole / websockify |',
    '|---|---|---|---|---|',
  ];
  for (const r of rows) {
    if (!Object.values(r.values).some((v) => v.length > 0)) continue;
    const wsf = median(r.values.websockify ?? []);
    const ph = median(r.values.porthole ?? []);
    const ratio = wsf === undefined || ph === undefined || ph === 0 ? 'n/a'
      : r.better === 'higher' ? `${(ph / wsf).toFixed(2)}×` : r.unit === 'µs' ? `${(ph / wsf).toFixed(2)}× (lower is better)` : `${(wsf / ph).toFixed(2)}× less`;
    lines.push(`| ${r.metric} | ${cell(r.values['raw TCP'], r.unit)} | ${cell(r.values.websockify, r.unit)} | ${cell(r.values.porthole, r.unit)} | ${ratio} |`);
  }
  if (NOTES.size > 0) lines.push('', ...[...NOTES].map((n) => `note: ${n}`));
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv.includes('--targets')) await runTargets();
else await main();
