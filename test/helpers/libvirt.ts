/**
 * A libvirtd of the test suite's own, and throwaway diskless TCG domains with VNC on loopback.
 *
 * Why an isolated daemon rather than checking whatever libvirtd runs: a libvirtd the suite did not
 * start may hold an operator's domains and may have been started without the /dev/kvm fix below,
 * and the suite must neither rely on it nor disturb it. So each test process runs its own
 * system-mode libvirtd in a private mount namespace, with its own /etc/libvirt, /run/libvirt,
 * /var/lib/libvirt and /var/log/libvirt bind-mounted from a temp dir of the run, and talks to it
 * through its socket (`qemu+unix:///system?socket=…`). A session-mode daemon was the other choice,
 * but libvirtd run by root is always the system driver.
 *
 * Why it is fast on a fresh machine: these machines have a /dev/kvm node but no usable KVM. libvirt
 * re-probes QEMU's capabilities (20–50 s) whenever /dev/kvm's ctime changes; a /dev/null bind over
 * it is not enough (its ctime changes on every write). A regular file (mode 000) over /dev/kvm
 * keeps the ctime still, and `namespaces = [ ]` in qemu.conf stops QEMU's per-domain /dev set-up,
 * which cannot re-create a bind-mounted file. QEMU must keep its unprivileged user (libvirt-qemu):
 * libvirt decides "KVM usable" by whether that user may open /dev/kvm, and with root (which may
 * open a mode-000 file) it expects KVM, finds none in the probed capabilities and re-probes on
 * every define again. Measured: define 0.02 s, start 0.3 s. The
 * capabilities cache lives in /var/cache/porthole-test/libvirt across runs (the first run on a
 * machine probes once, ~15 s); libvirt itself invalidates it when QEMU changes.
 *
 * Cleanup: the daemon dies with the test process (parent-death signal); its domains are destroyed
 * by `TestDomains.cleanup()`; a killed run's QEMU guests carry the run's marker in `-name guest=…`
 * and are killed by the next run's sweep (helpers/run.ts).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseDomainXml } from '../../src/compute/domain-xml.js';
import { runName, runTempDir, spawnOwned, sweepLeftovers } from './run.js';

const run = promisify(execFile);

/** Persistent across runs: QEMU capabilities only (libvirt re-validates them itself). */
const CAPABILITIES_CACHE = '/var/cache/porthole-test/libvirt';
/** A define slower than this means QEMU is being re-probed: the fix above did not take. */
const SLOW_DEFINE_MS = 2000;

const QEMU_CONF = `# Written by the Porthole test suite for its own libvirtd.
namespaces = [ ]
stdio_handler = "file"
cgroup_controllers = [ ]
security_driver = "none"
`;

