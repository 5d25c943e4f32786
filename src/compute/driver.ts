/** How Porthole finds an instance's console endpoint. */
import type { ConnectInfo, ConsoleProtocol } from '../console/types.js';

/** Where the proxy must connect for one console. The host is the hypervisor's management address. */
export interface ConsoleTarget {
  readonly instance: string;
  readonly instanceUuid?: string | undefined;
  readonly protocol: ConsoleProtocol;
  readonly host: string;
  readonly port: number;
}

/** What the proxy needs to authenticate to a console's server, read fresh for each connect. */
export interface ConnectSecrets {
  readonly password?: string | undefined;
  /** SPICE: the server's TLS port now, for channels QEMU serves only there (the token records the plain port). */
  readonly tlsPort?: number | undefined;
}

export interface InstanceSummary {
  readonly name: string;
  readonly uuid?: string | undefined;
  readonly state: string;
  /** Console kinds the instance has (vnc, spice, serial…). */
  readonly protocols: readonly string[];
}

export interface DriverHealth {
  readonly driver: string;
  readonly ok: boolean;
  readonly detail?: string;
}

export interface ComputeDriver {
  readonly name: string;
  /**
   * Find the console of `instance` (name or UUID).
   * @returns undefined when no such instance exists.
   * @throws PortholeError PH_ERR_INSTANCE_NO_CONSOLE when it exists without that console.
   */
  resolve(instance: string, protocol: ConsoleProtocol): Promise<ConsoleTarget | undefined>;
  list(): Promise<InstanceSummary[]>;
  /** The canonical instance name for a name or UUID, whatever its state; undefined when unknown. */
  canonicalName(instance: string): Promise<string | undefined>;
  /**
   * Optional, at connect time, in one look-up: re-check that the token's target still belongs to
   * its instance, and (when `password` is asked for) read the console's VNC password for the RFB
   * security proxy. Passwords are never stored with tokens.
   * @throws PortholeError PH_ERR_TARGET_STALE when the target moved on.
   */
  prepareConnect?(info: ConnectInfo, want: { readonly password: boolean }): Promise<ConnectSecrets>;
  health(): Promise<DriverHealth>;
  close(): Promise<void>;
}
