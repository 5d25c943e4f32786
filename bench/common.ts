/** Pieces shared by the benchmarks: a WebSocket connection with a uniform interface, process helpers. */
import type { ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { readdir, readFile } from 'node:fs/promises';
import WebSocket, { type ClientOptions } from 'ws';

/**
 * `[console]` lines for every benchmarked `porthole serve`: they measure the relay and the stores,
 * not the session limits (the default 10 consoles per instance would refuse the idle-session run).
 */
export const BENCH_LIMITS = 'max_sessions = 0\nmax_sessions_per_instance = 0\nmax_failed_tokens = 0\n';

export interface Conn {
  /** `fn` gets each chunk received; it is valid only during the call (clients reuse their read buffer). */
  onData(fn: (d: Buffer) => void): void;
  /** `written`: called once the bytes were handed to the kernel (for backpressure without polling). */
  send(d: Buffer, written?: () => void): void;
  pauseReading(): void;
  /** Bytes queued in this process, not yet handed to the kernel. */
  buffered(): number;
  done: Promise<void>;
  destroy(): void;
}

export function wsConn(url: string, origin: string, tls: Pick<ClientOptions, 'ca'> = {}): Promise<Conn> {
  const ws = new WebSocket(url, ['binary'], { origin, perMessageDeflate: false, maxPayload: 0, ...tls });
  // A first message can arrive in the same read as the upgrade answer, before the caller had a
  // chance to subscribe: keep it until onData is called.
  let early: Buffer[] = [];
  let sink: ((d: Buffer) => void) | undefined;
  ws.on('message', (d: Buffer) => { if (sink) sink(d); else early.push(d); });
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      ws.on('error', () => ws.terminate());
      resolve({
        onData: (fn) => {
          sink = fn;
          for (const d of early) fn(d);
          early = [];
        },
        send: (d, written) => ws.send(d, written === undefined ? undefined : () => written()),
        pauseReading: () => ws.pause(),
        buffered: () => ws.bufferedAmount,
        done: new Promise<void>((r) => ws.once('close', () => r())),
        destroy: () => ws.terminate(),
      });
    });
  });
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/** /proc/PID/stat's fields after the command name: [11] utime, [12] stime, [13] cutime, [14] cstime, in USER_HZ (100). */
async function statFields(pid: number): Promise<number[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
}

export /** CPU seconds of a process plus its reaped children (websockify's per-connection forks). */
async function cpuSeconds(pid: number): Promise<number> {
  const f = await statFields(pid);
  return ((f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)) / 100;
}

/** System (kernel) CPU seconds of a process: syscalls, the TCP stack, epoll. */
export async function kernelSeconds(pid: number): Promise<number> {
  return ((await statFields(pid))[12] ?? 0) / 100;
}

/** Minor page faults of a process so far (pages the kernel mapped in, most of them zeroed first). */
export async function minorFaults(pid: number): Promise<number> {
  return (await statFields(pid))[7] ?? 0;
}

const MiB = 1024 * 1024;

/**
 * CPU seconds of a process and all its descendants, live ones included (websockify's
 * per-connection children are measured while they run, not only once reaped), plus what reaped
 * children left in the counters. Linux /proc.
 */
export async function treeCpuSeconds(pid: number): Promise<number> {
  const stats = new Map<number, { ppid: number; fields: number[] }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (stat === '') continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    stats.set(Number(entry), { ppid: f[1] ?? 0, fields: f });
  }
  let ticks = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    const st = stats.get(p);
    if (st === undefined) continue;
    ticks += (st.fields[11] ?? 0) + (st.fields[12] ?? 0) + (st.fields[13] ?? 0) + (st.fields[14] ?? 0);
    for (const [child, s2] of stats) if (s2.ppid === p) stack.push(child);
  }
  return ticks / 100; // USER_HZ
}

/**
 * Best-of-`rounds` MiB/s from a source that streams `bulkBytes` and closes. `onShort` hears of
 * bytes that never arrived (data a proxy dropped when the VM side closed).
 */
