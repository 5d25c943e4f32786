/**
 * Config files → one validated, deep-frozen Config. Every problem in every file is collected and
 * reported at once (file, line, did-you-mean), so an operator fixes a config in one pass; a typo such
 * as `memcached_servers` for `memcache_servers` is a startup error, never a silently ignored key.
 */
import { parseTransportUrl } from '../nova/oslo-rpc.js';
import { readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { PortholeError } from '../errors.js';
import { parseIni, type IniEntry } from './ini.js';
import { DEPRECATED_NAMES, SCHEMA, type Config, type GroupName, type OptionSpec } from './schema.js';
import { loadNovaCatalogue, type NovaCatalogue } from './nova-catalogue.js';
import { suggest } from './suggest.js';

export interface ConfigProblem {
  readonly severity: 'error' | 'warning';
  readonly file?: string;
  readonly line?: number;
  readonly message: string;
}

export interface LoadedConfig {
  readonly config: Config;
  readonly warnings: readonly ConfigProblem[];
  readonly files: readonly string[];
}

export interface ConfigSource {
  readonly file: string;
  readonly text: string;
}

export interface ResolveEnvironment {
  /** Effective uid; root gets /var/lib/porthole as state_path. */
  readonly uid: number;
  readonly home: string;
  /** The host name: `[porthole] node_name`'s default. */
  readonly hostname?: string;
}

/** `file:line: message`, the form compilers use, so editors can jump to it. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.file === undefined ? '' : p.line === undefined ? `${p.file}: ` : `${p.file}:${p.line}: `;
  return `${where}${p.severity === 'warning' ? 'warning: ' : ''}${p.message}`;
}

function groupSpec(group: string): Record<string, OptionSpec<unknown>> | undefined {
  return Object.hasOwn(SCHEMA, group) ? (SCHEMA[group as GroupName] as Record<string, OptionSpec<unknown>>) : undefined;
}

function unknownOptionMessage(entry: IniEntry, spec: Record<string, OptionSpec<unknown>>): string {
  const head = `[${entry.group}] ${entry.key}: unknown option`;
  const aliasesHere = DEPRECATED_NAMES.filter((d) => d.group === entry.group).map((d) => d.name);
  const near = suggest(entry.key, [...Object.keys(spec), ...aliasesHere]);
  if (near !== undefined) return `${head}, did you mean ${near}?`;
  for (const other of Object.keys(SCHEMA)) {
    if (other !== entry.group && Object.hasOwn(SCHEMA[other as GroupName], entry.key)) {
      return `${head}; it belongs in [${other}]`;
    }
  }
  return `${head} (known: ${Object.keys(spec).join(', ')})`;
}

/** Groups that are Nova's own in nova mode: Porthole reads nothing of them (its token store is unused there). */
const NOVA_OWNED_GROUPS = new Set(['cache']);

/**
 * oslo.config's substitution in values: `$name` / `${name}` is [DEFAULT] name, `$$` a literal `$`
 * (nova.conf files say `server_listen = $my_ip`). Unknown names are left as written. Pure.
 */
export function interpolate(value: string, defaults: ReadonlyMap<string, string>): string {
  return value.replace(/\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g, (whole: string, dollar: string, braced?: string, bare?: string) => {
    if (dollar === '$') return '$';
    const name = braced ?? bare ?? '';
    return defaults.get(name) ?? whole;
  });
}

/** Is nova mode asked for anywhere in these sources (`[porthole] token_source = nova`)? Pure. */
export function asksForNovaMode(sources: readonly ConfigSource[]): boolean {
  return sources.some((s) => parseIni(s.text, s.file).entries.some((e) => e.group === 'porthole' && e.key === 'token_source' && e.value.trim() === 'nova'));
}

/**
 * Validate INI sources (later sources win). Pure: no I/O, never throws.
 * Returns the raw typed values that were set, plus problems.
 * With `nova` (an operator's nova.conf), an option Nova knows but Porthole does not use is accepted
 * and ignored, and anything neither knows is a warning with a did-you-mean, not an error.
 */
export function validateSources(sources: readonly ConfigSource[], nova?: NovaCatalogue): {
  values: Map<string, unknown>;
  problems: ConfigProblem[];
} {
  const values = new Map<string, unknown>();
  const problems: ConfigProblem[] = [];
  // nova.conf values may refer to [DEFAULT] options ($my_ip); later files win, as for values.
  const defaults = new Map<string, string>();
  if (nova !== undefined) {
    for (const source of sources) for (const e of parseIni(source.text, source.file).entries) if (e.group === 'DEFAULT') defaults.set(e.key, e.value);
  }
  const novaUnknown = (entry: IniEntry): void => {
    if (nova?.groups.get(entry.group)?.has(entry.key) === true) return; // Nova's: accepted, not used
    const known = [...(nova?.groups.get(entry.group) ?? []), ...Object.keys(groupSpec(entry.group) ?? {})];
    const near = suggest(entry.key, known);
    problems.push({
      severity: 'warning', file: entry.file, line: entry.line,
      message: `[${entry.group}] ${entry.key}: unknown to Nova and to Porthole${near === undefined ? '' : `, did you mean ${near}?`} (ignored)`,
    });
  };
  for (const source of sources) {
    const doc = parseIni(source.text, source.file);
    for (const p of doc.problems) problems.push({ severity: 'error', file: p.file, line: p.line, message: p.message });
    for (const section of doc.sections) {
      if (nova !== undefined && groupSpec(section.name) === undefined && section.name !== '') {
        if (!nova.groups.has(section.name)) {
          const near = suggest(section.name, [...nova.groups.keys(), ...Object.keys(SCHEMA)]);
          problems.push({ severity: 'warning', file: section.file, line: section.line, message: `[${section.name}]: group unknown to Nova and to Porthole${near === undefined ? '' : `, did you mean [${near}]?`} (ignored)` });
        }
        continue;
      }
      if (groupSpec(section.name) === undefined && section.name !== '') {
        const near = suggest(section.name, Object.keys(SCHEMA));
        problems.push({
          severity: 'error', file: section.file, line: section.line,
          message: `[${section.name}]: unknown group${near === undefined ? ` (known: ${Object.keys(SCHEMA).join(', ')})` : `, did you mean [${near}]?`}`,
        });
      }
    }
    /** Within one file a second value for an option is a mistake (silently last-wins before); across files, later files win. */
    const firstLine = new Map<string, number>();
    for (const entry of doc.entries) {
      if (nova !== undefined && NOVA_OWNED_GROUPS.has(entry.group)) {
        novaUnknown(entry);
        continue;
      }
      const spec = groupSpec(entry.group);
      if (spec === undefined) {
        if (nova !== undefined && nova.groups.has(entry.group)) novaUnknown(entry);
        continue; // an unknown group is reported once per section above
      }
      let group = entry.group;
      let name = entry.key;
      const deprecated = DEPRECATED_NAMES.find((d) => d.group === entry.group && d.name === entry.key);
      if (deprecated) {
        group = deprecated.to.group;
        name = deprecated.to.name;
        problems.push({
          severity: 'warning', file: entry.file, line: entry.line,
          message: `[${entry.group}] ${entry.key} is deprecated; use [${group}] ${name}`,
        });
      }
      const target = groupSpec(group);
      const opt = target !== undefined && Object.hasOwn(target, name) ? target[name] : undefined;
      if (opt === undefined) {
        if (nova !== undefined) novaUnknown(entry);
        else problems.push({ severity: 'error', file: entry.file, line: entry.line, message: unknownOptionMessage(entry, spec) });
        continue;
      }
      const earlier = firstLine.get(`${group}.${name}`);
      if (earlier !== undefined) {
        problems.push({
          severity: 'error', file: entry.file, line: entry.line,
          message: `[${group}] ${name} is set twice in this file (lines ${earlier} and ${entry.line}); keep one`,
        });
        continue;
      }
      firstLine.set(`${group}.${name}`, entry.line);
      try {
        values.set(`${group}.${name}`, opt.parse(nova === undefined ? entry.value : interpolate(entry.value, defaults)));
      } catch (err) {
        problems.push({
          severity: 'error', file: entry.file, line: entry.line,
          message: `[${group}] ${name}: ${(err as Error).message}`,
        });
      }
    }
  }
  return { values, problems };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Defaults + set values, with computed defaults (state_path, sqlite_path) resolved. Pure. */
export function buildConfig(values: ReadonlyMap<string, unknown>, env: ResolveEnvironment): Config {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [group, options] of Object.entries(SCHEMA)) {
    const g: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(options as Record<string, OptionSpec<unknown>>)) {
      const key = `${group}.${name}`;
      g[name] = values.has(key) ? values.get(key) : spec.default;
    }
    out[group] = g;
  }
  const defaults = out.DEFAULT as Record<string, unknown>;
  if (defaults.state_path === '') {
    defaults.state_path = env.uid === 0 ? '/var/lib/porthole' : join(env.home, '.local', 'state', 'porthole');
  }
  const cache = out.cache as Record<string, unknown>;
  if (cache.sqlite_path === '') cache.sqlite_path = join(defaults.state_path as string, 'tokens.sqlite');
  const consoleGroup = out.console as Record<string, unknown>;
  if (consoleGroup.record_dir === '') consoleGroup.record_dir = join(defaults.state_path as string, 'recordings');
  const porthole = out.porthole as Record<string, unknown>;
  if (porthole.node_name === '') porthole.node_name = env.hostname ?? 'localhost';
  return deepFreeze(out as unknown as Config);
}

