/**
 * `porthole serve --demo`: a throwaway diskless QEMU VM (TCG, 64 MiB, no NIC) whose VNC server and
 * TCP serial console listen on loopback only, registered as instance `demo`, so a new user sees a
 * real console with nothing else set up. SeaBIOS shows its boot prompt on the screen and, with
 * `graphics=off` (SeaBIOS's serial console, no extra package), on the serial port too: ESC there
 * within the 60 s prompt opens "Select boot device"; then "No bootable device" and a reboot.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { delimiter, join } from 'node:path';
import type { Logger } from 'pino';
import type { InventoryEntry } from '../compute/inventory.js';
import { PortholeError } from '../errors.js';

export const DEMO_INSTANCE = 'demo';
const VNC_BASE_PORT = 5900;
/** Nova's `[serial_console] port_range` starts here. */
const SERIAL_BASE_PORT = 10000;
/** How long SeaBIOS's boot prompt waits for ESC (QEMU caps splash-time at 65535 ms). */
const BOOT_PROMPT_MS = 60_000;

export async function findExecutable(name: string, pathEnv: string): Promise<string | undefined> {
  for (const dir of pathEnv.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      continue; // not in this PATH entry
    }
  }
  return undefined;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`qemu exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`qemu's VNC server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export interface DemoVm {
  readonly entry: InventoryEntry;
  stop(): Promise<void>;
}

/** @throws PortholeError PH_ERR_DEMO_UNAVAILABLE when QEMU is missing or does not start. */
export async function startDemoVm(logger: Logger, pathEnv: string): Promise<DemoVm> {
  const qemu = await findExecutable('qemu-system-x86_64', pathEnv);
  if (qemu === undefined) {
    throw new PortholeError('PH_ERR_DEMO_UNAVAILABLE',
      '--demo needs QEMU: qemu-system-x86_64 is not on PATH. Install it with `apt-get install qemu-system-x86`, or run without --demo.');
  }
  let display = 50;
  while (display < 100 && !(await portFree(VNC_BASE_PORT + display))) display++;
  if (display === 100) throw new PortholeError('PH_ERR_DEMO_UNAVAILABLE', 'no free VNC port in 127.0.0.1:5950-5999 for the demo VM');
  const port = VNC_BASE_PORT + display;
  let serialPort = SERIAL_BASE_PORT;
  while (serialPort < SERIAL_BASE_PORT + 100 && !(await portFree(serialPort))) serialPort++;
  if (serialPort === SERIAL_BASE_PORT + 100) throw new PortholeError('PH_ERR_DEMO_UNAVAILABLE', `no free serial port in 127.0.0.1:${SERIAL_BASE_PORT}-${SERIAL_BASE_PORT + 99} for the demo VM`);
  const child = spawn(qemu, [
    '-name', 'porthole-demo', '-display', 'none', '-nodefaults', '-vga', 'std', '-machine', 'pc,graphics=off', '-accel', 'tcg',
    '-m', '64', '-vnc', `127.0.0.1:${display}`, '-boot', `menu=on,splash-time=${BOOT_PROMPT_MS}`,
    // QEMU's TCP serial server (as libvirt's <serial type='tcp'> makes): one client at a time, output dropped while none.
    '-chardev', `socket,id=serial0,host=127.0.0.1,port=${serialPort},server=on,wait=off`, '-serial', 'chardev:serial0',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
  try {
    await waitForPort(port, child, 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new PortholeError('PH_ERR_DEMO_UNAVAILABLE', `demo VM did not start: ${(err as Error).message} ${stderr.trim()}`, { cause: err });
  }
  logger.info({ pid: child.pid, vnc: `127.0.0.1:${port}`, serial: `127.0.0.1:${serialPort}` }, 'demo VM started');
  return {
    entry: { name: DEMO_INSTANCE, host: '127.0.0.1', port, serialPort, protocol: 'vnc' },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
