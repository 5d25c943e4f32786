/**
 * `[console] allowed_origins` entries. Nova takes bare host names; operators also write what a
 * browser sends (`https://dash.example`) or a port. Before, such entries passed `config check`
 * and never matched; now each form has a meaning and anything else is refused with what to write:
 * - `host`: that host, any port (the scheme must still fit the console page, as for every Origin);
 * - `host:port`: that host and port;
 * - `scheme://host[:port]`: exactly that origin (http or https; port defaults to 80 / 443).
 */

export interface AllowedOrigin {
  /** Lower case, IPv6 without brackets. */
  readonly host: string;
  readonly port?: number;
  readonly scheme?: 'http:' | 'https:';
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };

/** The port an origin URL means, explicit or the scheme's default. Pure. */
export function originPort(url: URL): number {
  return url.port === '' ? (DEFAULT_PORTS[url.protocol] ?? 0) : Number(url.port);
}

/** Parse one entry. @throws Error saying what was expected, with a did-you-mean where one is clear. Pure. */
export function parseAllowedOrigin(entry: string): AllowedOrigin {
  if (entry.includes('*')) throw new Error(`${JSON.stringify(entry)}: wildcards are not supported; list each host`);
  const hasScheme = entry.includes('://');
  let url: URL;
  try {
    url = new URL(hasScheme ? entry : `http://${entry}`);
  } catch {
    throw new Error(`${JSON.stringify(entry)}: expected host, host:port or scheme://host[:port]`);
  }
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const bare = `${url.protocol}//${url.host}`;
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || (url.pathname !== '/' && url.pathname !== '')
    || (!hasScheme && /[/?#@]/.test(entry))) {
    throw new Error(`${JSON.stringify(entry)}: an origin has no path, query or user; did you mean ${hasScheme ? bare : url.host}?`);
  }
  if (hasScheme) {
    if (url.protocol === 'ws:' || url.protocol === 'wss:') {
      throw new Error(`${JSON.stringify(entry)}: browsers send http/https origins; did you mean ${url.protocol === 'wss:' ? 'https' : 'http'}://${url.host}?`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${JSON.stringify(entry)}: scheme must be http or https`);
    return { host, port: originPort(url), scheme: url.protocol };
  }
  const explicitPort = /:(\d+)$/.exec(entry)?.[1];
  return explicitPort === undefined ? { host } : { host, port: Number(explicitPort) };
}

/** Does an Origin (parsed) match one allowed entry? Pure. */
export function originMatches(origin: URL, allowed: AllowedOrigin): boolean {
  const host = origin.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return host === allowed.host
    && (allowed.port === undefined || originPort(origin) === allowed.port)
    && (allowed.scheme === undefined || origin.protocol === allowed.scheme);
}
