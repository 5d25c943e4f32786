/** Real Redis and memcached servers on free loopback ports, started and stopped by the tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from './net.js';

export interface RunningService {
  readonly port: number;
  readonly address: string;
  stop(): Promise<void>;
  /** Start again on the same port (after stop). */
  start(): Promise<void>;
}

async function waitForPort(port: number, child: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port}`);
}

async function service(what: string, command: string, args: (port: number) => string[]): Promise<RunningService> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const c = spawn(command, args(port), { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr?.resume();
    child = c;
    await waitForPort(port, c, what);
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL'); // an outage, not a graceful stop
    await exited;
  };
  await start();
  return { port, address: `127.0.0.1:${port}`, start, stop };
}

export function startRedis(): Promise<RunningService> {
  return service('redis-server', 'redis-server', (port) =>
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no']);
}

export function startMemcached(): Promise<RunningService> {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0 ? ['-u', 'root'] : [];
  return service('memcached', 'memcached', (port) => [...asRoot, '-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '64']);
}
