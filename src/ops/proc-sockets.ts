/**
 * Listening TCP sockets of qemu processes, read from /proc the way `ss -ltnp` does, so the audit
 * sees what really listens (not what the XML claims) and needs no ss/netstat on the host.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface ListeningSocket {
  readonly inode: string;
  readonly address: string;
  readonly port: number;
}

export interface QemuListener extends ListeningSocket {
  readonly pid: number;
  /** Domain name from qemu's `-name guest=NAME,…` (libvirt) or `-name NAME`. */
  readonly domain: string | undefined;
  readonly uuid: string | undefined;
  /** The `-vnc` argument, e.g. `127.0.0.1:0,tls-creds=…`, if any. */
  readonly vncArg: string | undefined;
}

const TCP_LISTEN = '0A';

/** `0100007F` → 127.0.0.1; 32 hex digits → IPv6 (kernel stores each 32-bit word little-endian). */
export function decodeProcAddress(rawHex: string): string {
  const hex = rawHex.toLowerCase();
  if (hex.length === 8) {
    return [hex.slice(6, 8), hex.slice(4, 6), hex.slice(2, 4), hex.slice(0, 2)].map((b) => parseInt(b, 16)).join('.');
  }
  const words: string[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    const bytes = [word.slice(6, 8), word.slice(4, 6), word.slice(2, 4), word.slice(0, 2)].join('');
    words.push(bytes.slice(0, 4), bytes.slice(4, 8));
  }
  const v4mapped = words.slice(0, 5).every((g) => g === '0000') && words[5] === 'ffff';
  if (v4mapped) return decodeProcAddress(hex.slice(24, 32));
  return words.map((g) => parseInt(g, 16).toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** Parse /proc/net/tcp or tcp6 text → listening sockets. Pure. */
export function parseProcNetTcp(text: string): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
    const [addrHex, portHex] = (f[1] ?? '').split(':');
    if (addrHex === undefined || portHex === undefined) continue;
    out.push({ address: decodeProcAddress(addrHex), port: parseInt(portHex, 16), inode: f[9] ?? '' });
  }
  return out;
}

/** Domain name, uuid and -vnc argument from a qemu command line (NUL-separated argv). Pure. */
export function parseQemuCmdline(argv: readonly string[]): { domain?: string; uuid?: string; vncArg?: string } {
  const out: { domain?: string; uuid?: string; vncArg?: string } = {};
  for (let i = 0; i < argv.length - 1; i++) {
    const next = argv[i + 1] as string;
    if (argv[i] === '-name') {
      const guest = /(?:^|,)guest=((?:[^,]|,,)*)/.exec(next);
      out.domain = (guest ? guest[1] ?? '' : next.split(',')[0] ?? '').replace(/,,/g, ',');
    } else if (argv[i] === '-uuid') {
      out.uuid = next.toLowerCase();
    } else if (argv[i] === '-vnc') {
      out.vncArg = next;
    }
  }
  return out;
}

/** Every listening TCP socket owned by a `qemu-system-*` process. */
export async function qemuListeners(procRoot = '/proc'): Promise<QemuListener[]> {
  const sockets = new Map<string, ListeningSocket>();
  for (const f of ['net/tcp', 'net/tcp6']) {
    const text = await readFile(join(procRoot, f), 'utf8').catch(() => '');
    for (const s of parseProcNetTcp(text)) sockets.set(s.inode, s);
  }
  const out: QemuListener[] = [];
  for (const entry of await readdir(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = (await readFile(join(procRoot, entry, 'comm'), 'utf8').catch(() => '')).trim();
    if (!comm.startsWith('qemu-system')) continue;
    const argv = (await readFile(join(procRoot, entry, 'cmdline'), 'utf8').catch(() => '')).split('\0');
    const info = parseQemuCmdline(argv);
    const fds = await readdir(join(procRoot, entry, 'fd')).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(join(procRoot, entry, 'fd', fd)).catch(() => '');
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      const socket = inode === undefined ? undefined : sockets.get(inode);
      if (socket) out.push({ ...socket, pid: Number(entry), domain: info.domain, uuid: info.uuid, vncArg: info.vncArg });
    }
  }
  return out;
}
