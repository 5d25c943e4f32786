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
  return graphicsTargetOf(domain, 'vnc', proxyClientAddress);
}

/**
 * The SPICE console target of a running domain: as VNC, from `<graphics type='spice'>`'s plain
 * port (the channels QEMU secures with tls-port are not reached yet: a domain with only a
 * tlsPort answers PH_ERR_INSTANCE_CONSOLE_UNREACHABLE).
 */
export function spiceTargetOf(domain: DomainInfo, proxyClientAddress: string): ConsoleTarget {
  return graphicsTargetOf(domain, 'spice', proxyClientAddress);
}

function graphicsTargetOf(domain: DomainInfo, type: 'vnc' | 'spice', proxyClientAddress: string): ConsoleTarget {
  const name = type.toUpperCase();
  if (!domain.running) {
    throw new PortholeError('PH_ERR_INSTANCE_NOT_RUNNING', `domain ${domain.name} is shut off; start it to get a console`);
  }
  const graphics = domain.graphics.find((g) => g.type === type);
  if (graphics === undefined) {
    const others = domain.graphics.map((g) => g.type);
    throw new PortholeError('PH_ERR_INSTANCE_NO_CONSOLE',
      `domain ${domain.name} has no ${name} graphics${others.length > 0 ? ` (it has: ${others.join(', ')})` : ''}`);
  }
  const unreachable = unreachableReason(graphics, name, proxyClientAddress);
  if (unreachable !== undefined) {
    throw new PortholeError('PH_ERR_INSTANCE_CONSOLE_UNREACHABLE', `domain ${domain.name}: ${unreachable}`);
  }
  return { instance: domain.name, instanceUuid: domain.uuid, protocol: type, host: proxyClientAddress, port: graphics.port as number };
}

function unreachableReason(g: DomainGraphics, name: string, proxyClientAddress: string): string | undefined {
  const listen = g.listens[0];
  const option = name === 'VNC' ? '[vnc] server_proxyclient_address' : '[spice] server_proxyclient_address';
  if (listen?.type === 'socket') return `${name} listens on a unix socket (${listen.socket ?? '?'}), not on TCP`;
  if (listen?.type === 'none') return `${name} has listen type 'none' (no listener)`;
  if (g.port === undefined) return `${name} has no plain TCP port in the live domain XML${g.tlsPort === undefined ? '' : ` (only tlsPort ${g.tlsPort}, which the proxy does not reach yet)`}`;
  const address = g.listenAddress;
  if (address !== undefined && isLoopback(address) && !isLoopback(proxyClientAddress)) {
    return `${name} listens only on ${address}, but the proxy reaches this host through ${proxyClientAddress} ` +
      `(${option}): set the domain's listen address to it (or to server_listen) and hard-reboot the domain`;
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
