/** Deciding where the proxy connects for a libvirt domain's VNC or serial console. Pure. */
import { PortholeError } from '../errors.js';
import type { ConsoleTarget } from './driver.js';
import { isLoopback, serialConsoleOf, WILDCARD_ADDRESSES, type DomainGraphics, type DomainInfo } from './domain-xml.js';

/**
 * The console target of a running domain: the host's management address (the proxy never uses the
 * listen address itself, which may be a wildcard) and the live port.
 * @throws PortholeError PH_ERR_INSTANCE_NOT_RUNNING, PH_ERR_INSTANCE_NO_CONSOLE,
 *   PH_ERR_INSTANCE_CONSOLE_UNREACHABLE
 */
export function vncTargetOf(domain: DomainInfo, proxyClientAddress: string): ConsoleTarget {
  if (!domain.running) {
    throw new PortholeError('PH_ERR_INSTANCE_NOT_RUNNING', `domain ${domain.name} is shut off; start it to get a console`);
  }
  const vnc = domain.graphics.find((g) => g.type === 'vnc');
  if (vnc === undefined) {
    const others = domain.graphics.map((g) => g.type);
    throw new PortholeError('PH_ERR_INSTANCE_NO_CONSOLE',
      `domain ${domain.name} has no VNC graphics${others.length > 0 ? ` (it has: ${others.join(', ')})` : ''}`);
  }
  const unreachable = unreachableReason(vnc, proxyClientAddress);
  if (unreachable !== undefined) {
    throw new PortholeError('PH_ERR_INSTANCE_CONSOLE_UNREACHABLE', `domain ${domain.name}: ${unreachable}`);
  }
  return { instance: domain.name, instanceUuid: domain.uuid, protocol: 'vnc', host: proxyClientAddress, port: vnc.port as number };
}

function unreachableReason(vnc: DomainGraphics, proxyClientAddress: string): string | undefined {
  const listen = vnc.listens[0];
  if (listen?.type === 'socket') return `VNC listens on a unix socket (${listen.socket ?? '?'}), not on TCP`;
  if (listen?.type === 'none') return "VNC has listen type 'none' (no listener)";
  if (vnc.port === undefined) return 'VNC has no TCP port in the live domain XML';
  const address = vnc.listenAddress;
  if (address !== undefined && isLoopback(address) && !isLoopback(proxyClientAddress)) {
    return `VNC listens only on ${address}, but the proxy reaches this host through ${proxyClientAddress} ` +
      `([vnc] server_proxyclient_address): set the domain's listen address to it (or to [vnc] server_listen) and hard-reboot the domain`;
  }
  return undefined;
}

/**
 * The serial console target of a running domain. Unlike VNC, the host comes from the XML, as
 * Nova's libvirt driver does (`<source mode='bind' host=…>` is Nova's `[serial_console]
 * proxyclient_address`); a wildcard there means "this host", reached through the management address.
 * @throws PortholeError PH_ERR_INSTANCE_NOT_RUNNING, PH_ERR_INSTANCE_SERIAL_PTY_ONLY, PH_ERR_INSTANCE_NO_CONSOLE
 */
export function serialTargetOf(domain: DomainInfo, proxyClientAddress: string): ConsoleTarget {
  if (!domain.running) {
    throw new PortholeError('PH_ERR_INSTANCE_NOT_RUNNING', `domain ${domain.name} is shut off; start it to get a console`);
  }
  const serial = serialConsoleOf(domain);
  if (serial.kind === 'pty-only') {
    throw new PortholeError('PH_ERR_INSTANCE_SERIAL_PTY_ONLY',
      `domain ${domain.name} has only a pty serial console${serial.tty ? ` (${serial.tty})` : ''}: reachable with \`virsh console ${domain.name}\` on its host, not over TCP`);
  }
  if (serial.kind === 'none') throw new PortholeError('PH_ERR_INSTANCE_NO_CONSOLE', `domain ${domain.name} has no serial console`);
  const host = WILDCARD_ADDRESSES.has(serial.host) ? proxyClientAddress : serial.host;
  return { instance: domain.name, instanceUuid: domain.uuid, protocol: 'serial', host, port: serial.port };
}