export interface TestLibvirt {
  /** URI for virsh and for `[libvirt] connection_uri`. */
  readonly uri: string;
  /** `[libvirt]` lines that point a Porthole config at this daemon. */
  readonly ini: string;
  virsh(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

function answers(uri: string): Promise<boolean> {
  return run('virsh', ['-c', uri, 'uri'], { timeout: 10_000 }).then(() => true, () => false);
}

/** Start this test process's own libvirtd (see the file comment) and wait until it answers. */
export async function startTestLibvirt(): Promise<TestLibvirt> {
  sweepLeftovers();
  const root = runTempDir('libvirt');
  const dirs = { etc: join(root, 'etc'), run: join(root, 'run'), lib: join(root, 'lib'), log: join(root, 'log') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  mkdirSync(CAPABILITIES_CACHE, { recursive: true });
  writeFileSync(join(dirs.etc, 'qemu.conf'), QEMU_CONF);
  const conf = join(root, 'libvirtd.conf');
  writeFileSync(conf, `log_outputs = "3:file:${dirs.log}/libvirtd.log"\n`);
  const nokvm = join(root, 'nokvm');
  writeFileSync(nokvm, '', { mode: 0o000 });

  // Bind targets must exist in the host namespace; these are libvirt's standard, empty-by-default dirs.
  const binds: Array<[string, string]> = [
    [dirs.etc, '/etc/libvirt'], [dirs.run, '/run/libvirt'], [dirs.lib, '/var/lib/libvirt'],
    [dirs.log, '/var/log/libvirt'], [CAPABILITIES_CACHE, '/var/cache/libvirt'],
  ];
  for (const [, target] of binds) mkdirSync(target, { recursive: true });
  const mounts = binds.map(([from, to]) => `mount --bind '${from}' '${to}'`);
  if (existsSync('/dev/kvm')) mounts.push(`mount --bind '${nokvm}' /dev/kvm`);
  const daemon: ChildProcess = spawnOwned('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
    `${mounts.join(' && ')} && exec libvirtd -f '${conf}' -p '${root}/libvirtd.pid'`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  daemon.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });

  const uri = `qemu+unix:///system?socket=${dirs.run}/libvirt-sock`;
  const virsh = async (...args: string[]) => (await run('virsh', ['-q', '-c', uri, ...args], { timeout: 30_000 })).stdout;
  const stop = async () => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      const exited = new Promise((r) => daemon.once('exit', r));
      daemon.kill('SIGTERM');
      await exited;
    }
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await waitUntilUsable(uri, virsh, daemon, () => stderr, root, dirs.log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { uri, ini: `[libvirt]\nconnection_uri = ${uri}\n`, virsh, stop };
}

/** Wait until the daemon answers, then prove that a define is fast (the failure this set-up prevents). */
async function waitUntilUsable(uri: string, virsh: TestLibvirt['virsh'], daemon: ChildProcess, stderr: () => string, root: string, logDir: string): Promise<void> {
  const deadline = Date.now() + 90_000; // first start on a machine probes QEMU (~15 s on 2 cores)
  while (!(await answers(uri))) {
    if (daemon.exitCode !== null) throw new Error(`the test libvirtd exited with ${daemon.exitCode}: ${stderr().trim()}`);
    if (Date.now() > deadline) throw new Error(`the test libvirtd did not answer within 90 s; see ${logDir}/libvirtd.log`);
    await new Promise((r) => setTimeout(r, 100));
  }

  // Fail fast, with the reason, instead of timing out minutes later if defines re-probe QEMU. The
  // first define on a cold capabilities cache probes QEMU once (~15–20 s): time the second.
  const probe = runName('probe');
  await writeFile(join(root, 'probe.xml'), domainXml(probe));
  let defineMs = 0;
  for (let i = 0; i < 2; i++) {
    const t0 = Date.now();
    await virsh('define', join(root, 'probe.xml'));
    defineMs = Date.now() - t0;
    await virsh('undefine', probe);
  }
  if (defineMs > SLOW_DEFINE_MS) {
    throw new Error(`virsh define took ${defineMs} ms on the test libvirtd (expected < ${SLOW_DEFINE_MS} ms): libvirt is re-probing QEMU ` +
      `on every define, so the libvirt tests would time out. Check that /dev/kvm is masked by a regular file in its mount namespace ` +
      `(see test/helpers/libvirt.ts) and look at ${logDir}/libvirtd.log.`);
  }
}

/** Extra XML for a test domain: inside `<os>` (SeaBIOS's serial console) and `<devices>` (serial ports). */
export interface DomainExtras {
  readonly os?: string;
  readonly devices?: string;
}

export function domainXml(name: string, listen = '127.0.0.1', graphicsAttrs = '', extras: DomainExtras = {}): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/>${extras.os ?? ''}</os>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <graphics type='vnc' autoport='yes' listen='${listen}' ${graphicsAttrs}><listen type='address' address='${listen}'/></graphics>
    <video><model type='vga' vram='16384' heads='1'/></video>
    <memballoon model='none'/>${extras.devices ?? ''}
  </devices>
</domain>`;
}

/** Domains created by one test file, named `porthole-t-<pid>-<short>`, all removed by cleanup(). */
export class TestDomains {
  readonly #names = new Set<string>();
  readonly #libvirt: TestLibvirt;
  readonly #dir = runTempDir('domains');

  constructor(libvirt: TestLibvirt) {
    this.#libvirt = libvirt;
  }

  /** The run-unique domain name for a short name. */
  name(short: string): string {
    return runName(short);
  }

  async define(short: string, listen = '127.0.0.1', graphicsAttrs = '', extras: DomainExtras = {}): Promise<string> {
    const name = this.name(short);
    const file = join(this.#dir, `${name}.xml`);
    await writeFile(file, domainXml(name, listen, graphicsAttrs, extras));
    await this.#libvirt.virsh('define', file);
    this.#names.add(name);
    return (await this.#libvirt.virsh('domuuid', name)).trim();
  }

  async create(short: string, listen = '127.0.0.1', graphicsAttrs = '', extras: DomainExtras = {}): Promise<{ name: string; uuid: string; port: number }> {
    const uuid = await this.define(short, listen, graphicsAttrs, extras);
    const name = this.name(short);
    await this.#libvirt.virsh('start', name);
    return { name, uuid, port: await this.port(short) };
  }

  async port(short: string): Promise<number> {
    return parseDomainXml(await this.#libvirt.virsh('dumpxml', this.name(short))).graphics.find((g) => g.type === 'vnc')?.port ?? 0;
  }

  /** virsh with a short domain name as the second argument: `domains.virsh('destroy', 'a')`. */
  virsh(command: string, short: string, ...rest: string[]): Promise<string> {
    return this.#libvirt.virsh(command, this.name(short), ...rest);
  }

  async cleanup(): Promise<void> {
    // In parallel: each destroy waits ~1.5 s for its QEMU to exit.
    await Promise.all([...this.#names].map(async (name) => {
      await this.#libvirt.virsh('destroy', name).catch(() => undefined); // most are running
      await this.#libvirt.virsh('undefine', name).catch(() => undefined); // already gone if define failed
    }));
    const { rm } = await import('node:fs/promises');
    await rm(this.#dir, { recursive: true, force: true });
  }
}
