/**
 * X-Forwarded-* from trusted reverse proxies only. A client that is not a trusted proxy cannot
 * choose its logged address, escape the failed-token limit, or widen the Origin check.
 */
import { BlockList, isIP } from 'node:net';

export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #empty: boolean;

  /** @throws Error naming an entry that is neither an address nor a CIDR range. */
  constructor(entries: readonly string[]) {
    this.#empty = entries.length === 0;
    for (const e of entries) {
      const [addr, bits] = e.split('/');
      const family = isIP(addr ?? '');
      if (family === 0) throw new Error(`[console] trusted_proxies: ${JSON.stringify(e)} is not an IP address or CIDR range`);
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.#list.addAddress(addr as string, type);
      else this.#list.addSubnet(addr as string, Number(bits), type);
    }
  }

  #trusted(address: string | undefined): boolean {
    if (this.#empty || address === undefined) return false;
    const a = address.replace(/^::ffff:/, '');
    return this.#list.check(a, isIP(a) === 6 ? 'ipv6' : 'ipv4');
  }

  /** The client's address: the right-most X-Forwarded-For hop that is not a trusted proxy. */
  clientAddress(remote: string | undefined, forwardedFor: string | string[] | undefined): string {
    const fallback = remote ?? 'unknown';
    if (!this.#trusted(remote) || forwardedFor === undefined) return fallback;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',').map((h) => h.trim()).filter((h) => isIP(h) !== 0);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i] as string;
      if (!this.#trusted(hop)) return hop;
    }
    return hops[0] ?? fallback;
  }

  /** The Host the browser used: X-Forwarded-Host from a trusted proxy, else Host. */
  host(remote: string | undefined, hostHeader: string | undefined, forwardedHost: string | string[] | undefined): string | undefined {
    if (!this.#trusted(remote) || forwardedHost === undefined) return hostHeader;
    const first = (Array.isArray(forwardedHost) ? forwardedHost[0] : forwardedHost)?.split(',')[0]?.trim();
    return first || hostHeader;
  }
}
