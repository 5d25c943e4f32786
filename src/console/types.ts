/**
 * The shared vocabulary of consoles: what tokens record, drivers find and the proxy connects to.
 * Types only; tokens/, compute/ and proxy/ import it (and not each other) for these names.
 */

export type ConsoleProtocol = 'vnc' | 'serial' | 'spice';
/** Console types as Nova names them. */
/** `native`: Porthole's, for native clients through the HTTP CONNECT endpoint (remote-viewer `.vv` files). */
export type ConsoleType = 'novnc' | 'vnc' | 'serial' | 'spice-html5' | 'native';

/** Where a console lives, as recorded at mint time. The proxy only ever connects here. */
export interface ConnectInfo {
  readonly instance: string;
  readonly instanceUuid?: string | undefined;
  readonly protocol: ConsoleProtocol;
  readonly consoleType: ConsoleType;
  readonly host: string;
  readonly port: number;
  /** Public page the token was minted for; its scheme decides which Origin scheme is accepted. */
  readonly accessUrlBase: string;
  /** Nova's `internal_access_path`: send `CONNECT <path>` to host:port and require a 200 first. */
  readonly internalAccessPath?: string | undefined;
  /** Nova mode: the instance row, for nova-compute's `validate_console_port`. */
  readonly nova?: NovaInstanceRef | undefined;
  /** Who asked for the console: the API key's name and what the caller said (a dashboard passes its end user). Never a secret. */
  readonly who?: ConsoleRequester | undefined;
  /** View-only console: the proxy passes no input from the viewer (VNC: no key, pointer or clipboard; serial: nothing typed). */
  readonly viewOnly?: boolean | undefined;
  /** Record this console's session (`"record": true` at mint; `[console] record` records all). */
  readonly record?: boolean | undefined;
}

export interface ConsoleRequester {
  /** The name of the API key that minted it (`name:key` in auth_keys_file). */
  readonly key?: string | undefined;
  readonly user?: string | undefined;
  readonly project?: string | undefined;
}

/** The fields of Nova's instance row that nova-compute needs to find the instance's console. */
export interface NovaInstanceRef {
  readonly id: number;
  /** The nova-compute service host (RPC server name) the instance runs on. */
  readonly host: string | null;
  readonly node: string | null;
}

/**
 * Request header `porthole tunnel` sends with its WebSockets: such a client, like a browser, is told
 * why a console was refused (close code and reason); other Origin-less clients get Nova's empty close.
 */
export const TUNNEL_CLIENT_HEADER = 'x-porthole-client';