/**
 * Problems that involve more than one option. Pure. The shared-store checks exist because of an
 * outage: a node whose store settings do not take effect silently keeps tokens to itself.
 */
export function crossCheck(config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const c = config.cache;
  const err = (message: string) => problems.push({ severity: 'error', message });
  if (c.backend === 'redis' && c.redis_server === '' && c.redis_sentinels.length === 0) {
    err('[cache] backend = redis needs [cache] redis_server (host:port or redis:// URL) or [cache] redis_sentinels');
  }
  if (c.backend === 'memcached' && c.memcache_servers.length === 0) err('[cache] backend = memcached needs [cache] memcache_servers (host:port,host:port)');
  const d = config.DEFAULT;
  if (d.ssl_only && (d.cert === '' || d.key === '')) err('[DEFAULT] ssl_only = true needs [DEFAULT] cert and [DEFAULT] key');
  if ((d.cert === '') !== (d.key === '')) err('[DEFAULT] cert and [DEFAULT] key must be set together');
  const wantsDb = c.backend === 'postgresql' || c.backend === 'mysql';
  if (wantsDb && c.connection === '') err(`[cache] backend = ${c.backend} needs [cache] connection (${c.backend}://user:pass@host:port/db)`);
  if (wantsDb && c.connection !== '' && !new RegExp(`^${c.backend === 'mysql' ? '(mysql|mariadb)' : 'postgres(ql)?'}(\\+[a-z0-9_]+)?://`, 'i').test(c.connection)) {
    err(`[cache] connection does not match [cache] backend = ${c.backend}`);
  }
  if (!wantsDb && c.connection !== '') {
    err(`[cache] connection is set but [cache] backend = ${c.backend}: tokens would stay private to this node; set backend = postgresql or mysql (or remove connection)`);
  }
  if (c.backend !== 'memcached' && c.memcache_servers.length > 0) {
    err(`[cache] memcache_servers is set but [cache] backend = ${c.backend}: tokens would stay private to this node; set backend = memcached (or remove memcache_servers)`);
  }
  if (c.backend !== 'redis' && (c.redis_server !== '' || c.redis_sentinels.length > 0)) {
    err(`[cache] redis_server/redis_sentinels is set but [cache] backend = ${c.backend}: tokens would stay private to this node; set backend = redis (or remove it)`);
  }
  if (config.porthole.token_source === 'nova' && config.database.connection === '') {
    err('[porthole] token_source = nova needs [database] connection (Nova\'s own, from nova.conf)');
  }
  if (config.porthole.token_source === 'nova' && config.porthole.nova_validate_console_port) {
    if (config.DEFAULT.transport_url === '') {
      err('[porthole] token_source = nova checks every console\'s port with nova-compute over RPC, which needs [DEFAULT] transport_url (Nova\'s RabbitMQ, from nova.conf); ' +
        'or set [porthole] nova_validate_console_port = false to rely on the instance row alone');
    } else {
      try {
        parseTransportUrl(config.DEFAULT.transport_url, config.oslo_messaging_rabbit.ssl);
      } catch (e) {
        err((e as Error).message);
      }
    }
  }
  if (config.porthole.token_source !== 'nova' && config.database.connection !== '') {
    err('[database] connection is set but [porthole] token_source = porthole: Nova\'s tokens would not be read; set token_source = nova (or remove it)');
  }
  const v = config.vnc;
  if (v.auth_schemes.includes('vencrypt') && v.vencrypt_ca_certs === '') {
    err('[vnc] auth_schemes includes vencrypt, which needs [vnc] vencrypt_ca_certs (the CA that signed the VNC servers\' certificates)');
  }
  if ((v.vencrypt_client_cert === '') !== (v.vencrypt_client_key === '')) err('[vnc] vencrypt_client_cert and [vnc] vencrypt_client_key must be set together');
  if (!v.auth_schemes.includes('vencrypt') && (v.vencrypt_ca_certs !== '' || v.vencrypt_client_cert !== '')) {
    err('[vnc] vencrypt_* is set but [vnc] auth_schemes does not include vencrypt: the proxy would never use TLS to VNC servers; add vencrypt to auth_schemes (or remove the vencrypt_* options)');
  }
  if (config.console.record && config.spice.enabled) {
    err('[console] record = true records every console, but SPICE consoles cannot be recorded (VNC and serial can): set [spice] enabled = false, or record chosen consoles ("record": true at mint)');
  }
  return problems;
}

