/**
 * Every option Porthole reads, with its type, default and help. The only place a default lives.
 * Names follow nova.conf so operators can carry their knowledge (and most of their values) over.
 */
import { isIP } from 'node:net';
import { parseAllowedOrigin } from './allowed-origin.js';

export interface OptionSpec<T> {
  /** Turns the raw INI string into a typed value; throws an Error whose message says what was expected. */
  readonly parse: (raw: string) => T;
  readonly default: T;
  readonly help: string;
  /** Shown in docs and `porthole config` output for defaults computed at load time. */
  readonly defaultText?: string;
}

function option<T>(parse: (raw: string) => T, def: T, help: string, defaultText?: string): OptionSpec<T> {
  return defaultText === undefined ? { parse, default: def, help } : { parse, default: def, help, defaultText };
}

export function parseBool(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw new Error(`expected true or false, got ${JSON.stringify(raw)}`);
}

export function intIn(min: number, max: number): (raw: string) => number {
  return (raw) => {
    const v = raw.trim();
    if (!/^-?\d+$/.test(v)) throw new Error(`expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    const n = Number(v);
    if (n < min || n > max) throw new Error(`must be from ${min} to ${max}, got ${n}`);
    return n;
  };
}

export const parsePort = intIn(1, 65535);
/** A port to listen on; 0 lets the OS pick one (tests). */
export const parseListenPort = intIn(0, 65535);

/** A host name or IP literal (IPv6 with or without brackets). */
export function parseHost(raw: string): string {
  const v = raw.trim().replace(/^\[(.*)\]$/, '$1');
  if (v === '') throw new Error('expected a host name or IP address, got an empty value');
  if (isIP(v) !== 0) return v;
  if (!/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(v)) {
    throw new Error(`expected a host name or IP address, got ${JSON.stringify(raw)}`);
  }
  return v;
}

export function parseHttpUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new Error(`expected an absolute http:// or https:// URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`expected an http:// or https:// URL, got scheme ${JSON.stringify(url.protocol)}`);
  }
  return url.toString();
}

/** A ws:// or wss:// URL (nova-serialproxy's `[serial_console] base_url`). */
export function parseWsUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new Error(`expected an absolute ws:// or wss:// URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new Error(`expected a ws:// or wss:// URL, got scheme ${JSON.stringify(url.protocol)}`);
  }
  return url.toString();
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** A size in bytes: 1048576, 512K, 1M, 10G (powers of 1024; an optional trailing B or iB). */
export function parseSize(raw: string): number {
  const m = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(raw.trim());
  if (m === null) throw new Error(`expected a size such as 1048576, 512K, 1M or 10G, got ${JSON.stringify(raw)}`);
  const n = Number(m[1]) * (SIZE_UNITS[(m[2] as string).toLowerCase()] as number);
  if (!Number.isSafeInteger(n)) throw new Error(`size ${JSON.stringify(raw)} is too large`);
  return n;
}

/** `[audit] syslog_address`: an absolute Unix socket path, or host:port. */
export function parseSyslogAddress(raw: string): string {
  const v = raw.trim();
  if (v.startsWith('/')) return v;
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(v);
  if (m === null) throw new Error(`expected a Unix socket path (/dev/log) or host:port, got ${JSON.stringify(raw)}`);
  parseHost(m[1] as string);
  parsePort(m[2] as string);
  return v;
}

/** Nova's `port_range`, `start:stop` (stop exclusive, as Nova walks `range(start, stop)`). */
export function parsePortRange(raw: string): { readonly start: number; readonly stop: number } {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(raw);
  const start = Number(m?.[1]);
  const stop = Number(m?.[2]);
  if (m === null || start < 1 || stop > 65536 || start >= stop) {
    // Nova falls back to the default with a warning; a range that means nothing is an error here.
    throw new Error(`expected start:stop with 1 ≤ start < stop ≤ 65536, got ${JSON.stringify(raw)}`);
  }
  return { start, stop };
}

/** `host:port` (IPv6 in brackets), or empty for "off". */
export function parseListenAddress(raw: string): string {
  const v = raw.trim();
  if (v === '') return '';
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(v);
  if (m === null || Number(m[3]) > 65535) throw new Error(`expected host:port (e.g. 127.0.0.1:9180 or [::1]:9180), got ${JSON.stringify(raw)}`);
  parseHost(m[1] ?? m[2] ?? '');
  return v;
}

/** Comma-separated list (oslo ListOpt); blanks dropped. */
export function parseList(raw: string): readonly string[] {
  return raw.split(/[,\n]/).map((s) => s.trim()).filter((s) => s !== '');
}

/**
 * A list whose every entry is checked by `check` (which throws with what was wrong); all bad
 * entries are reported at once, not only the first.
 */
export function parseListOf<T>(raw: string, check: (entry: string) => T): readonly T[] {
  const out: T[] = [];
  const bad: string[] = [];
  for (const entry of parseList(raw)) {
    try {
      out.push(check(entry));
    } catch (err) {
      bad.push((err as Error).message);
    }
  }
  if (bad.length === 1) throw new Error(bad[0]);
  if (bad.length > 1) throw new Error(`${bad.length} bad entries: ${bad.join('; ')}`);
  return out;
}

/** Comma-separated IP addresses or CIDR ranges. */
export function parseAddressList(raw: string): readonly string[] {
  return parseListOf(raw, (e) => {
    const [addr, bits, extra] = e.split('/');
    const family = isIP(addr ?? '');
    const max = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
      throw new Error(`expected IP addresses or CIDR ranges, got ${JSON.stringify(e)}`);
    }
    return e;
  });
}

