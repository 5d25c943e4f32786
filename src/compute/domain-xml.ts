/**
 * libvirt domain XML → the facts Porthole needs (state, graphics, listen addresses). Pure.
 * Parsed with fast-xml-parser, never with regular expressions: attribute order, quoting, entities
 * and the `<domstatus>` wrapper of /run/libvirt/qemu/*.xml all vary.
 * Reference: https://libvirt.org/formatdomain.html#graphical-framebuffers
 */
import { XMLParser } from 'fast-xml-parser';

export type GraphicsType = 'vnc' | 'spice' | 'rdp' | 'sdl' | 'desktop' | 'egl-headless' | 'dbus' | string;

export interface GraphicsListen {
  readonly type: 'address' | 'network' | 'socket' | 'none' | string;
  readonly address?: string | undefined;
  readonly network?: string | undefined;
  readonly socket?: string | undefined;
}

export interface DomainGraphics {
  readonly type: GraphicsType;
  /** Live TCP port; undefined when not allocated (autoport on a shut-off domain has port='-1'). */
  readonly port?: number | undefined;
  readonly tlsPort?: number | undefined;
  readonly autoport: boolean;
  /** The effective listen address: `listen=` attribute, else the first address-type <listen>. */
  readonly listenAddress?: string | undefined;
  readonly listens: readonly GraphicsListen[];
  readonly hasPassword: boolean;
  /** Password, only present in XML read with --security-info. */
  readonly password?: string | undefined;
}

/** A `<serial>` or `<console>` character device. */
export interface DomainCharDevice {
  readonly element: 'serial' | 'console';
  /** `tcp`, `pty`, `file`, `unix`, … */
  readonly type: string;
  /** `<source mode>`: `bind` (QEMU listens) or `connect`. */
  readonly mode?: string | undefined;
  readonly host?: string | undefined;
  /** `<source service>` as a TCP port. */
  readonly port?: number | undefined;
  /** `<target port>`: the guest's serial index. */
  readonly targetPort?: number | undefined;
  /** A pty's device: `<source path>` or the `<console tty>` attribute. */
  readonly tty?: string | undefined;
}

export interface DomainInfo {
  readonly name: string;
  readonly uuid: string;
  /** Running domains carry `id='N'` on <domain>. */
  readonly running: boolean;
  readonly graphics: readonly DomainGraphics[];
  /** `<serial>` devices then `<console>` devices, in document order. */
  readonly charDevices: readonly DomainCharDevice[];
}

/**
 * Where a domain's serial console can be reached over TCP, as Nova's libvirt driver finds it
 * (`_get_serial_ports_from_guest`): the first `<serial type='tcp'><source mode='bind'>`, else the
 * first such `<console>`; the host comes from the XML. `pty-only`: there is a serial console, but
 * only `virsh console` on the host reaches it. Pure.
 */
export function serialConsoleOf(info: Pick<DomainInfo, 'charDevices'>): { kind: 'tcp'; host: string; port: number } | { kind: 'pty-only'; tty: string | undefined } | { kind: 'none' } {
  const tcp = (element: 'serial' | 'console') => info.charDevices.find((d) => d.element === element && d.type === 'tcp' && d.mode === 'bind' && d.port !== undefined);
  const found = tcp('serial') ?? tcp('console');
  if (found !== undefined) return { kind: 'tcp', host: found.host ?? '127.0.0.1', port: found.port as number };
  const pty = info.charDevices.find((d) => d.type === 'pty');
  return pty === undefined ? { kind: 'none' } : { kind: 'pty-only', tty: pty.tty };
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseAttributeValue: false,
  parseTagValue: false,
  isArray: (name) => name === 'graphics' || name === 'listen' || name === 'serial' || name === 'console',
  processEntities: true,
});

type XmlNode = Record<string, unknown>;

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

function portOf(v: unknown): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const n = Number(s);
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined;
}

function parseGraphics(g: XmlNode): DomainGraphics {
  const listens: GraphicsListen[] = ((g.listen as XmlNode[] | undefined) ?? []).map((l) => ({
    type: str(l['@type']) ?? 'address',
    address: str(l['@address']),
    network: str(l['@network']),
    socket: str(l['@socket']),
  }));
  const listenAttr = str(g['@listen']);
  const password = str(g['@passwd']);
  return {
    type: str(g['@type']) ?? 'unknown',
    port: portOf(g['@port']),
    tlsPort: portOf(g['@tlsPort']),
    autoport: str(g['@autoport']) === 'yes',
    listenAddress: listenAttr ?? listens.find((l) => l.address !== undefined)?.address,
    listens,
    hasPassword: password !== undefined,
    password,
  };
}

function parseCharDevice(element: 'serial' | 'console', d: XmlNode): DomainCharDevice {
  const source = (Array.isArray(d.source) ? d.source[0] : d.source) as XmlNode | undefined;
  const target = (Array.isArray(d.target) ? d.target[0] : d.target) as XmlNode | undefined;
  const targetPort = Number(str(target?.['@port']));
  return {
    element,
    type: str(d['@type']) ?? 'pty',
    mode: str(source?.['@mode']),
    host: str(source?.['@host']),
    port: portOf(source?.['@service']),
    targetPort: Number.isInteger(targetPort) ? targetPort : undefined,
    tty: str(d['@tty']) ?? str(source?.['@path']),
  };
}

/**
 * Parse `virsh dumpxml` output, a persistent /etc/libvirt/qemu/*.xml, or a /run/libvirt/qemu/*.xml
 * `<domstatus>` file.
 * @throws Error when the text is not a libvirt domain.
 */
export function parseDomainXml(xml: string): DomainInfo {
  let doc: XmlNode;
  try {
    doc = parser.parse(xml) as XmlNode;
  } catch (err) {
    throw new Error(`not valid XML: ${(err as Error).message}`);
  }
  const domain = (doc.domain ?? (doc.domstatus as XmlNode | undefined)?.domain) as XmlNode | undefined;
  if (domain === undefined || typeof domain !== 'object') throw new Error('no <domain> element');
  const name = str(domain.name);
  const uuid = str(domain.uuid);
  if (name === undefined || uuid === undefined) throw new Error('<domain> without <name> or <uuid>');
  const id = str(domain['@id']);
  const devices = (domain.devices ?? {}) as XmlNode;
  const graphics = ((devices.graphics as XmlNode[] | undefined) ?? []).map(parseGraphics);
  const charDevices = [
    ...((devices.serial as XmlNode[] | undefined) ?? []).map((d) => parseCharDevice('serial', d)),
    ...((devices.console as XmlNode[] | undefined) ?? []).map((d) => parseCharDevice('console', d)),
  ];
  return { name, uuid: uuid.toLowerCase(), running: id !== undefined && id !== '-1', graphics, charDevices };
}

export const WILDCARD_ADDRESSES: ReadonlySet<string> = new Set(['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0']);

export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\./.test(address);
}
