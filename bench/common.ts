/** Pieces shared by the benchmarks: a WebSocket connection with a uniform interface, process helpers. */
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import WebSocket, { type ClientOptions } from 'ws';

export interface Conn {
  onData(fn: (d: Buffer) => void): void;
  send(d: Buffer): void;
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
        send: (d) => ws.send(d),
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

export /** CPU seconds of a process plus its reaped children (websockify's per-connection forks). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  return ((f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)) / 100; // utime stime cutime cstime, in USER_HZ (100)
}
