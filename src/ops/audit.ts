/**
 * `porthole audit`: console exposure and drift on a hypervisor host. Findings are data; the CLI
 * decides how to print them and the exit status.
 */
import { WILDCARD_ADDRESSES, isLoopback, type DomainGraphics, type DomainInfo } from '../compute/domain-xml.js';
import type { QemuListener } from './proc-sockets.js';

export type FindingCode = 'PH_AUDIT_WILDCARD_LISTEN' | 'PH_AUDIT_LISTEN_DRIFT' | 'PH_AUDIT_LISTEN_MISMATCH' | 'PH_AUDIT_NO_AUTH' |
  'PH_AUDIT_SERIAL_NOT_LOOPBACK' | 'PH_AUDIT_SERIAL_PORT_RANGE';

export interface Finding {
  readonly code: FindingCode;
  readonly severity: 'error' | 'warning';
  readonly domain: string;
  readonly message: string;
  readonly fix: string;
}

export interface DomainState {
  readonly live: DomainInfo;
  /** The persistent definition (`virsh dumpxml --inactive`); undefined for transient domains. */
  readonly persistent: DomainInfo | undefined;
}

export interface AuditInput {
  readonly listeners: readonly QemuListener[];
  readonly domains: readonly DomainState[];
  /** `[vnc] server_listen` of this host. */
  readonly serverListen: string;
  /** `[serial_console] port_range` (stop exclusive); absent: serial ports are not range-checked. */
  readonly serialPortRange?: { readonly start: number; readonly stop: number } | undefined;
  /** `[serial_console] proxyclient_address`: where serial consoles of this host should listen. */
  readonly serialAddress?: string | undefined;
}

const CONSOLE_TYPES = new Set(['vnc', 'spice']);

function consoleGraphics(d: DomainInfo): DomainGraphics[] {
  return d.graphics.filter((g) => CONSOLE_TYPES.has(g.type));
}

function hardReboot(name: string): string {
  return `hard-reboot it so qemu re-reads the definition: \`virsh destroy ${name} && virsh start ${name}\` (a reboot from inside the guest is not enough)`;
}

/** Pure: findings from what listens and what libvirt says. */
export function auditFindings(input: AuditInput): Finding[] {
  const findings: Finding[] = [];
  const byUuid = new Map(input.domains.map((d) => [d.live.uuid, d]));
  for (const l of input.listeners) {
    if (!WILDCARD_ADDRESSES.has(l.address)) continue;
    const state = (l.uuid && byUuid.get(l.uuid)) || input.domains.find((d) => d.live.name === l.domain);
    const g = state ? consoleGraphics(state.live).find((x) => x.port === l.port || x.tlsPort === l.port) : undefined;
    const serial = state?.live.charDevices.find((c) => c.type === 'tcp' && c.port === l.port);
    const what = g ? `${g.type.toUpperCase()} console` : serial ? 'serial console (no authentication at all)' : 'a qemu listener';
    const name = state?.live.name ?? l.domain ?? `pid ${l.pid}`;
    findings.push({
      code: 'PH_AUDIT_WILDCARD_LISTEN', severity: 'error', domain: name,
      message: `${what} of ${name} listens on ${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port} (qemu pid ${l.pid}): reachable from every network of this host`,
      fix: serial
        ? `set <source mode='bind' host='…'> of its <${serial.element} type='tcp'> to the management address (Nova: [serial_console] proxyclient_address), then ${hardReboot(name)}`
        : `set listen='${input.serverListen}' on its <graphics> (virsh edit ${name}), set [vnc] server_listen to the management address, then ${hardReboot(name)}`,
    });
  }
  for (const { live } of input.domains) {
    if (!live.running) continue;
    for (const c of live.charDevices) {
      if (c.type !== 'tcp' || c.mode !== 'bind' || c.port === undefined) continue;
      // libvirt mirrors serial0 as a <console> with the same port: one finding per port.
      if (c.element === 'console' && live.charDevices.some((o) => o.element === 'serial' && o.port === c.port)) continue;
      const range = input.serialPortRange;
      if (range !== undefined && (c.port < range.start || c.port >= range.stop)) {
        findings.push({
          code: 'PH_AUDIT_SERIAL_PORT_RANGE', severity: 'warning', domain: live.name,
          message: `${live.name}'s TCP ${c.element} console port ${c.port} is outside [serial_console] port_range ${range.start}:${range.stop}: a firewall opened for that range does not let the proxy reach it`,
          fix: `give it a port in ${range.start}:${range.stop} (virsh edit ${live.name}), or widen port_range to what the host's firewall allows, then ${hardReboot(live.name)}`,
        });
      }
      // A serial port has no password and no TLS: anything beyond loopback relies on the network alone.
      const expected = input.serialAddress ?? input.serverListen;
      if (c.host !== undefined && !WILDCARD_ADDRESSES.has(c.host) && !isLoopback(c.host) && c.host !== expected) {
        findings.push({
          code: 'PH_AUDIT_SERIAL_NOT_LOOPBACK', severity: 'warning', domain: live.name,
          message: `${live.name}'s TCP ${c.element} console listens on ${c.host}:${c.port}, neither loopback nor this host's management address (${input.serialAddress === undefined ? '[vnc] server_listen' : '[serial_console] proxyclient_address'} ${expected}); serial consoles have no authentication`,
          fix: `bind it to the management address (Nova: [serial_console] proxyclient_address) and ${hardReboot(live.name)}`,
        });
      }
    }
  }
  for (const { live, persistent } of input.domains) {
    if (!live.running) continue;
    for (const g of consoleGraphics(live)) {
      const liveAddr = g.listenAddress;
      const saved = persistent === undefined ? undefined : consoleGraphics(persistent).find((p) => p.type === g.type);
      if (saved !== undefined && saved.listenAddress !== liveAddr) {
        findings.push({
          code: 'PH_AUDIT_LISTEN_DRIFT', severity: 'warning', domain: live.name,
          message: `${live.name} runs its ${g.type.toUpperCase()} console on ${liveAddr ?? '(none)'} but its definition says ${saved.listenAddress ?? '(none)'}: the running qemu keeps the old address`,
          fix: hardReboot(live.name),
        });
      }
      if (liveAddr !== undefined && !WILDCARD_ADDRESSES.has(liveAddr) && liveAddr !== input.serverListen) {
        findings.push({
          code: 'PH_AUDIT_LISTEN_MISMATCH', severity: 'warning', domain: live.name,
          message: `${live.name} listens for ${g.type.toUpperCase()} on ${liveAddr}, not on this host's [vnc] server_listen ${input.serverListen}`,
          fix: `if ${input.serverListen} is right, change the domain's listen address and ${hardReboot(live.name)}; otherwise fix [vnc] server_listen`,
        });
      }
      const tls = g.type === 'vnc'
        ? input.listeners.some((l) => l.uuid === live.uuid && /tls-creds=|(^|,)tls(,|$)/.test(l.vncArg ?? ''))
        : g.tlsPort !== undefined;
      if (liveAddr !== undefined && !isLoopback(liveAddr) && !g.hasPassword && !tls) {
        findings.push({
          code: 'PH_AUDIT_NO_AUTH', severity: 'error', domain: live.name,
          message: `${live.name}'s ${g.type.toUpperCase()} console on ${liveAddr} has neither a password nor TLS: anyone who reaches that address sees the screen`,
          fix: 'listen only on the management network, and enable vnc_tls/x509 in qemu.conf or a per-domain passwd',
        });
      }
    }
  }
  return findings;
}
