/**
 * Relay benchmark: Porthole against raw TCP and against websockify (Debian package), in one run,
 * reported as ratios. Loopback only. Usage: `npm run bench` (needs `apt-get install websockify`
 * for the websockify column; without it that column is skipped).
 *
 * Every path relays to the same local TCP servers (a source that streams, a sink that counts, an
 * echo, a greeter that sends an RFB version line, a holder for idle sessions, a flooder). The
 * WebSocket client is the `ws` package in this process for both proxies, so the client's cost is
 * the same on both sides of a ratio. Porthole and websockify each run as a separate process.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForPort } from '../test/helpers/net.js';
import { BENCH_LIMITS, cpuSeconds, treePssBytes, sinkBytes, streamBytes, downMiBps, setupsPerSecond, stopChild, upMiBps, wsConn, type Conn } from './common.js';

const MiB = 1024 * 1024;
const BULK_BYTES = Number(process.env.BENCH_BULK_MIB ?? 1024) * MiB;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SETUP_SECONDS = Number(process.env.BENCH_SETUP_SECONDS ?? 3);
const SETUP_CONCURRENCY = 8;
const RTT_MESSAGES = 5000;
const IDLE_SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 200);
const GREETING = Buffer.from('RFB 003.008\n');

const NOTES = new Set<string>();

type TargetName = 'source' | 'sink' | 'echo' | 'greeter' | 'holder' | 'flooder';

interface Targets {
  ports: Record<TargetName, number>;
  close(): Promise<void>;
}

async function listen(handler: (s: Socket) => void): Promise<Server> {
  const server = createServer({ noDelay: true }, (s) => {
    s.on('error', () => s.destroy());
    handler(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

async function startTargets(): Promise<Targets> {
  const chunk = Buffer.alloc(256 * 1024, 0x42);
  const sockets = new Set<Socket>();
  const track = (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); };
  const servers: Record<TargetName, Server> = {
    // Streams BULK_BYTES then ends.
    source: await listen((s) => {
      track(s);
      streamBytes(s, BULK_BYTES, chunk);
    }),
    // Counts; answers one byte when BULK_BYTES arrived.
    sink: await listen((s) => {
      track(s);
      sinkBytes(s, BULK_BYTES);
    }),
    echo: await listen((s) => { track(s); s.on('data', (d) => s.write(d)); }),
    greeter: await listen((s) => { track(s); s.end(GREETING); }),
    holder: await listen((s) => { track(s); s.write(GREETING); }),
    flooder: await listen((s) => {
      track(s);
      const pump = () => { while (!s.destroyed) if (!s.write(chunk)) { s.once('drain', pump); return; } };
      pump();
    }),
  };
  const ports = Object.fromEntries(Object.entries(servers).map(([k, v]) => [k, (v.address() as AddressInfo).port])) as Record<TargetName, number>;
  return {
    ports,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(Object.values(servers).map((srv) => new Promise((r) => srv.close(r))));
    },
  };
}

/** A way to open a connection to a named target: raw TCP, or a WebSocket through a proxy. */
interface Path {
  readonly name: string;
  readonly pid?: number;
  open(target: TargetName): Promise<Conn>;
  close(): Promise<void>;
}

