/** Real QEMU VNC servers for tests (diskless TCG guest, VNC on loopback only). */
import { pino } from 'pino';
import { startDemoVm, type DemoVm } from '../../src/demo/qemu-demo.js';
import { runName, runTempDir, spawnOwned } from './run.js';

export function startQemuVnc(): Promise<DemoVm> {
  return startDemoVm(pino({ level: 'silent' }), process.env.PATH ?? '');
}

/**
 * QEMU whose VNC server requires a password (security type 2 only), set over QMP as
 * `change-vnc-password` — QEMU refuses every client until a password is set.
 */
export function startQemuVncWithPassword(password: string): Promise<{ port: number; stop(): Promise<void> }> {
  return startQemuVncSecured({ password });
}

export interface QemuVncSecurity {
  /** VNC password (QEMU password=on; set over QMP). */
  readonly password?: string;
  /**
   * VeNCrypt with X.509 (QEMU tls-creds-x509): `dir` holds ca-cert.pem, server-cert.pem and
   * server-key.pem; verifyPeer makes QEMU demand a client certificate from that CA (mutual TLS).
   */
  readonly tls?: { readonly dir: string; readonly verifyPeer: boolean };
}

/** QEMU with a VNC server in one of its security modes: password, VeNCrypt X509None, X509Vnc, with or without mutual TLS. */
export async function startQemuVncSecured(security: QemuVncSecurity): Promise<{ port: number; stop(): Promise<void> }> {
  const { rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { connect, createServer } = await import('node:net');
  const dir = runTempDir('qemu');
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
  const { password, tls } = security;
  const vnc = [`127.0.0.1:${display}`, ...(password === undefined ? [] : ['password=on']), ...(tls ? ['tls-creds=tls0'] : [])].join(',');
  const tlsArgs = tls ? ['-object', `tls-creds-x509,id=tls0,dir=${tls.dir},endpoint=server,verify-peer=${tls.verifyPeer ? 'on' : 'off'}`] : [];
  const child = spawnOwned('qemu-system-x86_64', ['-name', runName('secured'), '-display', 'none', '-nodefaults', '-vga', 'std', '-machine', 'pc', '-accel', 'tcg', '-m', '64',
    ...tlsArgs, '-vnc', vnc, '-qmp', `unix:${qmpPath},server=on,wait=off`], { stdio: 'ignore' });
  const commands = ['{"execute":"qmp_capabilities"}',
    ...(password === undefined ? [] : ['{"execute":"change-vnc-password","arguments":{"password":' + JSON.stringify(password) + '}}'])];
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
            s.write(commands.join('\n') + '\n');
          }
          if ((buf.match(/"return"/g) ?? []).length >= commands.length) { s.end(); resolve(buf); }
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
