/** Minting a console: resolve the instance, authorize a token, build the URL. */
import type { ComputeDriver } from '../compute/driver.js';
import { randomBytes } from 'node:crypto';
import { PortholeError } from '../errors.js';
import { virtViewerFile } from '../native/virt-viewer-file.js';
import type { TokenIssuer } from '../tokens/store.js';
import type { ConsoleProtocol, ConsoleRequester, ConsoleType } from '../console/types.js';

export interface ConsoleRequest {
  readonly instance: string;
  readonly protocol: ConsoleProtocol;
  readonly type: ConsoleType;
  /** Recorded with the token: the API key's name, and the user/project the caller named. */
  readonly who?: ConsoleRequester | undefined;
  /** No input from the viewer reaches the VM (enforced by the proxy). */
  readonly viewOnly?: boolean | undefined;
  /** Record the session (also when `[console] record` records all). */
  readonly record?: boolean | undefined;
}

export interface MintedConsole {
  /** What Nova returns: the VNC console page, or the serial console's WebSocket URL. */
  readonly url: string;
  /** Serial consoles: the browser page (xterm.js) for the same token. */
  readonly page_url?: string | undefined;
  /** `type: native` (SPICE): a remote-viewer connection file through the proxy's CONNECT endpoint. */
  readonly vv?: string | undefined;
  readonly token: string;
  readonly expires_at: string;
  readonly instance: string;
  readonly instance_uuid?: string | undefined;
  readonly protocol: ConsoleProtocol;
  readonly type: ConsoleType;
  readonly view_only: boolean;
  /** Whether the session will be recorded (asked for, or `[console] record`). */
  readonly record: boolean;
}

export interface ConsoleServiceOptions {
  readonly driver: ComputeDriver;
  /** Issuing only: the API never validates tokens (the proxy does, from its TokenSource). */
  readonly store: TokenIssuer;
  /** `[vnc] novncproxy_base_url`: the VNC page. */
  readonly baseUrl: string;
  /** `[serial_console] enabled`: its `base_url` (WebSocket) and the serial page on the console proxy; absent: serial refused. */
  readonly serial?: { readonly baseUrl: string; readonly pageUrl: string } | undefined;
  /** `[spice] enabled`: its `html5proxy_base_url`; absent: SPICE refused. */
  readonly spiceBaseUrl?: string | undefined;
  readonly tokenTtlMs: number;
  /** `[vnc] enabled`: false refuses VNC consoles (Nova's meaning). */
  readonly vncEnabled: boolean;
  /** `[porthole] token_source = nova`: Nova mints and revokes; this API refuses to. */
  readonly novaMode?: boolean;
  /** `[console] record`: every session is recorded (SPICE consoles are then refused: they cannot be). */
  readonly recordAll?: boolean | undefined;
  /** Revocation fast path: close this node's open consoles of these instance names/UUIDs. */
  readonly onRevoked?: (instanceKeys: readonly string[]) => void;
}

/** Supported protocol → console types (the ones this version can serve). */
export const SUPPORTED_CONSOLES: Readonly<Record<string, readonly ConsoleType[]>> = { vnc: ['novnc'], serial: ['serial'], spice: ['spice-html5', 'native'] };

/** `base?token=…`, keeping any query the operator put in the base URL. */
export function consoleUrl(baseUrl: string, token: string): string {
  const url = new URL(baseUrl);
  url.searchParams.set('token', token);
  return url.toString();
}

export class ConsoleService {
  readonly #o: ConsoleServiceOptions;

  constructor(options: ConsoleServiceOptions) {
    this.#o = options;
  }

  /** Where a protocol's console URL points (its listener's public URL). */
  #baseUrlFor(protocol: ConsoleProtocol): string {
    if (protocol === 'serial' && this.#o.serial !== undefined) return this.#o.serial.baseUrl;
    if (protocol === 'spice' && this.#o.spiceBaseUrl !== undefined) return this.#o.spiceBaseUrl;
    return this.#o.baseUrl;
  }

  #refuseInNovaMode(): void {
    if (this.#o.novaMode === true) {
      throw new PortholeError('PH_ERR_TOKEN_SOURCE_READ_ONLY',
        'in nova mode ([porthole] token_source = nova) Nova mints and revokes console tokens: use `openstack console url show` (Nova deletes an instance\'s tokens when it is deleted)');
    }
  }

