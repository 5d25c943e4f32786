/** The I/O shell of `porthole audit`: read /proc and libvirt, then apply auditFindings. */
import { parseDomainXml, type DomainInfo } from '../compute/domain-xml.js';
import { VirshError, type VirshRunner } from '../compute/virsh.js';
import { PortholeError } from '../errors.js';
import { auditFindings, type DomainState, type Finding } from './audit.js';
import { qemuListeners } from './proc-sockets.js';

export interface HostAuditOptions {
  readonly virsh: VirshRunner;
  readonly serverListen: string;
  readonly serialPortRange?: { readonly start: number; readonly stop: number } | undefined;
  readonly serialAddress?: string | undefined;
  readonly procRoot?: string;
}

export interface HostAudit {
  readonly findings: Finding[];
  readonly domainsChecked: number;
  readonly listenersChecked: number;
}

async function dump(virsh: VirshRunner, name: string, inactive: boolean): Promise<DomainInfo | undefined> {
  try {
    // --security-info: without it libvirt hides passwd=, and every password-protected console
    // would look unauthenticated.
    return parseDomainXml(await virsh(['dumpxml', '--security-info', ...(inactive ? ['--inactive'] : []), '--', name]));
  } catch (err) {
    if (err instanceof VirshError && err.kind === 'not-found') return undefined;
    throw err;
  }
}

/** @throws PortholeError PH_ERR_LIBVIRT_UNAVAILABLE when libvirt cannot be asked. */
export async function auditHost(options: HostAuditOptions): Promise<HostAudit> {
  const listeners = await qemuListeners(options.procRoot);
  const domains: DomainState[] = [];
  try {
    const names = (await options.virsh(['list', '--name'])).split('\n').map((l) => l.trim()).filter(Boolean);
    for (const name of names) {
      const live = await dump(options.virsh, name, false);
      if (live === undefined) continue; // stopped between list and dumpxml
      domains.push({ live, persistent: await dump(options.virsh, name, true) });
    }
  } catch (err) {
    throw new PortholeError('PH_ERR_LIBVIRT_UNAVAILABLE', `audit cannot read libvirt: ${(err as Error).message}`, { cause: err });
  }
  return {
    findings: auditFindings({ listeners, domains, serverListen: options.serverListen, serialPortRange: options.serialPortRange, serialAddress: options.serialAddress }),
    domainsChecked: domains.length,
    listenersChecked: listeners.length,
  };
}
