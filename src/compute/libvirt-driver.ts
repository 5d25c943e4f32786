/**
 * libvirt compute driver: instances are domains on this host's libvirtd, resolved by name or UUID
 * from the live domain XML. It also guards against stale ports (CVE-2013-0335 class: a deleted
 * VM's console port reused by another VM): tokens record domain UUID + port, `prepareConnect` re-checks
 * at connect time, and a poll revokes the tokens of domains that stopped or were undefined.
 */
import type { Logger } from 'pino';
import { PortholeError } from '../errors.js';
import type { ConnectInfo, ConsoleProtocol } from '../console/types.js';
import { parseDomainXml, serialConsoleOf, type DomainInfo } from './domain-xml.js';
import type { ComputeDriver, ConnectSecrets, ConsoleTarget, DriverHealth, InstanceSummary } from './driver.js';
import { serialTargetOf, spiceTargetOf, vncTargetOf } from './libvirt-console.js';
import { VirshError, type VirshRunner } from './virsh.js';

export interface LibvirtDriverOptions {
  readonly virsh: VirshRunner;
  readonly connectionUri: string;
  readonly proxyClientAddress: string;
  /** `[serial_console] proxyclient_address`: how this host is reached for a serial console bound to a wildcard. */
  readonly serialProxyClientAddress?: string | undefined;
  /** `[spice] server_proxyclient_address`: how this host's SPICE servers are reached. */
  readonly spiceProxyClientAddress?: string | undefined;
  readonly logger: Logger;
  readonly pollIntervalMs: number;
  /** Called when a domain with tokens minted here stops or disappears (the gateway revokes its tokens). */
  readonly onDomainStopped: (name: string) => Promise<unknown>;
}

export class LibvirtDriver implements ComputeDriver {
  readonly name = 'libvirt';
  readonly #o: LibvirtDriverOptions;
  /** Domains this node minted tokens for: uuid → name. */
  readonly #watched = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #polling = false;

  constructor(options: LibvirtDriverOptions) {
    this.#o = options;
    this.#timer = setInterval(() => { void this.#poll(); }, options.pollIntervalMs);
    this.#timer.unref();
  }

  #wrap(err: unknown, what: string): PortholeError {
    if (err instanceof VirshError && err.kind !== 'not-found') {
      return new PortholeError('PH_ERR_LIBVIRT_UNAVAILABLE', `libvirt (${this.#o.connectionUri}): ${what}: ${err.message}`, { cause: err });
    }
    return new PortholeError('PH_ERR_INTERNAL', `libvirt: ${what}: ${(err as Error).message}`, { cause: err });
  }

  /** Live domain XML, or undefined when no such domain. */
  async domain(instance: string, flags: readonly string[] = []): Promise<DomainInfo | undefined> {
    let xml: string;
    try {
      xml = await this.#o.virsh(['dumpxml', ...flags, '--', instance]);
    } catch (err) {
      if (err instanceof VirshError && err.kind === 'not-found') return undefined;
      throw this.#wrap(err, `dumpxml ${instance}`);
    }
    try {
      return parseDomainXml(xml);
    } catch (err) {
      throw this.#wrap(err, `parsing the XML of ${instance}`);
    }
  }

  async canonicalName(instance: string): Promise<string | undefined> {
    return (await this.domain(instance))?.name;
  }

  async resolve(instance: string, protocol: ConsoleProtocol): Promise<ConsoleTarget | undefined> {
    const domain = await this.domain(instance);
    if (domain === undefined) return undefined;
    const target = protocol === 'serial' ? serialTargetOf(domain, this.#o.serialProxyClientAddress ?? this.#o.proxyClientAddress)
      : protocol === 'spice' ? spiceTargetOf(domain, this.#o.spiceProxyClientAddress ?? this.#o.proxyClientAddress)
        : vncTargetOf(domain, this.#o.proxyClientAddress);
    this.#watched.set(domain.uuid, domain.name);
    return target;
  }

  /**
   * At connect time, from one `virsh dumpxml` (with --security-info when the password is wanted:
   * libvirt hides passwd= otherwise): does the domain the token was minted for still run and own
   * that port? And what is its VNC password?
   * @throws PortholeError PH_ERR_TARGET_STALE, PH_ERR_LIBVIRT_UNAVAILABLE
   */
  async prepareConnect(info: ConnectInfo, want: { readonly password: boolean }): Promise<ConnectSecrets> {
    if (info.instanceUuid === undefined && !want.password) return {};
    const domain = await this.domain(info.instanceUuid ?? info.instance, want.password ? ['--security-info'] : []);
    const graphics = domain?.graphics.find((g) => g.type === (info.protocol === 'spice' ? 'spice' : 'vnc'));
    if (info.instanceUuid !== undefined) {
      const stale = (why: string) => new PortholeError('PH_ERR_TARGET_STALE', `token for ${info.instance} (${info.instanceUuid}) port ${info.port}: ${why}`);
      if (domain === undefined) throw stale('the domain no longer exists');
      if (!domain.running) throw stale('the domain is not running');
      if (info.protocol === 'serial') {
        const serial = serialConsoleOf(domain);
        const port = serial.kind === 'tcp' ? serial.port : undefined;
        if (port !== info.port) throw stale(`the domain's TCP serial console is now on port ${port ?? 'none'}`);
      } else if (graphics?.port !== info.port) {
        throw stale(`the domain's ${info.protocol === 'spice' ? 'SPICE' : 'VNC'} server is now on port ${graphics?.port ?? 'none'}`);
      }
    }
    return { password: graphics?.password, ...(info.protocol === 'spice' && graphics?.tlsPort !== undefined ? { tlsPort: graphics.tlsPort } : {}) };
  }

  async #poll(): Promise<void> {
    if (this.#polling || this.#watched.size === 0) return;
    this.#polling = true;
    try {
      const running = new Set((await this.#o.virsh(['list', '--uuid'])).split('\n').map((l) => l.trim().toLowerCase()).filter(Boolean));
      for (const [uuid, name] of this.#watched) {
        if (running.has(uuid)) continue;
        this.#watched.delete(uuid);
        await this.#o.onDomainStopped(name);
        this.#o.logger.info({ domain: name, uuid }, 'domain stopped or undefined: its console tokens were revoked');
      }
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message }, 'libvirt lifecycle poll failed');
    } finally {
      this.#polling = false;
    }
  }

  async list(): Promise<InstanceSummary[]> {
    let names: string[];
    try {
      names = (await this.#o.virsh(['list', '--all', '--name'])).split('\n').map((l) => l.trim()).filter(Boolean);
    } catch (err) {
      throw this.#wrap(err, 'list');
    }
    const out: InstanceSummary[] = [];
    for (const name of names) {
      const d = await this.domain(name);
      // A pty-only serial is not listed: it cannot be reached over TCP (minting it answers 409 and says why).
      if (d) out.push({ name: d.name, uuid: d.uuid, state: d.running ? 'running' : 'shut off', protocols: [...d.graphics.map((g) => g.type), ...(serialConsoleOf(d).kind === 'tcp' ? ['serial'] : [])] });
    }
    return out;
  }

  async health(): Promise<DriverHealth> {
    try {
      await this.#o.virsh(['uri']);
      return { driver: this.name, ok: true, detail: `${this.#o.connectionUri} reachable` };
    } catch (err) {
      return { driver: this.name, ok: false, detail: `libvirt (${this.#o.connectionUri}): ${(err as Error).message}` };
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
  }
}
