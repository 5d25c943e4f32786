/**
 * Composition root: config → logger → store → driver → API + proxy. The only place that picks
 * concrete backends. Nothing here prints or exits; the CLI does that.
 */
import { existsSync, readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ConsoleService } from './api/consoles.js';
import { loadApiKeys, type ApiKeySource } from './api/keys.js';
import { createApiServer } from './api/server.js';
import type { ComputeDriver } from './compute/driver.js';
import type { InventoryEntry } from './compute/inventory.js';
import { createComputeDriver } from './compute/create-driver.js';
import type { Config } from './config/schema.js';
import { PortholeError } from './errors.js';
import { consolePortCheck } from './nova/console-port-check.js';
import { OsloRpcClient, parseTransportUrl } from './nova/oslo-rpc.js';
import { TrustedProxies } from './proxy/forwarded.js';
import { ConsoleProxy, type ProxyListener, type ProxyTlsOptions } from './proxy/server.js';
import type { ConsoleSession } from './proxy/session.js';
import { SessionRegistry } from './sessions/registry.js';
import { GatewayMetrics } from './metrics/metrics.js';
import { AuditLog, auditConsoleEvents } from './audit/audit-log.js';
import { fanOutEvents } from './console/events.js';
import { Recordings } from './recording/recorder.js';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect as netConnect } from 'node:net';
import type { ConnectFn, ProtocolHandler } from './console/handler.js';
import type { ConsoleProtocol, ConsoleType } from './console/types.js';
import { SerialHandler } from './protocols/serial/handler.js';
import { SpiceHandler } from './protocols/spice/handler.js';
import { VncHandler } from './protocols/vnc/handler.js';
import type { UpstreamTls } from './protocols/upstream-tls.js';
import { createTokenSource, createTokenStore } from './tokens/create-store.js';
import { currentOpenFilesLimit, fdLimitWarning } from './ops/fd-limit.js';
import { storeFingerprint, type TokenSource, type TokenStore, type TokenStoreClock } from './tokens/store.js';
import { loadUnmask } from './protocols/client-frames.js';
import { novncRoot, packageDirOf, packageRoot } from './web/assets.js';
import { ADMIN_HEADERS, PLAYBACK_HEADERS, StaticSite } from './web/static-site.js';

export const PURGE_INTERVAL_MS = 60_000;

export interface GatewayOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Instances that exist besides the inventory file (the demo VM). */
  readonly builtinInstances?: readonly InventoryEntry[];
  /** Create <state_path>/api-key when no key file exists (serve does; one-shot CLI commands don't). */
  readonly generateApiKey?: boolean;
  readonly clock?: TokenStoreClock;
  readonly connect?: ConnectFn;
  /** Override the relay's WebSocket high-water mark (benchmarks and slow-reader tests). */
  readonly wsHighWaterBytes?: number;
  /**
   * One console listener only, no API and no API key: `vnc` for `porthole nova-novncproxy`, `serial`
   * for `porthole nova-serialproxy` (Nova's proxy binaries).
   */
  readonly proxyOnly?: ConsoleKind | undefined;
}

/** The console listeners: Nova's three proxies (novncproxy, spicehtml5proxy, serialproxy). */
export type ConsoleKind = 'vnc' | 'spice' | 'serial';

export interface GatewayAddresses {
  readonly api: string;
  readonly proxy: string;
  readonly consoleBaseUrl: string;
  /** The serial console listener (`[serial_console] enabled`), else undefined. */
  readonly serialProxy?: string | undefined;
  readonly serialBaseUrl?: string | undefined;
  /** The SPICE console listener (`[spice] enabled`), else undefined. */
  readonly spiceProxy?: string | undefined;
}

const defaultConnect: ConnectFn = (target) => netConnect({ host: target.host, port: target.port, noDelay: true, ...(target.onread ? { onread: target.onread } : {}) });

/** Where the serial page lives: beside the VNC page of `novncproxy_base_url`. Pure. */
export function serialPageUrl(novncproxyBaseUrl: string): string {
  return new URL('serial.html', novncproxyBaseUrl).toString();
}

