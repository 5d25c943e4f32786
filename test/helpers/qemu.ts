/** Real QEMU VNC servers for tests (diskless TCG guest, VNC on loopback only). */
import { pino } from 'pino';
import { startDemoVm, type DemoVm } from '../../src/demo/qemu-demo.js';

export function startQemuVnc(): Promise<DemoVm> {
  return startDemoVm(pino({ level: 'silent' }), process.env.PATH ?? '');
}

/**
 * QEMU whose VNC server requires a password (security type 2 only), set over QMP as
 * `change-vnc-password` — QEMU refuses every client until a password is set.
 */
export async function startQemuVncWithPassword(password: string): Promise<{ port: number; stop(): Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { connect, createServer } = await import('node:net');
  const dir = mkdtempSync(join(tmpdir(), 'porthole-qemu-pw-'));
  const qmpPath = join(dir, 'qmp.sock');
  let display = 40;
  for (; display < 50; display++) {
    const free = await new Promise<boolean>((r) => {
      const srv = createServer();
      srv.once('error', () => r(false));
      srv.listen(5900 + display, '127.0.0.1', () => srv.close(() => r(true)));
    });
    if (free) break;
  }
  const child = spawn('qemu-system-x86_64', ['-name', 'porthole-test-pw', '-display', 'none', '-nodefaults', '-vga', 'std', '-machine', 'pc', '-accel', 'tcg', '-m', '64',
    '-vnc', `127.0.0.1:${display},password=on`, '-qmp', `unix:${qmpPath},server=on,wait=off`], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const reply = await new Promise<string | undefined>((resolve) => {
        const s = connect(qmpPath);
        let buf = '';
        s.on('error', () => resolve(undefined));
        s.on('data', (d) => {
          buf += d.toString();
          if (buf.includes('"QMP"') && !buf.includes('qmp_capabilities_sent')) {
            buf += 'qmp_capabilities_sent';
            s.write('{"execute":"qmp_capabilities"}\n{"execute":"change-vnc-password","arguments":{"password":' + JSON.stringify(password) + '}}\n');
          }
          if ((buf.match(/"return"/g) ?? []).length >= 2) { s.end(); resolve(buf); }
          if (buf.includes('"error"')) { s.end(); resolve(buf); }
        });
      });
      if (reply !== undefined) {
        if (reply.includes('"error"')) throw new Error(`QMP refused: ${reply}`);
        break;
      }
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('QEMU QMP socket did not come up');
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { port: 5900 + display, stop };
}
