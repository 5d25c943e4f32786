/**
 * TLS benchmark: what encryption on both hops costs. Three `porthole serve` processes in one run,
 * reported as ratios against the plain path:
 * - plain: ws:// to the proxy, transparent relay over TCP to the VNC server;
 * - wss: TLS to the browser, plain TCP to the VNC server;
 * - wss + VeNCrypt: TLS to the browser, and the RFB security proxy speaking VeNCrypt X509None
 *   (TLS with a verified server certificate) to the VNC server.
 * Usage: `npm run bench:tls` (also the third part of `npm run bench`). Loopback only; certificates
 * come from a throwaway openssl CA.
 *
 * The VNC servers here are Node processes playing QEMU's side of RFB 3.8 + VeNCrypt, so the
 * numbers measure Porthole, not a guest's framebuffer encoder. A "setup" is what a browser waits
 * for before it can draw: the proxy's greeting on the transparent paths, ServerInit (after both TLS
 * handshakes and the whole RFB handshake) on the VeNCrypt path.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { freePort, waitForPort } from '../test/helpers/net.js';
import { makeTestPki, type TestPki } from '../test/helpers/pki.js';
import { acceptVencrypt, rfbClientHandshake } from '../test/helpers/vencrypt-server.js';
import { BENCH_LIMITS, cpuSeconds, sinkBytes, streamBytes, downMiBps, setupsPerSecond, stopChild, upMiBps, wsConn, type Conn } from './common.js';

const MiB = 1024 * 1024;
const BULK_BYTES = Number(process.env.BENCH_TLS_BULK_MIB ?? 512) * MiB;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SETUP_SECONDS = Number(process.env.BENCH_SETUP_SECONDS ?? 3);
const SETUP_CONCURRENCY = 8;
const GREETING = Buffer.from('RFB 003.008\n');

type Role = 'source' | 'sink' | 'greeter';

function serve(role: Role, s: Socket): void {
  const chunk = Buffer.alloc(256 * 1024, 0x42);
  if (role === 'greeter') {
    s.end(GREETING);
  } else if (role === 'source') {
    streamBytes(s, BULK_BYTES, chunk);
  } else {
    sinkBytes(s, BULK_BYTES);
  }
}

/** The role's traffic inside a VeNCrypt TLS connection. */
async function serveVencrypt(role: Role, s: Socket, secureContext: SecureContext): Promise<void> {
  const { tls, early } = await acceptVencrypt(s, secureContext);
  if (role === 'greeter') {
    tls.end();
  } else if (role === 'sink') {
    sinkBytes(tls, BULK_BYTES, early.length);
  } else {
    serve('source', tls);
  }
}

/** The VNC-side servers, in their own process so the client here has a core to itself. */
async function runTargets(pkiDir: string): Promise<void> {
  const secureContext = createSecureContext({ cert: await readFile(join(pkiDir, 'server-cert.pem')), key: await readFile(join(pkiDir, 'server-key.pem')) });
  const servers: Record<string, Server> = {};
  for (const role of ['source', 'sink', 'greeter'] as const) {
    servers[role] = createServer({ noDelay: true }, (s) => { s.on('error', () => s.destroy()); serve(role, s); });
    servers[`vencrypt-${role}`] = createServer({ noDelay: true }, (s) => {
      s.on('error', () => s.destroy());
      serveVencrypt(role, s, secureContext).catch(() => s.destroy());
    });
  }
  const ports: Record<string, number> = {};
  for (const [name, srv] of Object.entries(servers)) {
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    ports[name] = (srv.address() as AddressInfo).port;
  }
  process.stdout.write(`${JSON.stringify(ports)}\n`);
  process.once('SIGTERM', () => process.exit(0));
}

interface Variant {
  readonly name: string;
  readonly tlsToBrowser: boolean;
  readonly vencrypt: boolean;
}

interface RunningPorthole {
  readonly pid: number | undefined;
  open(role: Role): Promise<Conn>;
  close(): Promise<void>;
}

