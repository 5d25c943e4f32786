/** Static inventory file: one INI section per instance. Pure parsing. */
import { parseIni } from '../config/ini.js';
import { parseHost, parsePort } from '../config/schema.js';
import { suggest } from '../config/suggest.js';
import type { ConsoleProtocol } from '../console/types.js';

export interface InventoryEntry {
  readonly name: string;
  readonly uuid?: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly protocol: ConsoleProtocol;
  /** `serial_port =`: the instance's TCP serial console on the same host, besides the `port` console. */
  readonly serialPort?: number | undefined;
  /** VNC password for the RFB security proxy ([vnc] auth_schemes = vnc). */
  readonly password?: string | undefined;
  /** `spice_port =`, `spice_tls_port =`, `spice_password =`: the instance's SPICE server on the same host. */
  readonly spice?: { readonly port: number; readonly tlsPort?: number | undefined; readonly password?: string | undefined } | undefined;
}

const KEYS = ['host', 'port', 'serial_port', 'uuid', 'protocol', 'password', 'spice_port', 'spice_tls_port', 'spice_password'] as const;
const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * Parse inventory text; returns entries and `file:line: message` problems (all of them).
 * @example parseInventory('[demo-vm]\nhost = 127.0.0.1\nport = 5907\n', 'inv.ini').entries[0].port // 5907
 */
export function parseInventory(text: string, file: string): { entries: InventoryEntry[]; problems: string[] } {
  const doc = parseIni(text, file);
  const problems = doc.problems.map((p) => `${p.file}:${p.line}: ${p.message}`);
  const fields = new Map<string, Map<string, { value: string; line: number }>>();
  const sectionLine = new Map<string, number>();
  for (const s of doc.sections) {
    if (sectionLine.has(s.name)) problems.push(`${file}:${s.line}: [${s.name}]: instance defined twice`);
    sectionLine.set(s.name, s.line);
    fields.set(s.name, new Map());
  }
  for (const e of doc.entries) {
    if (!(KEYS as readonly string[]).includes(e.key)) {
      const near = suggest(e.key, KEYS);
      problems.push(`${file}:${e.line}: [${e.group}] ${e.key}: unknown key${near ? `, did you mean ${near}?` : ` (known: ${KEYS.join(', ')})`}`);
      continue;
    }
    fields.get(e.group)?.set(e.key, { value: e.value, line: e.line });
  }
  const entries: InventoryEntry[] = [];
  const seenUuids = new Set<string>();
  for (const [name, f] of fields) {
    const at = (key: string) => `${file}:${f.get(key)?.line ?? sectionLine.get(name)}: [${name}] ${key}`;
    const host = f.get('host');
    const port = f.get('port');
    if (!host) { problems.push(`${at('host')}: missing (the address the proxy connects to)`); continue; }
    if (!port) { problems.push(`${at('port')}: missing (the VNC server's TCP port, e.g. 5900)`); continue; }
    try {
      const uuid = f.get('uuid')?.value;
      if (uuid !== undefined && !UUID_RE.test(uuid)) throw new Error(`uuid: expected a UUID, got ${JSON.stringify(uuid)}`);
      if (uuid !== undefined) {
        if (seenUuids.has(uuid.toLowerCase())) throw new Error(`uuid: ${uuid} is used by another instance`);
        seenUuids.add(uuid.toLowerCase());
      }
      const protocol = f.get('protocol')?.value ?? 'vnc';
      if (protocol !== 'vnc' && protocol !== 'serial') throw new Error(`protocol: expected vnc or serial, got ${JSON.stringify(protocol)}`);
      const serialPort = f.get('serial_port');
      const spicePort = f.get('spice_port');
      if (spicePort === undefined && (f.get('spice_tls_port') !== undefined || f.get('spice_password') !== undefined)) {
        throw new Error('spice_tls_port/spice_password: also set spice_port (the SPICE server\'s plain port)');
      }
      if (serialPort !== undefined && protocol === 'serial') throw new Error('serial_port: protocol = serial already makes port the serial console; use one of them');
      entries.push({
        name,
        uuid: uuid?.toLowerCase(),
        host: wrap('host', parseHost)(host.value),
        port: wrap('port', parsePort)(port.value),
        protocol,
        ...(serialPort === undefined ? {} : { serialPort: wrap('serial_port', parsePort)(serialPort.value) }),
        ...(f.get('password') === undefined ? {} : { password: f.get('password')?.value }),
        ...(spicePort === undefined ? {} : {
          spice: {
            port: wrap('spice_port', parsePort)(spicePort.value),
            ...(f.get('spice_tls_port') === undefined ? {} : { tlsPort: wrap('spice_tls_port', parsePort)(f.get('spice_tls_port')?.value ?? '') }),
            ...(f.get('spice_password') === undefined ? {} : { password: f.get('spice_password')?.value }),
          },
        }),
      });
    } catch (err) {
      problems.push(`${file}:${sectionLine.get(name)}: [${name}] ${(err as Error).message}`);
    }
  }
  return { entries, problems };
}

function wrap<T>(key: string, parse: (raw: string) => T): (raw: string) => T {
  return (raw) => {
    try {
      return parse(raw);
    } catch (err) {
      throw new Error(`${key}: ${(err as Error).message}`);
    }
  };
}
