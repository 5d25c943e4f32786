/**
 * Nova benchmark: Porthole in nova mode (`porthole nova-novncproxy`) against Debian 12's real
 * nova-novncproxy (python3-nova's `nova.cmd.novncproxy`, the code /usr/bin/nova-novncproxy of the
 * nova-consoleproxy package runs; websockify forks one process per console), in one run, on the
 * same nova.conf, the same Nova SQLite database and the same token, both doing their stale-port
 * RPC (`validate_console_port`) over the same RabbitMQ to the same stand-in nova-compute (Nova's
 * own oslo.messaging server stack, test/fixtures/nova/compute_standin.py). Loopback only.
 *
 * What a user sees:
 * - console setups/s: WebSocket opened with the token, the proxy checked it (database + RPC) and
 *   connected, and the VM's first byte (the RFB greeting) arrived; 8 at a time for a few seconds;
 * - memory per idle console: PSS of the proxy's whole process tree (Nova's forks included) with
 *   N consoles open and idle, minus the tree before, divided by N (N = 50 for Nova, whose forks
 *   cost tens of MiB each; 1000 for Porthole, whose few KiB each a smaller N would hide).
 * Usage: `npm run bench:nova` (also part of `npm run bench`). Needs python3-nova and
 * rabbitmq-server (installed by scripts/test.sh); without them the benchmark says so and skips.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { freePort, waitForPort } from '../test/helpers/net.js';
import { startTestNova } from '../test/helpers/nova.js';
import { spawnOwned } from '../test/helpers/run.js';
import { startRabbitmq } from '../test/helpers/services.js';
import { setupsPerSecond, stopChild, treePssBytes, wsConn, type Conn } from './common.js';

const SETUP_SECONDS = Number(process.env.BENCH_SETUP_SECONDS ?? 4);
const SETUP_CONCURRENCY = 8;
/** Idle consoles per proxy: Nova's forks cost tens of MiB each, so it gets fewer; the figure is per console. */
const IDLE_SESSIONS: Readonly<Record<string, number>> = { 'nova-novncproxy': Number(process.env.BENCH_NOVA_IDLE ?? 50), porthole: Number(process.env.BENCH_PORTHOLE_IDLE ?? 1000) };
const PYTHON = '/usr/bin/python3';

async function idleMemoryPerSession(pid: number, open: () => Promise<Conn>, sessions: number): Promise<number> {
  await new Promise((r) => setTimeout(r, 500));
  const before = await treePssBytes(pid);
  const conns: Conn[] = [];
  try {
    for (let i = 0; i < sessions; i++) {
      const c = await open();
      await new Promise<void>((resolve) => { c.onData(() => resolve()); void c.done.then(() => resolve()); });
      conns.push(c);
    }
    await new Promise((r) => setTimeout(r, 1000));
    return (await treePssBytes(pid) - before) / sessions;
  } finally {
    for (const c of conns) c.destroy();
  }
}

