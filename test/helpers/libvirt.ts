/**
 * A real libvirtd for tests (monolithic daemon, no systemd), and throwaway diskless TCG domains
 * with VNC on loopback. Starts libvirtd only if none answers, and stops only what it started.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { parseDomainXml } from '../../src/compute/domain-xml.js';

const run = promisify(execFile);
export const LIBVIRT_URI = 'qemu:///system';

export async function virsh(...args: string[]): Promise<string> {
  const { stdout } = await run('virsh', ['-q', '-c', LIBVIRT_URI, ...args], { timeout: 30_000 });
  return stdout;
}

function answers(): boolean {
  return spawnSync('virsh', ['-c', LIBVIRT_URI, 'uri'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** Make sure libvirtd answers; returns a stop function for what this call started (no-op otherwise). */
export async function ensureLibvirt(): Promise<() => Promise<void>> {
  if (answers()) return async () => undefined;
  mkdirSync('/run/libvirt', { recursive: true });
  await run('virtlogd', ['-d']).catch(() => undefined); // may already run
  if (existsSync('/dev/kvm')) {
    // This machine has a /dev/kvm node but no usable KVM; libvirt 9.0 then sees the node's ctime
    // "change" on every lookup and re-probes QEMU's capabilities on each define (~40 s). libvirtd
    // runs in its own mount namespace with the node masked; the domains use TCG anyway.
    await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind /dev/null /dev/kvm && exec libvirtd -d']);
  } else {
    await run('libvirtd', ['-d']);
  }
  // The first start probes QEMU's capabilities (~16 s on 2 cores); later starts use the cache.
  const deadline = Date.now() + 90_000;
  while (!answers()) {
    if (Date.now() > deadline) throw new Error('libvirtd did not answer within 90 s');
    await new Promise((r) => setTimeout(r, 250));
  }
  return async () => {
    for (const pidfile of ['/run/libvirtd.pid', '/run/virtlogd.pid']) {
      try {
        process.kill(Number(readFileSync(pidfile, 'utf8').trim()), 'SIGTERM');
      } catch {
        continue; // already gone
      }
    }
  };
}

export function domainXml(name: string, listen = '127.0.0.1', graphicsAttrs = ''): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <graphics type='vnc' autoport='yes' listen='${listen}' ${graphicsAttrs}><listen type='address' address='${listen}'/></graphics>
    <video><model type='vga' vram='16384' heads='1'/></video>
    <memballoon model='none'/>
  </devices>
</domain>`;
}

/** Domains created by one test file, all removed by cleanup(). */
export class TestDomains {
  readonly #names = new Set<string>();

  async define(name: string, listen = '127.0.0.1', graphicsAttrs = ''): Promise<string> {
    await virsh('destroy', name).catch(() => undefined);
    await virsh('undefine', name).catch(() => undefined);
    const file = `/tmp/${name}.xml`;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, domainXml(name, listen, graphicsAttrs));
    await virsh('define', file);
    this.#names.add(name);
    return (await virsh('domuuid', name)).trim();
  }

  async create(name: string, listen = '127.0.0.1', graphicsAttrs = ''): Promise<{ name: string; uuid: string; port: number }> {
    const uuid = await this.define(name, listen, graphicsAttrs);
    await virsh('start', name);
    return { name, uuid, port: await this.port(name) };
  }

  async port(name: string): Promise<number> {
    return parseDomainXml(await virsh('dumpxml', name)).graphics.find((g) => g.type === 'vnc')?.port ?? 0;
  }

  async cleanup(): Promise<void> {
    for (const name of this.#names) {
      await virsh('destroy', name).catch(() => undefined);
      await virsh('undefine', name).catch(() => undefined);
    }
  }
}
