/**
 * Scale on one node (`npm run bench:scale`): many concurrent consoles through one real
 * `porthole serve` (memory token store, limits lifted, open-files limit 20,000 — two sockets per
 * console in the proxy). Each console is a lean WebSocket (bench/lean-client.ts) through the
 * proxy to a stand-in VNC server, which greets and then holds. The idle consoles' clients are a
 * process of their own (--holder) and their VM another: what is measured (setups, round trips,
 * floods) runs from this process against a second VM, so the harness holding thousands of sockets
 * does not slow the client that measures; a real node's consoles come from many browsers to many VMs.
 *
 * Reports: memory per idle console as PSS growth over the empty process at 1k, 4k and 8k
 * consoles (the slope), event-loop lag p99 with all idle and with 100 active (echo round trips
 * in a loop), setups/s with 8,000 open against the empty proxy, and 200 stalled readers against
 * flooding VMs: memory each, and the round-trip p99 of another console meanwhile. Lag comes from the
 * proxy's own /metrics (prom-client's event-loop monitor, reset at every scrape). Memory is read after
 * 3 s of quiet and a full GC of the proxy (through its loopback inspector, bench/common.ts settleGc);
 * the empty process is measured after the first empty-proxy setups round, so what a process pays
 * once is not counted per console (the cold figure is printed beside it). Each setups round (empty
 * before, with all open, empty again after the consoles closed: the machine's speed drifts) is
 * warmed until its rate is steady and then measured for 10 s (BENCH_SCALE_SETUPS_SECONDS).
 * Knobs: BENCH_SCALE_LEVELS, BENCH_PIN=0, BENCH_NODE_ARGS (extra node
 * flags for the proxy), BENCH_PROXY_STDOUT=1 (its log), BENCH_SCALE_CONSOLE (extra [console] lines,
 * `;`-separated). The loaded setups round is marked on stderr, to attach a profiler to the proxy.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForPort } from '../test/helpers/net.js';
import { BENCH_LIMITS, cpuSeconds, kernelSeconds, minorFaults, settleGc, stopChild, treePssBytes, type Conn } from './common.js';
import { consoleServer, GREETING, listen } from './console-server.js';
import { leanConn } from './lean-client.js';

/**
 * As in bench/relay.ts: the proxy has a CPU to itself (the last), this process and the stand-in VM
 * (which inherits it) the others, so the setups and lag rows are about the proxy rather than about
 * three busy processes sharing two cores. BENCH_PIN=0 turns it off.
 */
const CPUS = availableParallelism();
const PIN = process.env.BENCH_PIN !== '0' && CPUS >= 2;
const LEVELS = (process.env.BENCH_SCALE_LEVELS ?? '1000,4000,8000').split(',').map(Number);
const ACTIVE = 100;
const STALLED = 200;
/** Each setups round (empty, with all open): long enough to hold a full GC of the 8,000 consoles' heap and a heartbeat sweep in proportion, not all or nothing. */
const MEASURE_SECONDS = Number(process.env.BENCH_SCALE_SETUPS_SECONDS ?? 10);
const MiB = 1024 * 1024;

async function runTargets(): Promise<void> {
  const sockets = new Set<Socket>();
  const server = await listen((s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); consoleServer(s, 64 * 1024); });
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  process.once('SIGTERM', () => { for (const s of sockets) s.destroy(); server.close(() => process.exit(0)); });
}

/** A console that got its greeting; `after` sees what comes next. */
async function openConsole(url: string, origin: string, command?: string): Promise<{ c: Conn; next: (fn: (d: Buffer) => void) => void }> {
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
}

/**
 * The idle consoles' browsers, in a process of their own (`--holder URL ORIGIN`): each stdin line
 * is how many to hold; answered with a line once they are all open and greeted.
 */