/**
 * Read, validate and freeze the config.
 * @throws PortholeError PH_ERR_CONFIG_INVALID listing every problem (details.problems), or
 *   PH_ERR_CONFIG_FILE_UNREADABLE when a named file cannot be read.
 */
export function loadConfig(files: readonly string[], env?: Partial<ResolveEnvironment>,
  options: { readonly nova?: boolean; /** Command-line overrides in INI form, read last. */ readonly extra?: ConfigSource } = {}): LoadedConfig {
  const sources: ConfigSource[] = [];
  const unreadable: ConfigProblem[] = [];
  for (const file of files) {
    try {
      sources.push({ file, text: readFileSync(file, 'utf8') });
    } catch (err) {
      unreadable.push({ severity: 'error', file, message: `cannot read config file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    }
  }
  if (options.extra !== undefined) sources.push(options.extra);
  const nova = options.nova === true || asksForNovaMode(sources);
  const { values, problems } = validateSources(sources, nova ? loadNovaCatalogue() : undefined);
  // `porthole nova-novncproxy` is nova mode by its name; nova.conf has no [porthole] group.
  if (options.nova === true) values.set('porthole.token_source', 'nova');
  const env2 = {
    uid: env?.uid ?? (typeof process.getuid === 'function' ? process.getuid() : 1000),
    home: env?.home ?? homedir(),
    hostname: env?.hostname ?? hostname(),
  };
  const cross = problems.some((p) => p.severity === 'error') ? [] : crossCheck(buildConfig(values, env2));
  const errors = [...unreadable, ...problems.filter((p) => p.severity === 'error'), ...cross];
  if (errors.length > 0) {
    const code = unreadable.length > 0 && errors.length === unreadable.length ? 'PH_ERR_CONFIG_FILE_UNREADABLE' : 'PH_ERR_CONFIG_INVALID';
    throw new PortholeError(code,
      `invalid configuration (${errors.length} problem${errors.length === 1 ? '' : 's'}):\n` +
        errors.map((p) => `  ${formatProblem(p)}`).join('\n'),
      { details: { problems: errors } });
  }
  const config = buildConfig(values, env2);
  return { config, warnings: problems.filter((p) => p.severity === 'warning'), files: [...files] };
}
