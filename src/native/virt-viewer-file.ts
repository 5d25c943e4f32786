/**
 * remote-viewer connection files (`.vv`, remote-viewer(1) CONNECTION FILE) for native SPICE
 * clients through the proxy's HTTP CONNECT endpoint, as Proxmox's spiceproxy does: `host` is the
 * token (remote-viewer sends `CONNECT <host>:<port>`), `proxy` the endpoint. The `password` is a
 * throwaway: the proxy does the SPICE ticket with the VM's real password. Pure.
 */
import { tokenAsHost } from '../tokens/token.js';

export interface VirtViewerFileOptions {
  readonly token: string;
  /** `http://host:port` of the SPICE listener (remote-viewer speaks HTTP CONNECT in clear). */
  readonly proxyUrl: string;
  readonly title: string;
  /** Not the VM's: remote-viewer needs some password to send; the proxy discards it. */
  readonly password: string;
}

/** INI values cannot span lines; the title is the only free text. */
function oneLine(value: string): string {
  return value.replace(/[\r\n]+/g, ' ').trim();
}

export function virtViewerFile(o: VirtViewerFileOptions): string {
  return [
    '[virt-viewer]',
    'type=spice',
    `host=${tokenAsHost(o.token)}`,
    // Ignored by the proxy (the token decides the target); remote-viewer requires one.
    'port=5900',
    `password=${o.password}`,
    `proxy=${o.proxyUrl}`,
    `title=${oneLine(o.title)}`,
    'delete-this-file=1',
    'toggle-fullscreen=shift+f11',
    'release-cursor=shift+f12',
    '',
  ].join('\n');
}