async function runHolder(url: string, origin: string): Promise<void> {
  const held: Conn[] = [];
  process.once('SIGTERM', () => { for (const c of held) c.destroy(); process.exit(0); });
  let pending = '';
  for await (const chunk of process.stdin) {
    pending += String(chunk);
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const want = Number(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      while (held.length < want) {
        const batch = await Promise.all(Array.from({ length: Math.min(100, want - held.length) }, () => openConsole(url, origin)));
        for (const b of batch) held.push(b.c);
      }
      while (held.length > want) held.pop()?.destroy();
      process.stdout.write(`${held.length}\n`);
    }
  }
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
  if (PIN) execFileSync('taskset', ['-pc', `0-${CPUS - 2}`, String(process.pid)], { stdio: 'ignore' });
  const dir = await mkdtemp(join(tmpdir(), 'porthole-scale-'));
  // Two stand-in VMs: one behind the idle consoles, one for everything measured (setups, round
  // trips, floods), as the thousands of consoles of a real node are of many VMs on many hosts.
  const spawnTargets = () => spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--targets'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const portOf = (child: ReturnType<typeof spawnTargets>) => new Promise<number>((resolve) => child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const targets = spawnTargets();
  const idleTargets = spawnTargets();
  const targetPort = await portOf(targets);
  const idleTargetPort = await portOf(idleTargets);
  const proxyPort = await freePort();
  const apiPort = await freePort();
  const inspectPort = await freePort();
  await writeFile(join(dir, 'inventory.ini'), `[console]\nhost = 127.0.0.1\nport = ${targetPort}\n[idle]\nhost = 127.0.0.1\nport = ${idleTargetPort}\n`);
  await writeFile(join(dir, 'porthole.conf'), `[DEFAULT]\nstate_path = ${dir}/state\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\n` +
    `novncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n[cache]\nbackend = memory\n[api]\nport = ${apiPort}\n` +
    `[static]\ninventory_file = ${dir}/inventory.ini\n[console]\nshutdown_grace_period = 0\n${BENCH_LIMITS}${(process.env.BENCH_SCALE_CONSOLE ?? '').split(';').join('\n')}\n`);
  const proxy = spawn('prlimit', ['--nofile=20000:20000', ...(PIN ? ['taskset', '-c', String(CPUS - 1)] : []), process.execPath, `--inspect=127.0.0.1:${inspectPort}`, ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), 'bin/porthole.js', 'serve', '--config-file', join(dir, 'porthole.conf')], { stdio: ['ignore', process.env.BENCH_PROXY_STDOUT ? 'inherit' : 'ignore', 'ignore'] });
  let holder: ReturnType<typeof spawn> | undefined;
  // Killed (Ctrl-C, timeout): the finally below does not run, so take the children down here,
  // or a proxy and its VMs keep running on loopback ports.
  const onSignal = () => {
    for (const child of [proxy, targets, idleTargets, holder]) child?.kill('SIGKILL');
    void rm(dir, { recursive: true, force: true }).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    await waitForPort(apiPort, proxy, 'porthole');
    const pid = Number((await readFile(`/proc/${proxy.pid}/task/${proxy.pid}/children`, 'utf8').catch(() => '')).trim()) || (proxy.pid as number);
    const key = (await readFile(join(dir, 'state', 'api-key'), 'utf8')).trim();
    const mint = async (instance: string) => {
      const minted = await fetch(`http://127.0.0.1:${apiPort}/v1/consoles`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ instance }) });
      return `ws://127.0.0.1:${proxyPort}/websockify?token=${((await minted.json()) as { token: string }).token}`;
    };
    const url = await mint('console');
    const origin = `http://127.0.0.1:${proxyPort}`;
    // The idle consoles' browsers live in a process of their own, so holding thousands of sockets
    // (and their heap) does not slow the client that measures setups and round trips.
    const holding = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--holder', await mint('idle'), origin], { stdio: ['pipe', 'pipe', 'inherit'] });
    holder = holding;
    const hold = async (n: number) => {
      const held = new Promise<void>((resolve, reject) => {
        holding.stdout?.once('data', () => resolve());
        holding.once('exit', () => reject(new Error('the holder process exited')));
      });
      holding.stdin?.write(`${n}\n`);
      await held;
    };
    await hold(0); // started (and compiled) before anything is measured
    const lagP99 = async () => {
      const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
      return Number(/^nodejs_eventloop_lag_p99_seconds (\S+)/m.exec(text)?.[1] ?? NaN) * 1000;
    };
    const open = (command?: string) => openConsole(url, origin, command);
    /** Setups/s, 8 at a time, and how busy each process was meanwhile (which one sets the pace). */
    const setups = async (seconds: number) => {
      const deadline = Date.now() + seconds * 1000;
      let n = 0;
      const start = Date.now();
      const idleSide = async () => (await cpuSeconds(holding.pid as number)) + (await cpuSeconds(idleTargets.pid as number));
      const kernelBefore = await kernelSeconds(pid);
      const faultsBefore = await minorFaults(pid);
      const cpuBefore = [await cpuSeconds(pid), await cpuSeconds(targets.pid as number), process.cpuUsage(), await idleSide()] as const;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (Date.now() < deadline) {
          const { c } = await open();
          c.destroy();
          n++;
        }
      }));
      const elapsed = (Date.now() - start) / 1000;
      const own = process.cpuUsage(cpuBefore[2]);
      const busy = [(await cpuSeconds(pid)) - cpuBefore[0], (await cpuSeconds(targets.pid as number)) - cpuBefore[1], (own.user + own.system) / 1e6, (await idleSide()) - cpuBefore[3]]
        .map((cpu) => `${(cpu / elapsed * 100).toFixed(0)} %`).join(' / ') + ` (proxy in the kernel ${(((await kernelSeconds(pid)) - kernelBefore) / elapsed * 100).toFixed(0)} %, ${(((await minorFaults(pid)) - faultsBefore) / n).toFixed(1)} page faults per setup)`;
      return { rate: n / elapsed, busy };
    };
    /**
     * Setups until the rate is steady (two 1 s rounds within 5 %, at most 10 s), so the round that
     * follows measures the proxy, not V8 still compiling it. Says how long that took.
     */
    const warmUp = async () => {
      let previous = (await setups(1)).rate;
      for (let i = 2; i <= 10; i++) {
        const { rate } = await setups(1);
        if (Math.abs(rate - previous) <= 0.05 * previous) return i;
        previous = rate;
      }
      return 10;
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
    await settleGc(inspectPort);
    const cold = await treePssBytes(pid);
    const emptyWarmUp = await warmUp(); // the first setups compile the console path; not a fair empty-proxy rate
    const emptySetups = await setups(MEASURE_SECONDS);
    await sleep(2000);
    // The empty process is the one that has served consoles and holds none: the setups rounds above
    // compiled the console path, loaded what loads on first use and grew V8's young generation to
    // its working size. Those are paid once per process, not per console; measured from the cold
    // process they were divided among the first level's consoles (both figures are printed).
    const emptyHeap = (await settleGc(inspectPort)).heapUsedBytes;
    const empty = await treePssBytes(pid);
    const lines: string[] = [`| empty process: before any console / after the ${emptySetups.rate.toFixed(0)}/s setups round, none open | ${(cold / MiB).toFixed(1)} / ${(empty / MiB).toFixed(1)} MiB PSS | ${((empty - cold) / MiB).toFixed(1)} MiB paid once (code, first-use modules, young generation) | |`];
    let previous = { n: 0, pss: empty };
    for (const level of LEVELS) {
      await hold(level);
      await sleep(3000);
      const heap = (await settleGc(inspectPort)).heapUsedBytes;
      const pss = await treePssBytes(pid);
      lines.push(`| ${level} idle consoles | ${((pss - empty) / MiB).toFixed(1)} MiB over the empty process | ${((pss - empty) / level / 1024).toFixed(1)} KiB per console (JS heap ${((heap - emptyHeap) / level / 1024).toFixed(1)}; from the cold process ${((pss - cold) / level / 1024).toFixed(1)}) | ${((pss - previous.pss) / (level - previous.n) / 1024).toFixed(1)} KiB per console added since ${previous.n} |`);
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
    // Warmed the same way as the empty round: the phases since (opening the idle consoles, the
    // full GCs of the memory readings, the echo loop) leave the console path partly deoptimised
    // (--trace-deopt: "wrong map" in the stream, socket and logger code, then ~90 recompilations
    // inside an unwarmed 3 s round); a node that sets up consoles all day runs it optimised.
    const loadedWarmUp = await warmUp();
    process.stderr.write(`setups with ${top} open: start\n`);
    const loadedSetups = await setups(MEASURE_SECONDS);
    process.stderr.write(`setups with ${top} open: end\n`);
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
    // The empty rate once more, with the idle consoles closed: the machine's speed drifts over a
    // run (a VM's neighbours), so the loaded rate is compared with both empty rounds around it.
    await hold(0);
    await sleep(3000);
    await settleGc(inspectPort);
    const emptyAgainWarmUp = await warmUp();
    const emptyAgain = await setups(MEASURE_SECONDS);
    const emptyMean = (emptySetups.rate + emptyAgain.rate) / 2;
    lines.push(
      `| event-loop delay p99, ${top} idle | ${idleLag.toFixed(1)} ms | ${(idleLag - 10).toFixed(1)} ms beyond the monitor's 10 ms interval | |`,
      `| event-loop delay p99, ${top} idle + ${ACTIVE} active (echo round trips in a loop) | ${activeLag.toFixed(1)} ms | ${(activeLag - 10).toFixed(1)} ms beyond the 10 ms interval | |`,
      `| setups/s (8 at a time): empty proxy before and after / with ${top} open | ${emptySetups.rate.toFixed(0)} and ${emptyAgain.rate.toFixed(0)} / ${loadedSetups.rate.toFixed(0)} | ${(loadedSetups.rate / emptyMean * 100).toFixed(0)} % of their mean (${(loadedSetups.rate / emptySetups.rate * 100).toFixed(0)} % of the first) | CPU busy, proxy / VM / clients / idle consoles' side: ${emptySetups.busy} empty, ${loadedSetups.busy} with ${top} open; warmed ${emptyWarmUp}, ${emptyAgainWarmUp} / ${loadedWarmUp} s until steady |`,
      `| ${STALLED} stalled readers against flooding VMs (3 s) | ${((stalledPss - beforeStalled) / STALLED / 1024).toFixed(0)} KiB each | another console's RTT p99 ${idleRtt.toFixed(0)} µs before, ${stalledRtt.toFixed(0)} µs during | |`,
    );
    process.stdout.write(`Porthole scale benchmark — one \`porthole serve\` (memory store, open-files limit 20000${PIN ? `, pinned to CPU ${CPUS - 1}, clients and VM on the others` : ', unpinned'}), lean WebSocket clients, stand-in VNC server in its own process; loopback\n\n| scenario | figure | | |\n|---|---|---|---|\n${lines.join('\n')}\n`);
  } finally {
    if (holder !== undefined) await stopChild(holder);
    await stopChild(proxy);
    await stopChild(targets);
    await stopChild(idleTargets);
    await rm(dir, { recursive: true, force: true });
  }
}

const holderAt = process.argv.indexOf('--holder');
if (process.argv.includes('--targets')) await runTargets();
else if (holderAt > 0) await runHolder(process.argv[holderAt + 1] as string, process.argv[holderAt + 2] as string);
else await main();