/** TLS material for the console proxy, or undefined when no cert is configured. @throws PortholeError naming the file. */
async function readTls(config: Config): Promise<ProxyTlsOptions | undefined> {
  const { cert, key } = config.DEFAULT;
  if (cert === '') return undefined;
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new PortholeError('PH_ERR_CONFIG_INVALID', `[DEFAULT] ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  };
  const tls: ProxyTlsOptions = {
    cert: await read(cert, 'cert'),
    key: await read(key, 'key'),
    minVersion: config.console.ssl_minimum_version === 'tlsv1_3' ? 'TLSv1.3' : 'TLSv1.2',
    ciphers: config.console.ssl_ciphers || undefined,
  };
  try {
    createSecureContext({ cert: tls.cert, key: tls.key });
  } catch (err) {
    throw new PortholeError('PH_ERR_CONFIG_INVALID', `[DEFAULT] cert/key ${cert}: ${(err as Error).message}`, { cause: err });
  }
  return tls;
}

/** TLS towards VNC servers (auth scheme vencrypt), or undefined when not configured. @throws PortholeError naming the file. */
async function readUpstreamTls(config: Config): Promise<UpstreamTls | undefined> {
  const v = config.vnc;
  if (!v.auth_schemes.includes('vencrypt') || v.vencrypt_ca_certs === '') return undefined;
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new PortholeError('PH_ERR_CONFIG_INVALID', `[vnc] ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  };
  const ca = await read(v.vencrypt_ca_certs, 'vencrypt_ca_certs');
  const client = v.vencrypt_client_cert === '' ? {} : {
    cert: await read(v.vencrypt_client_cert, 'vencrypt_client_cert'),
    key: await read(v.vencrypt_client_key, 'vencrypt_client_key'),
  };
  try {
    return {
      secureContext: createSecureContext({ ca, ...client, minVersion: 'TLSv1.2' }),
      verifyHostname: v.vencrypt_verify_hostname,
      hasClientCertificate: v.vencrypt_client_cert !== '',
    };
  } catch (err) {
    throw new PortholeError('PH_ERR_CONFIG_INVALID', `[vnc] vencrypt_ca_certs/vencrypt_client_cert/vencrypt_client_key: ${(err as Error).message}`, { cause: err });
  }
}

