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

export interface DomainInfo {
  readonly name: string;
  readonly uuid: string;
  /** Running domains carry `id='N'` on <domain>. */
  readonly running: boolean;
  readonly graphics: readonly DomainGraphics[];
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseAttributeValue: false,
  parseTagValue: false,
  isArray: (name) => name === 'graphics' || name === 'listen',
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
  return { name, uuid: uuid.toLowerCase(), running: id !== undefined && id !== '-1', graphics };
}

export const WILDCARD_ADDRESSES: ReadonlySet<string> = new Set(['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0']);

export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\./.test(address);
}