function haveNova(): string | undefined {
  if (!existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server')) return 'rabbitmq-server is not installed';
  try {
    execFileSync(PYTHON, ['-c', 'import nova.cmd.novncproxy'], { stdio: 'ignore' });
  } catch {
    return 'python3-nova is not installed';
  }
  return undefined;
}

async function main(): Promise<void> {
  const missing = haveNova();
  if (missing !== undefined) {
    process.stdout.write(`Nova benchmark skipped: ${missing} (bash scripts/test.sh installs it)\n`);
    return;
  }
  // The VM: greets like QEMU and then stays idle, as a console nobody types into.
  const vnc = createServer((s: Socket) => { s.on('error', () => s.destroy()); s.write('RFB 003.008\n'); });
  await new Promise<void>((r) => vnc.listen(0, '127.0.0.1', r));
  const vncPort = (vnc.address() as AddressInfo).port;
  const rabbit = await startRabbitmq() as Awaited<ReturnType<typeof startRabbitmq>> & { destroy(): Promise<void> };
  const nova = await startTestNova(vncPort, 1, 'http://127.0.0.1:6080/vnc_auto.html');
  const children: ChildProcess[] = [];
  try {
    const portsFile = join(nova.dir, 'compute-ports.json');
    const ports: Record<string, number[]> = {};
    for (const t of Object.values(nova.tokens)) (ports[t.instance_uuid] ??= []).push(t.port);
    await writeFile(portsFile, JSON.stringify(ports));
    const compute = spawnOwned(PYTHON, [join(process.cwd(), 'test', 'fixtures', 'nova', 'compute_standin.py'), rabbit.transportUrl, 'porthole-compute', portsFile],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(compute);
    await new Promise<void>((resolve, reject) => {
      compute.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
      compute.once('exit', (code) => reject(new Error(`compute stand-in exited with ${code}`)));
    });
    compute.stdout?.resume();

    const [novaPort, portholePort] = [await freePort(), await freePort()];
    const conf = (port: number) => `[DEFAULT]\nstate_path = ${nova.dir}\ntransport_url = ${rabbit.transportUrl}\n` +
      `[database]\nconnection = ${nova.connection}\n[api_database]\nconnection = sqlite:///${nova.dir}/nova_api.sqlite\n` +
      `[vnc]\nenabled = true\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${port}\nnovncproxy_base_url = http://127.0.0.1:${port}/vnc_auto.html\n` +
      `[oslo_concurrency]\nlock_path = ${nova.dir}/lock\n` +
      // Porthole's own limits are off here, as in the other benchmarks; Nova's nova.conf has none.
      '[console]\nmax_sessions = 0\nmax_sessions_per_instance = 0\nmax_failed_tokens = 0\n';
    await writeFile(join(nova.dir, 'bench-nova.conf'), conf(novaPort));
    await writeFile(join(nova.dir, 'bench-porthole.conf'), conf(portholePort));
    const proxies = [
      {
        name: 'nova-novncproxy', port: novaPort,
        child: spawnOwned(PYTHON, ['-c', `import sys; from nova.cmd.novncproxy import main; sys.argv = ['nova-novncproxy', '--config-file', ${JSON.stringify(join(nova.dir, 'bench-nova.conf'))}, '--web', ${JSON.stringify(nova.dir)}]; sys.exit(main())`],
          { stdio: ['ignore', 'ignore', 'ignore'] }),
      },
      {
        name: 'porthole', port: portholePort,
        child: spawn(process.execPath, ['bin/porthole.js', 'nova-novncproxy', '--config-file', join(nova.dir, 'bench-porthole.conf')], { stdio: ['ignore', 'ignore', 'ignore'] }),
      },
    ];
    children.push(...proxies.map((p) => p.child));
    const results: Record<string, { setups: number; idle: number }> = {};
    for (const p of proxies) {
      await waitForPort(p.port, p.child, p.name, 30_000);
      const open = () => wsConn(`ws://127.0.0.1:${p.port}/?token=${nova.tokens.novnc.token}`, `http://127.0.0.1:${p.port}`);
      // One console first: it must work (and warms both the database and the RPC connection).
      const first = await open();
      await new Promise<void>((resolve, reject) => {
        first.onData(() => resolve());
        void first.done.then(() => reject(new Error(`${p.name}: the console closed before the VM's greeting`)));
      });
      first.destroy();
      process.stderr.write(`measuring ${p.name}…\n`);
      const setups = await setupsPerSecond(open, SETUP_SECONDS, SETUP_CONCURRENCY);
      const idle = await idleMemoryPerSession(p.child.pid as number, open, IDLE_SESSIONS[p.name] ?? 50);
      results[p.name] = { setups, idle };
    }
    const n = results['nova-novncproxy'];
    const ph = results.porthole;
    if (n === undefined || ph === undefined) throw new Error('a proxy was not measured');
    // A few dozen Porthole consoles can vanish in its heap's slack, hence 1000 of them; should the
    // growth still be under 1 KiB each, it is shown as such and the ratio as a lower bound.
    const kib = (b: number) => (b < 1024 ? '< 1 KiB' : `${(b / 1024).toFixed(0)} KiB`);
    const memRatio = ph.idle < 1024 ? `> ${(n.idle / 1024).toFixed(0)}× less` : `${(n.idle / ph.idle).toFixed(0)}× less`;
    process.stdout.write([
      `Porthole vs Debian 12 nova-novncproxy (python3-nova ${execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'python3-nova']).toString()}) — same nova.conf, Nova SQLite database, token, RabbitMQ and compute; ${SETUP_CONCURRENCY} concurrent setups for ${SETUP_SECONDS} s; idle consoles: ${IDLE_SESSIONS['nova-novncproxy']} on Nova's, ${IDLE_SESSIONS.porthole} on Porthole; loopback, same run`,
      '',
      '| metric | nova-novncproxy | porthole | porthole / nova |',
      '|---|---|---|---|',
      `| console setups (token + RPC + VM greeting) | ${n.setups.toFixed(0)} /s | ${ph.setups.toFixed(0)} /s | ${(ph.setups / n.setups).toFixed(1)}× |`,
      `| memory per idle console (process tree PSS) | ${kib(n.idle)} | ${kib(ph.idle)} | ${memRatio} |`,
      '',
    ].join('\n'));
  } finally {
    for (const c of children) await stopChild(c);
    await rabbit.destroy();
    nova.destroy();
    vnc.close();
  }
}

await main();