  /**
   * @throws PortholeError PH_ERR_CONSOLE_TYPE_UNSUPPORTED, PH_ERR_INSTANCE_NOT_FOUND,
   *   PH_ERR_INSTANCE_NO_CONSOLE, PH_ERR_STORE_UNAVAILABLE
   */
  async mint(request: ConsoleRequest): Promise<MintedConsole> {
    this.#refuseInNovaMode();
    if (!(SUPPORTED_CONSOLES[request.protocol] ?? []).includes(request.type)) {
      throw new PortholeError('PH_ERR_CONSOLE_TYPE_UNSUPPORTED',
        `console protocol ${request.protocol} with type ${request.type} is not supported (supported: vnc/novnc, serial/serial, spice/spice-html5, spice/native${request.protocol === 'vnc' && request.type === 'native' ? '; remote-viewer takes no proxy for VNC: use `porthole tunnel`' : ''})`);
    }
    const serial = this.#o.serial;
    if (request.protocol === 'serial' && serial === undefined) {
      throw new PortholeError('PH_ERR_CONSOLE_TYPE_UNSUPPORTED', 'serial consoles are disabled on this gateway ([serial_console] enabled = false)');
    }
    if (request.protocol === 'vnc' && !this.#o.vncEnabled) {
      throw new PortholeError('PH_ERR_CONSOLE_TYPE_UNSUPPORTED', 'VNC consoles are disabled on this gateway ([vnc] enabled = false)');
    }
    if (request.protocol === 'spice' && this.#o.spiceBaseUrl === undefined) {
      throw new PortholeError('PH_ERR_CONSOLE_TYPE_UNSUPPORTED', 'SPICE consoles are disabled on this gateway ([spice] enabled = false)');
    }
    const record = request.record === true || this.#o.recordAll === true;
    if (request.protocol === 'spice' && (request.viewOnly === true || record)) {
      throw new PortholeError('PH_ERR_CONSOLE_TYPE_UNSUPPORTED', request.viewOnly === true
        ? 'view-only consoles are VNC or serial; SPICE input cannot be filtered by the proxy yet'
        : `SPICE consoles cannot be recorded (VNC and serial can)${this.#o.recordAll === true ? '; [console] record = true records every console, so SPICE consoles are refused' : ''}`);
    }
    const target = await this.#o.driver.resolve(request.instance, request.protocol);
    if (!target) throw new PortholeError('PH_ERR_INSTANCE_NOT_FOUND', `no instance named ${JSON.stringify(request.instance)}`);
    const issued = await this.#o.store.authorize({
      instance: target.instance,
      instanceUuid: target.instanceUuid,
      protocol: target.protocol,
      consoleType: request.type,
      host: target.host,
      port: target.port,
      accessUrlBase: this.#baseUrlFor(target.protocol),
      ...(request.who === undefined ? {} : { who: request.who }),
      ...(request.viewOnly === true ? { viewOnly: true } : {}),
      ...(request.record === true ? { record: true } : {}),
    }, this.#o.tokenTtlMs);
    const common = {
      token: issued.token,
      expires_at: new Date(issued.expiresAt).toISOString(),
      instance: target.instance,
      instance_uuid: target.instanceUuid,
      protocol: target.protocol,
      type: request.type,
      view_only: request.viewOnly === true,
      record,
    };
    if (request.type === 'native') {
      // The CONNECT endpoint is on the SPICE listener; remote-viewer speaks HTTP CONNECT in clear.
      const proxyUrl = `http://${new URL(this.#baseUrlFor('spice')).host}`;
      const vv = virtViewerFile({ token: issued.token, proxyUrl, title: `${target.instance} (Porthole)`, password: randomBytes(12).toString('base64url') });
      return { url: proxyUrl, vv, ...common };
    }
    return {
      url: consoleUrl(this.#baseUrlFor(target.protocol), issued.token),
      ...(serial === undefined || target.protocol !== 'serial' ? {} : { page_url: consoleUrl(serial.pageUrl, issued.token) }),
      ...common,
    };
  }

  /** What an instance may be recorded as in tokens and sessions: the name or UUID given, and the driver's name for it. */
  async instanceKeys(instance: string): Promise<string[]> {
    const name = await this.#o.driver.canonicalName(instance);
    return [...new Set([instance, ...(name === undefined ? [] : [name])])];
  }

  /**
   * Revoke every token of an instance, by name or UUID: what the caller named is matched against
   * the name and UUID recorded in each token at mint, so an instance the driver no longer knows
   * (deleted VM, removed from the inventory) is revoked all the same. Consoles already open on this
   * node close at once (`onRevoked`); other nodes close theirs at their next token re-check.
   * @returns how many tokens were revoked, or undefined where the store cannot count (memcached).
   */
  async revoke(instance: string): Promise<number | undefined> {
    this.#refuseInNovaMode();
    const keys = await this.instanceKeys(instance);
    let revoked = 0;
    for (const key of keys) revoked += await this.#o.store.revokeInstance(key);
    this.#o.onRevoked?.(keys);
    return this.#o.store.countsRevocations ? revoked : undefined;
  }
}