/** TLS towards SPICE servers' tlsPort (`[spice] ca_certs`), or undefined. @throws PortholeError naming the file. */
async function readSpiceTls(config: Config): Promise<UpstreamTls | undefined> {
  const file = config.spice.ca_certs;
  if (file === '') return undefined;
  let ca: Buffer;
  try {
    ca = await readFile(file);
    return { secureContext: createSecureContext({ ca, minVersion: 'TLSv1.2' }), verifyHostname: config.spice.verify_hostname, hasClientCertificate: false };
  } catch (err) {
    throw new PortholeError('PH_ERR_CONFIG_INVALID', `[spice] ca_certs ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** Files whose change re-reads TLS material (certificate renewals replace them). */
function tlsFiles(config: Config): string[] {
  const { cert, key } = config.DEFAULT;
  const v = config.vnc;
  return [cert, key, ...(v.auth_schemes.includes('vencrypt') ? [v.vencrypt_ca_certs, v.vencrypt_client_cert, v.vencrypt_client_key] : [])].filter((f) => f !== '');
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}


export class Gateway {
  readonly config: Config;
  readonly logger: Logger;
  readonly store: TokenStore;
  /** Where the proxy validates tokens: `store`, or Nova's database in nova mode. */
  readonly tokens: TokenSource;
  readonly driver: ComputeDriver;
  readonly consoles: ConsoleService;
  /** Open consoles of this node: the proxy adds them, the API lists and closes them. */
  readonly sessions: SessionRegistry<ConsoleSession>;
  /** Prometheus metrics of this gateway (GET /metrics on the API, and `[porthole] metrics_listen`). */
  readonly metrics: GatewayMetrics;
  readonly apiKeys: ApiKeySource;
  /** `[audit]`: one JSON line per console event. */
  readonly audit: AuditLog;
  /** Session recordings in `[console] record_dir`. */
  readonly recordings: Recordings;
  #metricsServer: HttpServer | undefined;
  readonly #api: FastifyInstance;
  readonly #proxy: ConsoleProxy;
  readonly #handlers: ReadonlyMap<ConsoleProtocol, ProtocolHandler>;
  readonly #version: string;
  readonly #proxyOnly: boolean;
  /** Which console listener each of the proxy's listeners is, in order. */
  readonly #listenerKinds: readonly ConsoleKind[];
  #purgeTimer: NodeJS.Timeout | undefined;
  #watchedFiles: string[] = [];
  #upstreamTls: UpstreamTls | undefined;
  readonly #novaRpc: OsloRpcClient | undefined;

  private constructor(parts: {
    config: Config; logger: Logger; store: TokenStore; tokens: TokenSource; driver: ComputeDriver; apiKeys: ApiKeySource; site: StaticSite; options: GatewayOptions;
    spiceSite: StaticSite | undefined; spiceTls: UpstreamTls | undefined;
    tls: ProxyTlsOptions | undefined; upstreamTls: UpstreamTls | undefined; novaRpc: OsloRpcClient | undefined; audit: AuditLog;
    adminSite: { serve(req: IncomingMessage, res: ServerResponse): boolean } | undefined;
  }) {
    this.audit = parts.audit;
    const c = parts.config.console;
    this.recordings = new Recordings({
      dir: c.record_dir, maxFileBytes: c.record_max_file_size, maxTotalBytes: c.record_max_total_size, recordInput: c.record_input,
      logger: parts.logger.child({ component: 'recording' }),
    });
    this.config = parts.config;
    this.#novaRpc = parts.novaRpc;
    this.#upstreamTls = parts.upstreamTls;
    this.logger = parts.logger;
    this.store = parts.store;
    this.tokens = parts.tokens;
    this.driver = parts.driver;
    this.apiKeys = parts.apiKeys;
    this.#version = packageVersion();
    this.consoles = new ConsoleService({
      driver: parts.driver,
      store: parts.store,
      baseUrl: parts.config.vnc.novncproxy_base_url,
      serial: parts.config.serial_console.enabled
        ? { baseUrl: parts.config.serial_console.base_url, pageUrl: serialPageUrl(parts.config.vnc.novncproxy_base_url) }
        : undefined,
      spiceBaseUrl: parts.config.spice.enabled ? parts.config.spice.html5proxy_base_url : undefined,
      tokenTtlMs: parts.config.consoleauth.token_ttl * 1000,
      vncEnabled: parts.config.vnc.enabled,
      novaMode: parts.config.porthole.token_source === 'nova',
      recordAll: parts.config.console.record,
      onRevoked: (keys) => this.#proxy.closeInstances(keys),
    });
    const health = () => this.health();
    this.sessions = new SessionRegistry<ConsoleSession>();
    this.metrics = new GatewayMetrics({ sessions: this.sessions, version: this.#version, instanceLabels: parts.config.porthole.metrics_instance_labels });
    this.#api = createApiServer({
      consoles: this.consoles, sessions: this.sessions, driver: parts.driver, apiKeys: parts.apiKeys.entries, logger: parts.logger.child({ component: 'api' }), health,
      metrics: this.metrics, node: parts.config.porthole.node_name, adminSite: parts.adminSite, recordings: this.recordings, ...(this.audit.enabled ? { audit: this.audit } : {}),
    });
    const events = this.audit.enabled
      ? fanOutEvents([this.metrics.events, auditConsoleEvents(this.audit)], (err) => parts.logger.error({ err }, 'bug: a console event observer threw'))
      : this.metrics.events;
    const opts = parts.options;
    this.#proxyOnly = opts.proxyOnly !== undefined;
    const config = parts.config;
    const connect = opts.connect ?? defaultConnect;
    // Browser frames on relaying consoles are read by the relay's own reader (protocols/client-frames.ts).
    const unmask = loadUnmask();
    const handlers = new Map<ConsoleProtocol, ProtocolHandler>([['vnc', new VncHandler({
      connect,
      authSchemes: config.vnc.auth_schemes.every((s) => s === 'none') ? undefined : config.vnc.auth_schemes,
      upstreamTls: () => this.#upstreamTls,
      wsHighWaterBytes: opts.wsHighWaterBytes,
      maxBytesPerSecond: config.console.max_bandwidth,
      unmask,
    })]]);
    const serial = config.serial_console;
    if (serial.enabled) {
      handlers.set('serial', new SerialHandler({ connect, logger: parts.logger.child({ component: 'serial' }), wsHighWaterBytes: opts.wsHighWaterBytes }));
    }
    const spice = config.spice;
    if (spice.enabled) {
      const spiceTls = parts.spiceTls;
      handlers.set('spice', new SpiceHandler({ connect, wsHighWaterBytes: opts.wsHighWaterBytes, maxBytesPerSecond: config.console.max_bandwidth, unmask, tls: spiceTls === undefined ? undefined : () => spiceTls }));
    }
    this.#handlers = handlers;
    // The console proxy also takes serial tokens, for /serial.html; in nova mode it is exactly
    // nova-novncproxy (Nova's serial URLs point at the serial listener, as nova-serialproxy's).
    const pageTypes: ConsoleType[] = serial.enabled && config.porthole.token_source !== 'nova' ? ['novnc', 'serial'] : ['novnc'];
    const wanted = (kind: ConsoleKind) => opts.proxyOnly === undefined || opts.proxyOnly === kind;
    const listeners: Array<ProxyListener & { kind: ConsoleKind }> = [];
    if (wanted('vnc')) {
      listeners.push({
        kind: 'vnc', name: 'the console proxy ([vnc] novncproxy_host/port)', host: config.vnc.novncproxy_host, port: config.vnc.novncproxy_port,
        site: parts.site, consoleTypes: pageTypes, defaultScheme: new URL(config.vnc.novncproxy_base_url).protocol,
      });
    }
    if (spice.enabled && wanted('spice') && parts.spiceSite !== undefined) {
      listeners.push({
        kind: 'spice', name: 'the SPICE console proxy ([spice] html5proxy_host/port)', host: spice.html5proxy_host, port: spice.html5proxy_port,
        site: parts.spiceSite, consoleTypes: ['spice-html5'], defaultScheme: new URL(spice.html5proxy_base_url).protocol,
        connectEndpoint: true,
      });
    }
    if (serial.enabled && wanted('serial')) {
      listeners.push({
        kind: 'serial', name: 'the serial console proxy ([serial_console] serialproxy_host/port)', host: serial.serialproxy_host, port: serial.serialproxy_port,
        consoleTypes: ['serial'], defaultScheme: new URL(serial.base_url).protocol,
      });
    }
    this.#listenerKinds = listeners.map((l) => l.kind);
    this.#proxy = new ConsoleProxy({
      listeners,
      handlers,
      events,
      recordings: this.recordings,
      recordAll: parts.config.console.record,
      store: parts.tokens,
      sessions: this.sessions,
      logger: parts.logger.child({ component: 'proxy' }),
      allowedOrigins: parts.config.console.allowed_origins,
      trustedProxies: new TrustedProxies(parts.config.console.trusted_proxies),
      connectTimeoutMs: parts.config.console.connect_timeout * 1000,
      pingIntervalMs: parts.config.console.ping_interval * 1000,
      health,
      // In nova mode the target and the instance check come from Nova's rows, not from this node's
      // driver; the port is confirmed by the instance's nova-compute, as nova-novncproxy does.
      ...(parts.driver.prepareConnect && parts.config.porthole.token_source !== 'nova' ? { prepareConnect: parts.driver.prepareConnect.bind(parts.driver) } : {}),
      ...(parts.novaRpc ? { prepareConnect: consolePortCheck({ rpc: parts.novaRpc, timeoutMs: parts.config.DEFAULT.rpc_response_timeout * 1000 }) } : {}),
      ...(parts.tls ? { tls: parts.tls } : {}),
      maxPayloadBytes: parts.config.console.max_message_size,
      refuseVnc: !parts.config.vnc.enabled,
      limits: {
        maxSessions: parts.config.console.max_sessions,
        maxSessionsPerInstance: parts.config.console.max_sessions_per_instance,
        idleTimeoutMs: parts.config.console.idle_timeout * 1000,
        enforceSessionTimeout: parts.config.consoleauth.enforce_session_timeout,
        handshakeTimeoutMs: parts.config.console.handshake_timeout * 1000,
        maxFailedTokens: parts.config.console.max_failed_tokens,
        // The memory store lives in this process only, so every revoke of its tokens comes through
        // this node's API, which closes the consoles at once (closeInstances): nothing to re-check.
        tokenRecheckMs: parts.tokens.backend === 'memory' ? 0 : parts.config.console.token_recheck_interval * 1000,
      },
    });
  }

  /** Build every component (opens the store, reads the inventory and keys); listens on nothing yet. */
  static async create(options: GatewayOptions): Promise<Gateway> {
    const { config, logger } = options;
    if (options.proxyOnly === 'serial' && !config.serial_console.enabled) {
      throw new PortholeError('PH_ERR_CONFIG_INVALID', 'nova-serialproxy needs [serial_console] enabled = true (as Nova\'s nova-serialproxy, which exits without it)');
    }
    if (options.proxyOnly === 'spice' && !config.spice.enabled) {
      throw new PortholeError('PH_ERR_CONFIG_INVALID', 'nova-spicehtml5proxy needs [spice] enabled = true');
    }
    const apiKeys = options.proxyOnly !== undefined
      ? { keys: [], entries: [], file: '', generated: false }
      : await loadApiKeys(config.api.auth_keys_file, config.DEFAULT.state_path, options.generateApiKey ?? false);
    const tls = await readTls(config);
    const upstreamTls = await readUpstreamTls(config);
    const audit = new AuditLog({
      file: config.audit.file, syslog: config.audit.syslog, syslogAddress: config.audit.syslog_address, syslogFacility: config.audit.syslog_facility,
      node: config.porthole.node_name, logger: logger.child({ component: 'audit' }),
    });
    let store: TokenStore;
    try {
      store = await createTokenStore(config, options.clock);
    } catch (err) {
      await audit.close();
      throw err;
    }
    let tokens: TokenSource | undefined;
    try {
      tokens = await createTokenSource(config, store, options.clock);
      const driver = await createComputeDriver(config, logger.child({ component: 'compute' }), store, options.builtinInstances ?? []);
      const site = await StaticSite.load(
        [
          // The SPICE page lives on the SPICE listener, /admin on the API listener only.
          { prefix: '/', dir: join(packageRoot(), 'web'), include: (rel) => !rel.includes('spice') && !rel.startsWith('admin/') },
          { prefix: '/novnc/', dir: novncRoot(), include: (rel) => rel.startsWith('core/') || rel.startsWith('vendor/') },
          // xterm.js for /serial.html, from its npm packages (never copied into the repo).
          { prefix: '/xterm/', dir: packageDirOf('@xterm/xterm'), include: (rel) => rel === 'lib/xterm.mjs' || rel === 'css/xterm.css' },
          { prefix: '/xterm-addon-fit/', dir: packageDirOf('@xterm/addon-fit'), include: (rel) => rel === 'lib/addon-fit.mjs' },
        ],
        { '/': '/vnc_lite.html', '/vnc_auto.html': '/vnc_lite.html' },
        ['/serial.html'],
      );
      const spiceSite = config.spice.enabled ? await loadSpiceSite(config.spice.html5_dir) : undefined;
      const spiceTls = config.spice.enabled ? await readSpiceTls(config) : undefined;
      const novaRpc = config.porthole.token_source === 'nova' && config.porthole.nova_validate_console_port ? await createNovaRpc(config) : undefined;
      const adminSite = options.proxyOnly === undefined ? await loadAdminSite() : undefined;
      return new Gateway({ config, logger, store, tokens, driver, apiKeys, site, spiceSite, spiceTls, options, tls, upstreamTls, novaRpc, audit, adminSite });
    } catch (err) {
      if (tokens !== undefined && tokens !== store) await tokens.close();
      await store.close();
      await audit.close();
      throw err;
    }
  }

  /**
   * Re-read the TLS material — [DEFAULT] cert/key for browsers, [vnc] vencrypt_* towards VNC
   * servers — and use it for new connections (SIGHUP, or the files changed). Open consoles are not
   * touched. A broken new set is logged and the old one stays in use.
   */
  async reloadTls(): Promise<boolean> {
    let reloaded = false;
    try {
      const tls = await readTls(this.config);
      if (tls) {
        this.#proxy.setTls(tls);
        this.logger.info({ cert: this.config.DEFAULT.cert }, 'TLS certificate reloaded');
        reloaded = true;
      }
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'TLS certificate not reloaded, keeping the current one');
    }
    try {
      const upstream = await readUpstreamTls(this.config);
      if (upstream) {
        this.#upstreamTls = upstream;
        this.logger.info({ ca: this.config.vnc.vencrypt_ca_certs }, 'VeNCrypt certificates reloaded');
        reloaded = true;
      }
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'VeNCrypt certificates not reloaded, keeping the current ones');
    }
    return reloaded;
  }

  async health(): Promise<{ ok: boolean } & Record<string, unknown>> {
    const [store, driver] = await Promise.all([
      this.tokens.health().catch((err: unknown) => ({ backend: this.tokens.backend, fingerprint: storeFingerprint(this.tokens.identity), ok: false, detail: (err as Error).message })),
      this.driver.health(),
    ]);
    return { ok: store.ok && driver.ok, version: this.#version, store, driver };
  }

  async start(): Promise<GatewayAddresses> {
    const listen = async <T>(what: string, host: string, port: number, fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (err) {
        throw new PortholeError('PH_ERR_LISTEN_FAILED',
          `${what} cannot listen on ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
      }
    };
    const { api } = this.config;
    const addresses = await this.#proxy.listen(); // in the order of the listeners
    const addressOf = (kind: ConsoleKind) => addresses[this.#listenerKinds.indexOf(kind)];
    const proxyAddress = addressOf('vnc');
    const serialAddress = addressOf('serial');
    const spiceAddress = addressOf('spice');
    if (!this.#proxyOnly) await listen('API ([api] host/port)', api.host, api.port, () => this.#api.listen({ host: api.host, port: api.port }));
    const metricsListen = this.config.porthole.metrics_listen;
    if (metricsListen !== '') {
      const colon = metricsListen.lastIndexOf(':');
      const host = metricsListen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
      const port = Number(metricsListen.slice(colon + 1));
      const server = createHttpServer((req, res) => {
        if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
          res.writeHead(404, { 'Content-Type': 'text/plain' }).end('only GET /metrics here\n');
          return;
        }
        this.metrics.metrics().then(
          (text) => res.writeHead(200, { 'Content-Type': this.metrics.contentType }).end(text),
          (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${(err as Error).message}\n`),
        );
      });
      this.#metricsServer = server;
      await listen('metrics ([porthole] metrics_listen)', host, port, () => new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => { server.off('error', reject); resolve(); });
      }));
    }
    const apiAddress = this.#proxyOnly ? 'none (proxy only)' : this.#api.server.address();
    this.#purgeTimer = setInterval(() => {
      this.store.purgeExpired().then(
        (n) => { if (n > 0) this.logger.debug({ purged: n }, 'expired tokens purged'); },
        (err: unknown) => this.logger.error({ err }, 'purging expired tokens failed'),
      );
    }, PURGE_INTERVAL_MS);
    this.#purgeTimer.unref();
    const fdWarning = fdLimitWarning(this.config.console.max_sessions, currentOpenFilesLimit());
    if (fdWarning !== undefined) this.logger.warn({ code: 'PH_ERR_PROXY_FD_EXHAUSTED' }, fdWarning);
    const { cert } = this.config.DEFAULT;
    // Certificate renewals (certbot, cert-manager) replace the files; pick them up without a signal.
    const onChange = (cur: Stats, prev: Stats) => { if (cur.mtimeMs !== prev.mtimeMs) void this.reloadTls(); };
    this.#watchedFiles = tlsFiles(this.config);
    for (const f of this.#watchedFiles) watchFile(f, { interval: 1000, persistent: false }, onChange);
    const fmt = (a: { address: string; port: number }, scheme = 'http') => `${scheme}://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
    return {
      api: typeof apiAddress === 'object' && apiAddress !== null ? fmt(apiAddress) : String(apiAddress),
      proxy: proxyAddress === undefined ? 'none' : fmt(proxyAddress, cert === '' ? 'http' : 'https'),
      spiceProxy: spiceAddress === undefined ? undefined : fmt(spiceAddress, cert === '' ? 'http' : 'https'),
      serialProxy: serialAddress === undefined ? undefined : fmt(serialAddress, cert === '' ? 'ws' : 'wss'),
      serialBaseUrl: serialAddress === undefined ? undefined : this.config.serial_console.base_url,
      consoleBaseUrl: this.config.vnc.novncproxy_base_url,
    };
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Stop accepting, give open consoles `graceMs`, then close everything. */
  async close(graceMs = 0): Promise<void> {
    clearInterval(this.#purgeTimer);
    for (const f of this.#watchedFiles) unwatchFile(f);
    await Promise.all([this.#proxy.close(graceMs), this.#api.close(),
      new Promise<void>((resolve) => (this.#metricsServer === undefined ? resolve() : this.#metricsServer.close(() => resolve())))]);
    for (const handler of this.#handlers.values()) handler.close();
    await this.audit.close(); // after the proxy: every open console's close event is in it
    await Promise.all([this.driver.close(), this.store.close(), ...(this.tokens === this.store ? [] : [this.tokens.close()]), this.#novaRpc?.close()]);
  }
}

/** The API listener's `/admin` pages (sessions, recordings), from web/admin. */
async function loadAdminSite(): Promise<{ serve(req: IncomingMessage, res: ServerResponse): boolean }> {
  const admin = join(packageRoot(), 'web', 'admin');
  const site = await StaticSite.load(
    [
      { prefix: '/admin/', dir: admin, include: (rel) => rel !== 'play.html', headers: ADMIN_HEADERS },
      // The player: noVNC's RFB class and asciinema-player, from their npm packages.
      { prefix: '/admin/', dir: admin, include: (rel) => rel === 'play.html', headers: PLAYBACK_HEADERS },
      { prefix: '/admin/novnc/', dir: novncRoot(), include: (rel) => rel.startsWith('core/') || rel.startsWith('vendor/'), headers: ADMIN_HEADERS },
      { prefix: '/admin/asciinema-player/', dir: join(packageDirOf('asciinema-player'), 'dist', 'bundle'), include: (rel) => rel === 'asciinema-player.min.js' || rel === 'asciinema-player.css', headers: ADMIN_HEADERS },
    ],
    { '/admin': '/admin/index.html', '/admin/': '/admin/index.html', '/admin/recordings': '/admin/recordings.html', '/admin/recordings/': '/admin/recordings.html' },
  );
  return {
    // /admin/recordings/<name> is the player page of that recording (play.js reads the name from the path).
    serve(req, res) {
      const path = (req.url ?? '').split('?')[0] as string;
      if (/^\/admin\/recordings\/[^/]+$/.test(path)) req.url = '/admin/play.html';
      return site.serve(req, res);
    },
  };
}

/**
 * The SPICE listener's pages: Porthole's spice page (token handling, close reasons) at Nova's
 * `/spice_auto.html`, with spice-html5's modules from Debian's package where apt put them.
 * @throws PortholeError naming the package when it is not installed.
 */
async function loadSpiceSite(html5Dir: string): Promise<StaticSite> {
  if (!existsSync(join(html5Dir, 'main.js'))) {
    throw new PortholeError('PH_ERR_CONFIG_INVALID', `[spice] html5_dir ${html5Dir} has no spice-html5 (main.js): install it with \`apt-get install spice-html5\`, or set [spice] enabled = false`);
  }
  return StaticSite.load(
    [
      { prefix: '/', dir: join(packageRoot(), 'web'), include: (rel) => !rel.startsWith('vnc') && rel !== 'serial.html' },
      { prefix: '/spice-html5/', dir: html5Dir, include: (rel) => (rel.endsWith('.js') && !rel.startsWith('thirdparty/browser-es-module-loader')) || rel === 'spice.css' },
    ],
    { '/': '/spice.html', '/spice_auto.html': '/spice.html' },
  );
}

/** Nova's RPC client from nova.conf's own options. Connects on first use: RabbitMQ may start later. */
async function createNovaRpc(config: Config): Promise<OsloRpcClient> {
  const r = config.oslo_messaging_rabbit;
  const read = async (file: string, what: string) => {
    if (file === '') return undefined;
    try {
      return await readFile(file);
    } catch (err) {
      throw new PortholeError('PH_ERR_CONFIG_INVALID', `[oslo_messaging_rabbit] ${what} = ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const [ca, cert, key] = await Promise.all([read(r.ssl_ca_file, 'ssl_ca_file'), read(r.ssl_cert_file, 'ssl_cert_file'), read(r.ssl_key_file, 'ssl_key_file')]);
  return new OsloRpcClient({
    brokers: parseTransportUrl(config.DEFAULT.transport_url, r.ssl),
    exchange: config.DEFAULT.control_exchange,
    connectTimeoutMs: config.console.connect_timeout * 1000,
    ...(r.ssl ? { tlsOptions: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } } : {}),
  });
}