function rawPath(targets: Targets): Path {
  return {
    name: 'raw TCP',
    async open(target) {
      const s = connect({ host: '127.0.0.1', port: targets.ports[target], noDelay: true });
      await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
      return {
        onData: (fn) => s.on('data', fn),
        send: (d) => { s.write(d); },
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

async function porthholePath(targets: Targets, dir: string): Promise<Path> {
  const proxyPort = await freePort();
  const apiPort = await freePort();
  const inventory = Object.entries(targets.ports).map(([name, port]) => `[${name}]\nhost = 127.0.0.1\nport = ${port}\n`).join('');
  await writeFile(join(dir, 'inventory.ini'), inventory);
  await writeFile(join(dir, 'porthole.conf'), `[DEFAULT]\nstate_path = ${dir}/state\n[vnc]\nnovncproxy_host = 127.0.0.1\n` +
    `novncproxy_port = ${proxyPort}\nnovncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n` +
    `[api]\nport = ${apiPort}\n[static]\ninventory_file = ${dir}/inventory.ini\n[console]\nshutdown_grace_period = 0\n${BENCH_LIMITS}`);
  const child = spawn(process.execPath, [...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), 'bin/porthole.js', 'serve', '--config-file', join(dir, 'porthole.conf')], { stdio: ['ignore', 'ignore', 'ignore'] });
  await waitForPort(apiPort, child, 'porthole');
  const key = (await readFile(join(dir, 'state', 'api-key'), 'utf8')).trim();
  const tokens = {} as Record<TargetName, string>;
  for (const name of Object.keys(targets.ports) as TargetName[]) {
    const res = await fetch(`http://127.0.0.1:${apiPort}/v1/consoles`, {
      method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ instance: name }),
    });
    tokens[name] = ((await res.json()) as { token: string }).token;
  }
  const origin = `http://127.0.0.1:${proxyPort}`;
  return {
    name: 'porthole',
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    open: (target) => wsConn(`ws://127.0.0.1:${proxyPort}/websockify?token=${tokens[target]}`, origin),
    close: () => stopChild(child),
  };
}

async function websockifyPath(targets: Targets, dir: string): Promise<Path | undefined> {
  const port = await freePort();
  const tokenFile = join(dir, 'websockify-tokens.cfg');
  await writeFile(tokenFile, Object.entries(targets.ports).map(([name, p]) => `${name}: 127.0.0.1:${p}\n`).join(''));
  const child = spawn('websockify', ['--token-plugin', 'TokenFile', '--token-source', tokenFile, `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'ignore'] });
  const failed = await new Promise<boolean>((r) => { child.once('error', () => r(true)); setTimeout(() => r(false), 300); });
  if (failed) return undefined;
  await waitForPort(port, child, 'websockify');
  return {
    name: 'websockify',
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    open: (target) => wsConn(`ws://127.0.0.1:${port}/websockify?token=${target}`, `http://127.0.0.1:${port}`),
    close: () => stopChild(child),
  };
}

async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (process.env.BENCH_VERBOSE) process.stderr.write(`  ${name}…\n`);
  return fn();
}

async function roundTrips(path: Path): Promise<number> {
  const c = await path.open('echo');
  const msg = Buffer.alloc(16, 7);
  let n = 0;
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    let pending = 0;
    c.onData((d) => {
      pending -= d.length;
      if (pending > 0) return;
      if (++n >= RTT_MESSAGES) { resolve(); return; }
      pending = msg.length;
      c.send(msg);
    });
    pending = msg.length;
    c.send(msg);
  });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  c.destroy();
  return n / secs;
}

async function idleMemory(path: Path): Promise<number | undefined> {
  if (path.pid === undefined) return undefined;
  await new Promise((r) => setTimeout(r, 500));
  const before = await treePssBytes(path.pid);
  const conns: Conn[] = [];
  for (let i = 0; i < IDLE_SESSIONS; i++) {
    const c = await path.open('holder');
    // A session closed before its greeting (a limit, a crash) must fail the run, not hang it.
    await new Promise<void>((resolve, reject) => {
      c.onData(() => resolve());
      void c.done.then(() => reject(new Error(`${path.name}: idle session ${i + 1} closed before its greeting`)));
    });
    conns.push(c);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const after = await treePssBytes(path.pid);
  for (const c of conns) c.destroy();
  await new Promise((r) => setTimeout(r, 1000));
  return (after - before) / IDLE_SESSIONS;
}

async function stalledReader(path: Path): Promise<number | undefined> {
  if (path.pid === undefined) return undefined;
  const before = await treePssBytes(path.pid);
  const c = await path.open('flooder');
  c.pauseReading();
  await new Promise((r) => setTimeout(r, 3000));
  const after = await treePssBytes(path.pid);
  c.destroy();
  await new Promise((r) => setTimeout(r, 500));
  return after - before;
}

interface Row {
  metric: string;
  unit: string;
  values: Record<string, number | undefined>;
  better: 'higher' | 'lower';
}

function fmt(v: number | undefined, unit: string): string {
  if (v === undefined) return 'n/a';
  if (unit === 'KiB') return `${(v / 1024).toFixed(1)} KiB`;
  if (unit === 'MiB') return `${(v / MiB).toFixed(1)} MiB`;
  if (unit === 's') return `${v.toFixed(2)} s`;
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${unit}`;
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`;
}

/**
 * The target servers run in their own process so that the WebSocket client in this process has a
 * core's worth of CPU to itself (on 2 cores, client + targets in one process was the bottleneck).
 */
async function spawnTargets(): Promise<Targets> {
  const child = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--targets'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const ports = await new Promise<Record<TargetName, number>>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(JSON.parse(out) as Record<TargetName, number>);
    });
    child.once('exit', (code) => reject(new Error(`target process exited ${code}`)));
  });
  return { ports, close: () => stopChild(child) };
}

