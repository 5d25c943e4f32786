/** How Porthole finds an instance's console endpoint. */
import type { ConnectInfo, ConsoleProtocol } from '../tokens/store.js';

/** Where the proxy must connect for one console. The host is the hypervisor's management address. */
export interface ConsoleTarget {
  readonly instance: string;
  readonly instanceUuid?: string | undefined;
  readonly protocol: ConsoleProtocol;
  readonly host: string;
  readonly port: number;
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
   * Optional connect-time re-check that the token's target still belongs to its instance.
   * @throws PortholeError PH_ERR_TARGET_STALE when it does not.
   */
  verifyTarget?(info: ConnectInfo): Promise<void>;
  /** The VNC password of the instance's console, for the RFB security proxy; never stored with tokens. */
  consolePassword?(info: ConnectInfo): Promise<string | undefined>;
  health(): Promise<DriverHealth>;
  close(): Promise<void>;
}
