/**
 * The one place compute drivers are built from config (the closed registry of drivers), for
 * `serve` and for every CLI command that needs one.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ComputeDriver } from './driver.js';
import type { InventoryEntry } from './inventory.js';
import { LibvirtDriver } from './libvirt-driver.js';
import { StaticDriver } from './static-driver.js';
import { createVirshRunner } from './virsh.js';

export interface LibvirtDriverWiring {
  readonly logger: Logger;
  /** Revoke the tokens of a domain that stopped or was undefined. */
  readonly onDomainStopped: (name: string) => Promise<unknown>;
  /** Default `[libvirt] poll_interval`; one-shot commands pass a long one (they never poll). */
  readonly pollIntervalMs?: number;
}

export function createLibvirtDriver(config: Config, wiring: LibvirtDriverWiring): LibvirtDriver {
  return new LibvirtDriver({
    virsh: createVirshRunner(config.libvirt.connection_uri),
    connectionUri: config.libvirt.connection_uri,
    proxyClientAddress: config.vnc.server_proxyclient_address,
    serialProxyClientAddress: config.serial_console.proxyclient_address,
    spiceProxyClientAddress: config.spice.server_proxyclient_address,
    logger: wiring.logger,
    pollIntervalMs: wiring.pollIntervalMs ?? config.libvirt.poll_interval * 1000,
    onDomainStopped: async (name) => { await wiring.onDomainStopped(name); },
  });
}

/** The closed registry of compute drivers. */
export async function createComputeDriver(config: Config, logger: Logger, store: { revokeInstance(name: string): Promise<unknown> }, builtin: readonly InventoryEntry[]): Promise<ComputeDriver> {
  switch (config.compute.driver) {
    case 'static':
      return StaticDriver.open({ inventoryFile: config.static.inventory_file, builtin, logger });
    case 'libvirt': {
      if (builtin.length > 0) logger.warn('built-in instances (--demo) are served by the static driver only; ignored with driver = libvirt');
      const driver = createLibvirtDriver(config, { logger, onDomainStopped: (name) => store.revokeInstance(name) });
      // Not fatal: the gateway still starts, and says exactly what is wrong here and in /healthz.
      const health = await driver.health();
      if (!health.ok) logger.error({ code: 'PH_ERR_LIBVIRT_UNAVAILABLE' }, `compute driver libvirt is not usable: ${health.detail ?? ''}`);
      return driver;
    }
  }
}