async function runTargets(): Promise<void> {
  const targets = await startTargets();
  process.stdout.write(`${JSON.stringify(targets.ports)}\n`);
  process.once('SIGTERM', () => { void targets.close().then(() => process.exit(0)); });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'porthole-bench-'));
  const targets = await spawnTargets();
  const paths: Path[] = [rawPath(targets)];
  const porthole = await porthholePath(targets, dir);
  paths.push(porthole);
  const websockify = await websockifyPath(targets, dir);
  if (websockify) paths.push(websockify);
  else process.stderr.write('websockify not found (apt-get install websockify): its column is skipped\n');
  const rows: Row[] = [
    { metric: 'relay down (VM → browser)', unit: 'MiB/s', values: {}, better: 'higher' },
    { metric: 'relay up (browser → VM)', unit: 'MiB/s', values: {}, better: 'higher' },
    { metric: 'small-message round trips', unit: 'msg/s', values: {}, better: 'higher' },
    { metric: 'session setups', unit: '/s', values: {}, better: 'higher' },
    { metric: 'memory per idle session', unit: 'KiB', values: {}, better: 'lower' },
    { metric: 'memory, stalled reader + flooding VM (3 s)', unit: 'MiB', values: {}, better: 'lower' },
    { metric: `proxy CPU for the down runs (${ROUNDS} × ${BULK_BYTES / MiB} MiB)`, unit: 's', values: {}, better: 'lower' },
  ];
  try {
    for (const p of paths) {
      process.stderr.write(`measuring ${p.name}…\n`);
      const [r0, r1, r2, r3, r4, r5, r6] = rows as [Row, Row, Row, Row, Row, Row, Row];
      const cpu0 = p.pid === undefined ? undefined : await cpuSeconds(p.pid);
      r0.values[p.name] = await downMiBps(() => p.open('source'), BULK_BYTES, ROUNDS,
        (missing) => NOTES.add(`${p.name} lost ${missing} bytes when the VM side closed (data queued in the proxy was dropped)`));
      if (p.pid !== undefined && cpu0 !== undefined) r6.values[p.name] = (await cpuSeconds(p.pid)) - cpu0;
      r1.values[p.name] = await step('up', () => upMiBps(() => p.open('sink'), BULK_BYTES, ROUNDS));
      r2.values[p.name] = await step('roundTrips', () => roundTrips(p));
      r3.values[p.name] = await step('setups', () => setupsPerSecond(() => p.open('greeter'), SETUP_SECONDS, SETUP_CONCURRENCY));
      r4.values[p.name] = await step('idleMemory', () => idleMemory(p));
      r5.values[p.name] = await step('stalledReader', () => stalledReader(p));
    }
  } finally {
    for (const p of paths) await p.close();
    await targets.close();
    await rm(dir, { recursive: true, force: true });
  }
  const lines = [
    `Porthole relay benchmark — ${BULK_BYTES / MiB} MiB bulk transfers (best of ${ROUNDS}), ${SETUP_CONCURRENCY} concurrent setups for ${SETUP_SECONDS} s, ${IDLE_SESSIONS} idle sessions; loopback, same run`,
    '',
    '| metric | raw TCP | websockify | porthole | porthole / websockify | porthole / raw TCP |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const raw = r.values['raw TCP'];
    const wsf = r.values.websockify;
    const ph = r.values.porthole;
    const inv = r.better === 'lower';
    lines.push(`| ${r.metric} | ${fmt(raw, r.unit)} | ${fmt(wsf, r.unit)} | ${fmt(ph, r.unit)} | ${inv ? `${ratio(wsf, ph)} less` : ratio(ph, wsf)} | ${inv ? 'n/a' : ratio(ph, raw)} |`);
  }
  if (NOTES.size > 0) lines.push('', ...[...NOTES].map((n) => `note: ${n}`));
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv.includes('--targets')) await runTargets();
else await main();