/** `[console] allowed_origins`: host, host:port or scheme://host[:port] (see allowed-origin.ts). */
export function parseAllowedOrigins(raw: string): readonly string[] {
  return parseListOf(raw, (e) => {
    parseAllowedOrigin(e);
    return e;
  });
}

export function parseString(raw: string): string {
  return raw.trim();
}

export function oneOf<const V extends string>(values: readonly V[]): (raw: string) => V {
  return (raw) => {
    const v = raw.trim();
    if ((values as readonly string[]).includes(v)) return v as V;
    throw new Error(`expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
  };
}

export const AUTH_SCHEMES = ['none', 'vnc', 'vencrypt'] as const;

function parseAuthSchemes(raw: string): readonly (typeof AUTH_SCHEMES)[number][] {
  if (parseList(raw).length === 0) throw new Error(`expected at least one of ${AUTH_SCHEMES.join(', ')}`);
  return parseListOf(raw, oneOf(AUTH_SCHEMES));
}

export const TOKEN_STORE_BACKENDS = ['sqlite', 'memory', 'redis', 'memcached', 'postgresql', 'mysql'] as const;
/** oslo.cache / dogpile backend names operators carry over from nova.conf, mapped to ours. */
export const TOKEN_STORE_BACKEND_ALIASES: Readonly<Record<string, (typeof TOKEN_STORE_BACKENDS)[number]>> = {
  'oslo_cache.memcache_pool': 'memcached',
  'dogpile.cache.memcached': 'memcached',
  'dogpile.cache.pymemcache': 'memcached',
  'dogpile.cache.bmemcached': 'memcached',
  'dogpile.cache.redis': 'redis',
  'dogpile.cache.redis_sentinel': 'redis',
};

function parseBackend(raw: string): (typeof TOKEN_STORE_BACKENDS)[number] {
  const alias = TOKEN_STORE_BACKEND_ALIASES[raw.trim()];
  return alias ?? oneOf(TOKEN_STORE_BACKENDS)(raw);
}
export const COMPUTE_DRIVERS = ['static', 'libvirt'] as const;

export const SCHEMA = {
  DEFAULT: {
    debug: option(parseBool, false, 'Log at debug level (tokens are still never logged).'),
    state_path: option(parseString, '', 'Directory for persistent state (SQLite token store, generated API key).',
      '/var/lib/porthole as root, else ~/.local/state/porthole'),
    ssl_only: option(parseBool, false, 'Refuse to start the console proxy without TLS (needs cert and key).'),
    cert: option(parseString, '', 'PEM certificate (chain) for TLS on the console proxy; re-read on SIGHUP or when the file changes.'),
    key: option(parseString, '', 'PEM private key for cert.'),
    log_file: option(parseString, '',
      'Write the log to this file (appended; reopened on SIGHUP for logrotate) instead of standard output; relative to log_dir when that is set.'),
    log_dir: option(parseString, '',
      'Directory for log_file; alone, the log goes to <log_dir>/<command>.log (porthole-serve.log, nova-novncproxy.log), as oslo.log does.'),
    transport_url: option(parseString, '',
      'Nova\'s RabbitMQ (rabbit://user:password@host:5672/vhost, hosts comma-separated): nova mode asks nova-compute over it whether a token\'s port is still the instance\'s ([porthole] nova_validate_console_port).'),
    control_exchange: option(parseString, 'nova', 'Nova\'s RPC exchange on RabbitMQ, as in nova.conf.'),
    rpc_response_timeout: option(intIn(1, 3600), 60, 'Seconds to wait for nova-compute\'s answer to validate_console_port, as in nova.conf.'),
  },
  oslo_messaging_rabbit: {
    ssl: option(parseBool, false, 'TLS to RabbitMQ (amqps), as in nova.conf.'),
    ssl_ca_file: option(parseString, '', 'CA bundle that signed RabbitMQ\'s certificate.'),
    ssl_cert_file: option(parseString, '', 'Client certificate for RabbitMQ, if it asks for one.'),
    ssl_key_file: option(parseString, '', 'Private key of ssl_cert_file.'),
  },
  vnc: {
    enabled: option(parseBool, true, 'Serve VNC consoles; false refuses them (mint: 400 PH_ERR_CONSOLE_TYPE_UNSUPPORTED; proxy: close 4400), as in Nova.'),
    novncproxy_host: option(parseHost, '0.0.0.0', 'Address the console proxy (noVNC pages + WebSocket) listens on.'),
    novncproxy_port: option(parseListenPort, 6080, 'Port the console proxy listens on.'),
    novncproxy_base_url: option(parseHttpUrl, 'http://127.0.0.1:6080/vnc_lite.html',
      'Public URL of the console page; the API appends ?token=… to it. Its scheme and host decide which Origin is accepted.'),
    server_listen: option(parseHost, '127.0.0.1', 'Address VNC servers on this hypervisor should listen on (used by audit).'),
    server_proxyclient_address: option(parseHost, '127.0.0.1',
      "The hypervisor's management address the proxy uses to reach its VNC servers."),
    auth_schemes: option(parseAuthSchemes, ['none'] as readonly (typeof AUTH_SCHEMES)[number][],
      'Ordered security types the proxy may use towards VNC servers: none, vnc (password from the inventory or libvirt), ' +
      'vencrypt (TLS with X.509 certificates, QEMU\'s tls-creds-x509; X509Vnc adds the password). ' +
      'With only none the browser talks RFB to the VNC server directly; otherwise the proxy authenticates and offers the browser None.'),
    vencrypt_ca_certs: option(parseString, '', 'PEM CA bundle that VNC servers\' certificates must chain to (auth scheme vencrypt); re-read on SIGHUP.'),
    vencrypt_client_cert: option(parseString, '', 'PEM client certificate the proxy presents to VNC servers that verify peers (QEMU verify-peer=on).'),
    vencrypt_client_key: option(parseString, '', 'PEM private key for vencrypt_client_cert.'),
    vencrypt_verify_hostname: option(parseBool, true,
      'Require the VNC server\'s certificate to name the address the proxy connects to (Nova does not check this).'),
  },
  serial_console: {
    enabled: option(parseBool, false, 'Serve serial consoles: the WebSocket listener on serialproxy_host:serialproxy_port (as nova-serialproxy) and the /serial.html page on the console proxy.'),
    base_url: option(parseWsUrl, 'ws://127.0.0.1:6083/',
      'Public WebSocket URL of the serial listener; the API returns it with ?token=… as the console `url` (as Nova does). Its scheme (ws/wss) decides the Origin scheme accepted.'),
    serialproxy_host: option(parseHost, '0.0.0.0', 'Address the serial console listener (WebSocket only, as nova-serialproxy) listens on.'),
    serialproxy_port: option(parseListenPort, 6083, 'Port the serial console listener listens on.'),
    proxyclient_address: option(parseHost, '127.0.0.1',
      'The hypervisor\'s management address the proxy uses for serial consoles whose libvirt <source host> is a wildcard (0.0.0.0, ::).'),
    port_range: option(parsePortRange, { start: 10000, stop: 20000 } as { readonly start: number; readonly stop: number },
      'Range start:stop (stop exclusive) Nova allocates TCP serial ports from; `porthole audit` flags serial consoles outside it.', '10000:20000'),
  },
  spice: {
    enabled: option(parseBool, false, 'Serve SPICE consoles: the spice-html5 page and its WebSockets on html5proxy_host:html5proxy_port (as nova-spicehtml5proxy); the proxy does the SPICE ticket itself.'),
    html5proxy_base_url: option(parseHttpUrl, 'http://127.0.0.1:6082/spice_auto.html',
      'Public URL of the SPICE console page; the API appends ?token=… to it. Its scheme and host decide which Origin is accepted.'),
    html5proxy_host: option(parseHost, '0.0.0.0', 'Address the SPICE console proxy (spice-html5 page + WebSockets) listens on.'),
    html5proxy_port: option(parseListenPort, 6082, 'Port the SPICE console proxy listens on.'),
    server_listen: option(parseHost, '127.0.0.1', 'Address SPICE servers on this hypervisor should listen on (used by audit).'),
    server_proxyclient_address: option(parseHost, '127.0.0.1', "The hypervisor's management address the proxy uses to reach its SPICE servers."),
    ca_certs: option(parseString, '',
      'PEM CA bundle that SPICE servers\' TLS certificates (QEMU x509-dir ca-cert.pem / libvirt spice_tls_x509_cert_dir) must chain to; with it the proxy links channels QEMU secures on tlsPort. Empty: those channels are refused (4032).'),
    verify_hostname: option(parseBool, true, 'Require the SPICE server\'s certificate to name the address the proxy connects to.'),
    html5_dir: option(parseString, '/usr/share/spice-html5', 'Where Debian\'s spice-html5 package installed the page (apt-get install spice-html5); served from there, never copied.'),
  },
  consoleauth: {
    token_ttl: option(intIn(1, 7 * 24 * 3600), 600, 'Seconds a console token stays valid (reusable until then).'),
    enforce_session_timeout: option(parseBool, false, 'Close open consoles when their token expires (as Nova\'s option of the same name).'),
  },
  console: {
    ssl_minimum_version: option(oneOf(['default', 'tlsv1_2', 'tlsv1_3'] as const), 'default',
      'Lowest TLS version the console proxy accepts (default: TLS 1.2).'),
    ssl_ciphers: option(parseString, '', 'OpenSSL cipher list for TLS 1.2 on the console proxy; empty: Node\'s defaults.'),
    trusted_proxies: option(parseAddressList, [] as readonly string[],
      'Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For and X-Forwarded-Host are believed (for the client address in logs and limits, and the Origin check). Others\' are ignored.'),
    allowed_origins: option(parseAllowedOrigins, [] as readonly string[],
      'Extra origins allowed in the Origin header of WebSocket upgrades, besides the Host the browser used: host (any port), host:port, or scheme://host[:port] (exactly that origin).'),
    connect_timeout: option(intIn(1, 300), 5, 'Seconds to wait for a VNC server to accept the TCP connection.'),
    ping_interval: option(intIn(1, 3600), 20,
      'Seconds between WebSocket pings; keeps reverse proxies from cutting idle consoles and finds dead browsers.'),
    max_sessions: option(intIn(0, 1_000_000), 1000, 'Open consoles this proxy node accepts at once (0: no limit).'),
    max_sessions_per_instance: option(intIn(0, 10_000), 10, 'Open consoles per instance on this node (0: no limit).'),
    idle_timeout: option(intIn(0, 7 * 24 * 3600), 0, 'Close a console after this many seconds without a byte either way (0: never).'),
    max_message_size: option(intIn(1024, 64 * 1024 * 1024), 4 * 1024 * 1024, 'Largest WebSocket message accepted from a browser, in bytes (larger: close 1009).'),
    handshake_timeout: option(intIn(1, 300), 10,
      'Seconds a client may take to send its HTTP request headers (slowloris) and to finish the RFB handshake.'),
    max_failed_tokens: option(intIn(0, 100_000), 20,
      'Unknown tokens (guesses) per source address per minute before further upgrades get HTTP 429 (0: no limit). Revoked and expired tokens do not count.'),
    token_recheck_interval: option(intIn(0, 3600), 5,
      'Seconds between re-checks of every open console\'s token in the store, so a revoke on another node closes it (4004); 0: only the node that got the revoke closes its consoles. Not done with the memory store, which no other node shares.'),
    shutdown_grace_period: option(intIn(0, 86400), 10,
      'On SIGTERM, seconds open consoles may keep running before they are closed with 1001.'),
    max_bandwidth: option(parseSize, 0,
      'Bytes per second each way per console connection (512K, 1M…; 0: no cap). Shaped by pausing reads, never by dropping or buffering. VNC and SPICE (per channel); serial consoles are not capped.'),
    record: option(parseBool, false, 'Record every VNC and serial console (else only those minted with "record": true). Recordings hold what was on screen: see docs/recording.md.'),
    record_dir: option(parseString, '', 'Directory of session recordings (created 0700; files 0600).', '<state_path>/recordings'),
    record_input: option(parseBool, false,
      'Also record what the viewer sent: VNC client messages (keystrokes, pointer, clipboard) and serial keystrokes (asciicast "i" events). Off: output only (passwords typed are then not in the file, unless the screen echoes them).'),
    record_max_file_size: option(parseSize, 512 * 1024 * 1024, 'Largest recording file (100M, 2G…); a console whose recording reaches it is closed (PH_ERR_RECORDING_LIMIT).'),
    record_max_total_size: option(parseSize, 10 * 1024 * 1024 * 1024,
      'Most bytes all recordings may take; when reached, consoles that must be recorded are refused (PH_ERR_RECORDING_UNAVAILABLE) until old recordings are removed.'),
  },
  cache: {
    backend: option(parseBackend, 'sqlite',
      'Token store: sqlite (persistent, one node), memory (one node), or redis / memcached / postgresql / mysql (shared by several nodes). oslo.cache names such as dogpile.cache.memcached are accepted.'),
    sqlite_path: option(parseString, '', 'SQLite token database file.', '<state_path>/tokens.sqlite'),
    redis_server: option(parseString, '', 'Redis for backend = redis: host:port or redis://[:password@]host:port[/db].'),
    redis_sentinels: option(parseList, [] as readonly string[],
      'Redis Sentinels (host:port,host:port) for backend = redis; used instead of redis_server, as oslo.cache does.'),
    redis_sentinel_service_name: option(parseString, 'mymaster', 'Name of the Redis primary the Sentinels monitor.'),
    memcache_servers: option(parseList, [] as readonly string[],
      'memcached servers for backend = memcached: host:port,host:port (order does not matter; every node must list the same servers).'),
    connection: option(parseString, '',
      'Database for backend = postgresql or mysql: postgresql://user:pass@host:port/db or mysql://user:pass@host:port/db (mysql+pymysql:// accepted).'),
  },
  api: {
    host: option(parseHost, '127.0.0.1', 'Address the REST API listens on; keep it on loopback or a management network.'),
    port: option(parseListenPort, 6070, 'Port of the REST API.'),
    auth_keys_file: option(parseString, '',
      'File with one API key per line, `name:key` (the name is recorded as who minted a console) or a plain key (named key1, key2… by its line). Empty: `serve` generates a key into <state_path>/api-key (mode 0600).'),
    peers: option(parseList, [] as readonly string[],
      'API base URLs of every node (http://10.0.0.1:6070,…), for `porthole sessions`: each node lists and closes its own consoles; the same API key must work on each.'),
  },
  audit: {
    file: option(parseString, '',
      'Append one JSON line per console event (minted, opened, refused, closed, revoked, killed) to this file, mode 0600, reopened on SIGHUP (logrotate); empty: no audit file. Fields: docs/audit.md.'),
    syslog: option(parseBool, false, 'Also send each audit line to syslog (through util-linux `logger`), tag porthole-audit.'),
    syslog_address: option(parseSyslogAddress, '/dev/log', 'Where audit lines go with syslog = true: a Unix socket path (/dev/log) or host:port (UDP, RFC 5424).'),
    syslog_facility: option(oneOf(['auth', 'authpriv', 'daemon', 'user', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'] as const), 'authpriv',
      'Syslog facility of audit lines (authpriv: where sshd\'s logins go, readable by root only on Debian).'),
  },
  porthole: {
    node_name: option(parseString, '', 'This node\'s name in audit events and the session list.', '<the host name>'),
    metrics_listen: option(parseListenAddress, '',
      'Also serve Prometheus /metrics (no key) on this host:port, e.g. 10.0.0.5:9180; empty: only on the API listener (GET /metrics, no key needed).'),
    metrics_instance_labels: option(parseBool, false,
      'Label porthole_sessions_open with instance names (off by default: names can be customer data and make series unbounded).'),
    peers: option(parseList, [] as readonly string[],
      'Console proxy base URLs of every node of this deployment (http://10.0.0.1:6080,…), for `porthole doctor`.'),
    token_source: option(oneOf(['porthole', 'nova'] as const), 'porthole',
      'Where console tokens come from: porthole (minted by this API, kept in [cache]) or nova (minted by Nova, validated read-only in Nova\'s [database] connection).'),
    nova_validate_console_port: option(parseBool, true,
      'Nova mode: before each console, ask the instance\'s nova-compute over RPC ([DEFAULT] transport_url) whether the port is still its console, as nova-novncproxy does; false relies on the instance row alone.'),
  },
  database: {
    connection: option(parseString, '',
      'Nova\'s database, as in nova.conf (mysql+pymysql://…, postgresql://…, sqlite:////var/lib/nova/nova.sqlite); read for [porthole] token_source = nova (SELECT on console_auth_tokens and instances only).'),
  },
  compute: {
    driver: option(oneOf(COMPUTE_DRIVERS), 'static',
      'How instances are found: static (an inventory file) or libvirt (live domain XML from libvirtd on this host).'),
  },
  libvirt: {
    connection_uri: option(parseString, 'qemu:///system', 'libvirt connection URI used through virsh.'),
    poll_interval: option(intIn(1, 3600), 5,
      'Seconds between checks that domains with live console tokens still run; tokens of stopped or undefined domains are revoked.'),
  },
  static: {
    inventory_file: option(parseString, '', 'INI file of instances: one [name] section with host, port, optional uuid and protocol.'),
  },
} as const;

export type Schema = typeof SCHEMA;
export type GroupName = keyof Schema;
export type Config = {
  readonly [G in GroupName]: { readonly [O in keyof Schema[G]]: Schema[G][O] extends OptionSpec<infer T> ? T : never };
};

/** Old names still accepted, with a warning naming the new option. */
export interface DeprecatedName {
  readonly group: string;
  readonly name: string;
  readonly to: { readonly group: GroupName; readonly name: string };
}

export const DEPRECATED_NAMES: readonly DeprecatedName[] = [
  { group: 'DEFAULT', name: 'vnc_enabled', to: { group: 'vnc', name: 'enabled' } },
  { group: 'DEFAULT', name: 'vncserver_listen', to: { group: 'vnc', name: 'server_listen' } },
  { group: 'DEFAULT', name: 'vncserver_proxyclient_address', to: { group: 'vnc', name: 'server_proxyclient_address' } },
  { group: 'DEFAULT', name: 'novncproxy_base_url', to: { group: 'vnc', name: 'novncproxy_base_url' } },
  { group: 'DEFAULT', name: 'novncproxy_host', to: { group: 'vnc', name: 'novncproxy_host' } },
  { group: 'DEFAULT', name: 'novncproxy_port', to: { group: 'vnc', name: 'novncproxy_port' } },
  { group: 'vnc', name: 'vnc_enabled', to: { group: 'vnc', name: 'enabled' } },
  { group: 'vnc', name: 'vncserver_listen', to: { group: 'vnc', name: 'server_listen' } },
  { group: 'vnc', name: 'vncserver_proxyclient_address', to: { group: 'vnc', name: 'server_proxyclient_address' } },
];