async function startPorthole(v: Variant, ports: Record<string, number>, pki: TestPki, dir: string): Promise<RunningPorthole> {
  const home = join(dir, v.name.replace(/\W+/g, '-'));
  const proxyPort = await freePort();
  const apiPort = await freePort();
  const prefix = v.vencrypt ? 'vencrypt-' : '';
  await writeFile(`${home}.inventory`, (['source', 'sink', 'greeter'] as const).map((r) => `[${r}]\nhost = 127.0.0.1\nport = ${ports[`${prefix}${r}`]}\n`).join(''));
  const scheme = v.tlsToBrowser ? 'https' : 'http';
  await writeFile(`${home}.conf`, `[DEFAULT]\nstate_path = ${home}\n${v.tlsToBrowser ? `cert = ${pki.serverCert}\nkey = ${pki.serverKey}\n` : ''}` +
    `[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\nnovncproxy_base_url = ${scheme}://127.0.0.1:${proxyPort}/vnc_lite.html\n` +
    (v.vencrypt ? `auth_schemes = vencrypt\nvencrypt_ca_certs = ${pki.caCert}\n` : '') +
    `[api]\nport = ${apiPort}\n[static]\ninventory_file = ${home}.inventory\n[console]\nshutdown_grace_period = 0\n${BENCH_LIMITS}`);
  const child = spawn(process.execPath, ['bin/porthole.js', 'serve', '--config-file', `${home}.conf`], { stdio: ['ignore', 'ignore', 'ignore'] });
  await waitForPort(apiPort, child, 'porthole');
  const key = (await readFile(join(home, 'api-key'), 'utf8')).trim();
  const tokens: Record<string, string> = {};
  for (const role of ['source', 'sink', 'greeter']) {
    const res = await fetch(`http://127.0.0.1:${apiPort}/v1/consoles`, {
      method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ instance: role }),
    });
    tokens[role] = ((await res.json()) as { token: string }).token;
  }
  const ca = await readFile(pki.caCert);
  const origin = `${scheme}://127.0.0.1:${proxyPort}`;
  return {
    pid: child.pid,
    async open(role) {
      const c = await wsConn(`${v.tlsToBrowser ? 'wss' : 'ws'}://127.0.0.1:${proxyPort}/websockify?token=${tokens[role] ?? ''}`, origin, v.tlsToBrowser ? { ca } : {});
      if (!v.vencrypt) return c;
      // Hand the caller a connection that starts after ServerInit, with any early bytes replayed.
      const early = await rfbClientHandshake(c);
      return {
        ...c,
        onData(fn) {
          if (early.length > 0) fn(early);
          c.onData(fn);
        },
      };
    },
    close: () => stopChild(child),
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'porthole-bench-tls-'));
  const pki = makeTestPki();
  const targets = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--targets', pki.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const variants: Variant[] = [
    { name: 'plain (ws, TCP)', tlsToBrowser: false, vencrypt: false },
    { name: 'wss, TCP', tlsToBrowser: true, vencrypt: false },
    { name: 'wss + VeNCrypt', tlsToBrowser: true, vencrypt: true },
  ];
  const results: Record<string, { down: number; up: number; setups: number; cpu: number | undefined }> = {};
  try {
    const ports = await new Promise<Record<string, number>>((resolve, reject) => {
      let out = '';
      targets.stdout?.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) resolve(JSON.parse(out) as Record<string, number>); });
      targets.once('exit', (code) => reject(new Error(`target process exited ${code}`)));
    });
    for (const v of variants) {
      process.stderr.write(`measuring ${v.name}…\n`);
      const p = await startPorthole(v, ports, pki, dir);
      try {
        const cpu0 = p.pid === undefined ? undefined : await cpuSeconds(p.pid);
        const d = await downMiBps(() => p.open('source'), BULK_BYTES, ROUNDS);
        const cpu = p.pid === undefined || cpu0 === undefined ? undefined : (await cpuSeconds(p.pid)) - cpu0;
        results[v.name] = {
          down: d,
          up: await upMiBps(() => p.open('sink'), BULK_BYTES, ROUNDS),
          setups: await setupsPerSecond(() => p.open('greeter'), SETUP_SECONDS, SETUP_CONCURRENCY),
          cpu,
        };
      } finally {
        await p.close();
      }
    }
  } finally {
    await stopChild(targets);
    await rm(dir, { recursive: true, force: true });
    await rm(pki.dir, { recursive: true, force: true });
  }
  const [plain, wss, venc] = variants.map((v) => results[v.name]) as [typeof results[string], typeof results[string], typeof results[string]];
  const r = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`);
  const n = (x: number | undefined, unit: string) => (x === undefined ? 'n/a' : `${x >= 100 ? x.toFixed(0) : x.toFixed(2)} ${unit}`);
  const rows: Array<[string, keyof typeof plain, string]> = [
    ['relay down (VM → browser)', 'down', 'MiB/s'],
    ['relay up (browser → VM)', 'up', 'MiB/s'],
    ['console setups (8 concurrent)', 'setups', '/s'],
    [`proxy CPU for the down runs (${ROUNDS} × ${BULK_BYTES / MiB} MiB)`, 'cpu', 's'],
  ];
  const lines = [
    `Porthole TLS benchmark — ${BULK_BYTES / MiB} MiB bulk transfers (best of ${ROUNDS}), ${SETUP_CONCURRENCY} concurrent setups for ${SETUP_SECONDS} s; loopback, same run`,
    '',
    '| metric | plain (ws, TCP) | wss, TCP | wss + VeNCrypt | wss / plain | wss + VeNCrypt / plain |',
    '|---|---|---|---|---|---|',
    ...rows.map(([label, k, unit]) => `| ${label} | ${n(plain[k], unit)} | ${n(wss[k], unit)} | ${n(venc[k], unit)} | ${r(wss[k], plain[k])} | ${r(venc[k], plain[k])} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv.includes('--targets')) await runTargets(process.argv[process.argv.indexOf('--targets') + 1] ?? '');
else await main();
