/**
 * Browser-side TLS setups (`npm run bench:tls-setups`, part of `npm run bench`): what a returning
 * browser and the certificate's key type cost a console setup. Three `porthole serve` processes in
 * one run (plain ws, wss with an RSA 2048 certificate, wss with an ECDSA P-256 certificate, both
 * from one throwaway openssl CA), pinned to the last CPU like the relay benchmark; 8 clients at a
 * time connect → the first RFB byte, for BENCH_SETUP_SECONDS, median of BENCH_ROUNDS rounds:
 * - full: every connection a new TLS handshake (a browser's first visit);
 * - resumed: each client offers the session ticket the server gave its previous connection (a
 *   browser reconnecting, a SPICE console's next channel, a page reload), as browsers do.
 * The VNC side is the stand-in server (greets, holds), plain TCP.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from '../test/helpers/net.js';
import { makeTestPki } from '../test/helpers/pki.js';
import { BENCH_LIMITS, stopChild, treeCpuSeconds } from './common.js';
import { consoleServer, listen } from './console-server.js';
import { leanConn } from './lean-client.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SETUP_SECONDS = Number(process.env.BENCH_SETUP_SECONDS ?? 3);
const CONCURRENCY = 8;
const CPUS = availableParallelism();
const PIN = process.env.BENCH_PIN !== '0' && CPUS >= 2;

interface Variant { readonly name: string; readonly cert?: { cert: string; key: string } }

async function main(): Promise<void> {
  if (PIN) execFileSync('taskset', ['-pc', `0-${CPUS - 2}`, String(process.pid)], { stdio: 'ignore' });
  const dir = await mkdtemp(join(tmpdir(), 'porthole-tls-setups-'));
  const pki = makeTestPki();
  pki.issueServer(join(pki.dir, 'ec-cert.pem'), join(pki.dir, 'ec-key.pem'), undefined, 'ec');
  const sockets = new Set<Socket>();
  const target = await listen((s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); consoleServer(s, 64 * 1024); });
  const targetPort = (target.address() as AddressInfo).port;
  const variants: Variant[] = [
    { name: 'ws (no TLS)' },
    { name: 'wss, RSA 2048', cert: { cert: pki.serverCert, key: pki.serverKey } },
    { name: 'wss, ECDSA P-256', cert: { cert: join(pki.dir, 'ec-cert.pem'), key: join(pki.dir, 'ec-key.pem') } },
  ];
  const ca = await readFile(pki.caCert);
  const children: ReturnType<typeof spawn>[] = [];
  const results = new Map<string, { full: number[]; resumed: number[]; fullCpuMs: number[]; resumedCpuMs: number[] }>();
  try {
    const running = [];
    for (const v of variants) {
      const home = join(dir, String(running.length));
      const proxyPort = await freePort();
      const apiPort = await freePort();
      const scheme = v.cert ? 'https' : 'http';
      await writeFile(`${home}.inventory`, `[console]\nhost = 127.0.0.1\nport = ${targetPort}\n`);
      await writeFile(`${home}.conf`, `[DEFAULT]\nstate_path = ${home}\n${v.cert ? `cert = ${v.cert.cert}\nkey = ${v.cert.key}\n` : ''}` +
        `[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\nnovncproxy_base_url = ${scheme}://127.0.0.1:${proxyPort}/vnc_lite.html\n` +
        `[cache]\nbackend = memory\n[api]\nport = ${apiPort}\n[static]\ninventory_file = ${home}.inventory\n[console]\nshutdown_grace_period = 0\n${BENCH_LIMITS}`);
      const args = ['bin/porthole.js', 'serve', '--config-file', `${home}.conf`];
      const child = PIN ? spawn('taskset', ['-c', String(CPUS - 1), process.execPath, ...args], { stdio: 'ignore' }) : spawn(process.execPath, args, { stdio: 'ignore' });
      children.push(child);
      await waitForPort(apiPort, child, 'porthole');
      const key = (await readFile(join(home, 'api-key'), 'utf8')).trim();
      const res = await fetch(`http://127.0.0.1:${apiPort}/v1/consoles`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ instance: 'console' }) });
      const { token } = (await res.json()) as { token: string };
      running.push({ pid: child.pid as number, v, url: `${v.cert ? 'wss' : 'ws'}://127.0.0.1:${proxyPort}/websockify?token=${token}`, origin: `${scheme}://127.0.0.1:${proxyPort}` });
      results.set(v.name, { full: [], resumed: [], fullCpuMs: [], resumedCpuMs: [] });
    }
    let resumedCount = 0;
    /** Setups per second, and the proxy's CPU milliseconds per setup (taskset execs node: the pid is the proxy's). */
    const measured = async (pid: number, url: string, origin: string, tls: boolean, resume: boolean) => {
      const cpu0 = await treeCpuSeconds(pid);
      const t0 = Date.now();
      const rate = await setups(url, origin, tls, resume);
      const n = rate * ((Date.now() - t0) / 1000);
      return { rate, cpuMs: (((await treeCpuSeconds(pid)) - cpu0) * 1000) / n };
    };
    const setups = async (url: string, origin: string, tls: boolean, resume: boolean) => {
      const deadline = Date.now() + SETUP_SECONDS * 1000;
      let n = 0;
      const start = Date.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        let session: Buffer | undefined;
        while (Date.now() < deadline) {
          const c = await leanConn(url, origin, tls ? {
            options: { ca, ...(resume && session ? { session } : {}) },
            onSession: (s) => { session = s; },
            onSecure: (reused) => { if (reused) resumedCount++; },
          } : undefined);
          await new Promise<void>((resolve) => { c.onData(() => resolve()); void c.done.then(() => resolve()); });
          c.destroy();
          n++;
        }
      }));
      return n / ((Date.now() - start) / 1000);
    };
    for (let round = 0; round < ROUNDS; round++) {
      for (const r of running) {
        process.stderr.write(`round ${round + 1}/${ROUNDS}: ${r.v.name}…\n`);
        const row = results.get(r.v.name) as { full: number[]; resumed: number[]; fullCpuMs: number[]; resumedCpuMs: number[] };
        const full = await measured(r.pid, r.url, r.origin, r.v.cert !== undefined, false);
        row.full.push(full.rate);
        row.fullCpuMs.push(full.cpuMs);
        if (r.v.cert) {
          const resumed = await measured(r.pid, r.url, r.origin, true, true);
          row.resumed.push(resumed.rate);
          row.resumedCpuMs.push(resumed.cpuMs);
        }
      }
    }
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];
    const spread = (v: number[]) => (v.length === 0 ? 'n/a' : `${(median(v) as number).toFixed(0)} /s (${Math.min(...v).toFixed(0)}–${Math.max(...v).toFixed(0)})`);
    const plain = median((results.get('ws (no TLS)') as { full: number[] }).full) as number;
    const lines = [
      `Porthole TLS setups — ${CONCURRENCY} clients at a time to the first RFB byte for ${SETUP_SECONDS} s, median of ${ROUNDS} rounds (min–max); ${PIN ? `proxy pinned to CPU ${CPUS - 1}` : 'no pinning'}; loopback`,
      '',
      '| proxy | full handshakes | resumed (session ticket) | full / no TLS | resumed / no TLS | proxy CPU per setup: full / resumed |',
      '|---|---|---|---|---|---|',
      ...[...results].map(([name, r]) => {
        const full = median(r.full) as number;
        const resumed = r.resumed.length === 0 ? undefined : (median(r.resumed) as number);
        const cpu = (v: number[]) => (v.length === 0 ? 'n/a' : `${(median(v) as number).toFixed(2)} ms`);
        return `| ${name} | ${spread(r.full)} | ${r.resumed.length === 0 ? 'n/a' : spread(r.resumed)} | ${(full / plain).toFixed(2)}× | ${resumed === undefined ? 'n/a' : `${(resumed / plain).toFixed(2)}×`} | ${cpu(r.fullCpuMs)} / ${cpu(r.resumedCpuMs)} |`;
      }),
      '',
      `(${resumedCount} handshakes in the resumed columns were resumptions, as the client's TLS socket reported)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const c of children) await stopChild(c);
    for (const s of sockets) s.destroy();
    await new Promise((r) => target.close(r));
    await rm(dir, { recursive: true, force: true });
    await rm(pki.dir, { recursive: true, force: true });
  }
}

await main();