export async function downMiBps(open: () => Promise<Conn>, bulkBytes: number, rounds: number, onShort?: (missing: number) => void): Promise<number> {
  let best = 0;
  for (let i = 0; i < rounds; i++) {
    const c = await open();
    let got = 0;
    const start = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      c.onData((d) => { got += d.length; if (got >= bulkBytes) resolve(); });
      void c.done.then(() => resolve());
    });
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    c.destroy();
    if (got < bulkBytes) onShort?.(bulkBytes - got);
    best = Math.max(best, got / MiB / secs);
  }
  return best;
}

/** Best-of-`rounds` MiB/s into a sink that answers one byte once `bulkBytes` arrived. */
export async function upMiBps(open: () => Promise<Conn>, bulkBytes: number, rounds: number): Promise<number> {
  let best = 0;
  const chunk = Buffer.alloc(256 * 1024, 0x41);
  for (let i = 0; i < rounds; i++) {
    const c = await open();
    const start = process.hrtime.bigint();
    const acked = new Promise<void>((resolve) => c.onData(() => resolve()));
    // Stay ahead of the relay without queueing the whole transfer in this process.
    let sent = 0;
    while (sent < bulkBytes) {
      if (c.buffered() > 4 * MiB) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      c.send(chunk);
      sent += chunk.length;
    }
    await acked;
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    c.destroy();
    best = Math.max(best, bulkBytes / MiB / secs);
  }
  return best;
}

/** Connections per second that reach their first byte, `concurrency` at a time for `seconds`. */
export async function setupsPerSecond(open: () => Promise<Conn>, seconds: number, concurrency: number): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const start = Date.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < deadline) {
      const c = await open();
      await new Promise<void>((resolve) => { c.onData(() => resolve()); void c.done.then(() => resolve()); });
      c.destroy();
      done++;
    }
  }));
  return done / ((Date.now() - start) / 1000);
}

/** Target side: write `bytes` of `chunk`-sized writes as fast as the stream takes them, then end. */
export function streamBytes(s: Duplex, bytes: number, chunk: Buffer): void {
  let left = bytes;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { s.once('drain', pump); return; }
    }
    s.end();
  };
  pump();
}

/** Target side: count what arrives; answer one byte once `bytes` arrived. */
export function sinkBytes(s: Duplex, bytes: number, already = 0): void {
  let got = already;
  s.on('data', (d: Buffer) => { got += d.length; if (got >= bytes) s.end(Buffer.from([1])); });
}

/**
 * Memory of a process and all its descendants (websockify forks one process per connection), as
 * PSS: pages shared between forked children are split between them instead of counted per child.
 */
export async function treePssBytes(pid: number): Promise<number> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid)?.push(Number(entry));
  }
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    const rollup = await readFile(`/proc/${p}/smaps_rollup`, 'utf8').catch(() => '');
    total += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) * 1024;
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

/**
 * Run full garbage collections in a Node process started with `--inspect=127.0.0.1:<port>`
 * (Chrome DevTools protocol, HeapProfiler.collectGarbage), so memory is measured with GC settled
 * rather than with whatever garbage the last allocations left. Loopback only.
 */
export async function settleGc(inspectPort: number, times = 3): Promise<{ heapUsedBytes: number }> {
  const list = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const url = list[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`no inspector target on port ${inspectPort}`);
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  const call = (id: number, method: string) => new Promise<Record<string, unknown>>((resolve) => {
    ws.on('message', (d: Buffer) => {
      const answer = JSON.parse(d.toString()) as { id?: number; result?: Record<string, unknown> };
      if (answer.id === id) resolve(answer.result ?? {});
    });
    ws.send(JSON.stringify({ id, method }));
  });
  try {
    for (let id = 1; id <= times; id++) await call(id, 'HeapProfiler.collectGarbage');
    const usage = await call(times + 1, 'Runtime.getHeapUsage');
    await new Promise((r) => setTimeout(r, 200)); // let freed pages be returned
    return { heapUsedBytes: Number(usage.usedSize ?? NaN) };
  } finally {
    ws.close();
  }
}
