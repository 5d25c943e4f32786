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

/** A QEMU guest with VNC and a TCP serial console (SeaBIOS's serial console), resettable over QMP. */
export interface QemuSerialVm {
  readonly vncPort: number;
  readonly serialPort: number;
  /** `system_reset`: SeaBIOS starts again and offers its boot menu on the serial port for 60 s. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** One QMP command on a fresh connection to the monitor socket. */
async function qmpCommand(path: string, command: string): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = '';
    let sent = false;
    s.on('error', reject);
    s.on('data', (d) => {
      buf += d.toString();
      if (!sent && buf.includes('"QMP"')) {
        sent = true;
        s.write(`{"execute":"qmp_capabilities"}\n{"execute":${JSON.stringify(command)}}\n`);
      }
      if ((buf.match(/"return"|"error"/g) ?? []).length >= 2) {
        s.end();
        if (buf.includes('"error"')) reject(new Error(`QMP ${command}: ${buf}`));
        else resolve(buf);
      }
    });
  });
}

/**
 * QEMU as libvirt runs a `<serial type='tcp'>` guest: `-chardev socket,server=on,wait=off` on
 * loopback (one client at a time, output dropped while none), SeaBIOS's serial console via
 * `graphics=off`, its boot prompt held 60 s (ESC → "Select boot device"; then 1 → "No bootable device").
 */
export async function startQemuSerial(): Promise<QemuSerialVm> {
  const { rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { freePort } = await import('./net.js');
  const dir = runTempDir('qemu-serial');
  const qmpPath = join(dir, 'qmp.sock');
  const serialPort = await freePort();
  const vncPort = await freePort();
  if (vncPort < 5900) throw new Error(`free port ${vncPort} is below 5900; QEMU's -vnc takes a display number`);
  const child = spawnOwned('qemu-system-x86_64', ['-name', runName('serial'), '-display', 'none', '-nodefaults', '-vga', 'std',
    '-machine', 'pc,graphics=off', '-accel', 'tcg', '-m', '64', '-vnc', `127.0.0.1:${vncPort - 5900}`,
    '-boot', 'menu=on,splash-time=60000',
    '-chardev', `socket,id=serial0,host=127.0.0.1,port=${serialPort},server=on,wait=off`, '-serial', 'chardev:serial0',
    '-qmp', `unix:${qmpPath},server=on,wait=off`], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await qmpCommand(qmpPath, 'query-status').then(() => true, () => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error('QEMU (serial guest) did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { vncPort, serialPort, stop, reset: async () => { await qmpCommand(qmpPath, 'system_reset'); } };
}

/**
 * QEMU with a SPICE server on loopback (qxl VGA), with or without a password (QEMU's
 * password-secret); with `tlsDir` (ca-cert.pem, server-cert.pem, server-key.pem) also a tls-port
 * that alone serves the main channel (`tls-channel=main`).
 */
export async function startQemuSpice(password?: string, tlsDir?: string): Promise<{ port: number; tlsPort?: number; stop(): Promise<void> }> {
  const { freePort } = await import('./net.js');
  const { connect } = await import('node:net');
  const port = await freePort();
  const tlsPort = tlsDir === undefined ? undefined : await freePort();
  const tls = tlsDir === undefined ? '' : `,tls-port=${tlsPort},x509-dir=${tlsDir},tls-channel=main`;
  const auth = password === undefined ? ['-spice', `port=${port},addr=127.0.0.1,disable-ticketing=on${tls}`]
    : ['-object', `secret,id=spicepw,data=${password}`, '-spice', `port=${port},addr=127.0.0.1,password-secret=spicepw${tls}`];
  const child = spawnOwned('qemu-system-x86_64', ['-name', runName('spice'), '-display', 'none', '-nodefaults', '-vga', 'qxl', '-machine', 'pc',
    '-accel', 'tcg', '-m', '64', ...auth], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error('QEMU (SPICE) did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, ...(tlsPort === undefined ? {} : { tlsPort }), stop };
}
