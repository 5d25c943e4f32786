/** `porthole vncdisplay`: where a domain's VNC server listens and whether the proxy reaches it. */
import { pino } from 'pino';
import { createLibvirtDriver } from '../../compute/create-driver.js';
import type { LibvirtDriver } from '../../compute/libvirt-driver.js';
import type { Config } from '../../config/schema.js';
import { vncDisplay } from '../../ops/vncdisplay.js';
import { CliExit, readConfig, type ConfigArgs } from '../common.js';

function libvirtDriverFor(config: Config): LibvirtDriver {
  return createLibvirtDriver(config, { logger: pino({ level: 'silent' }), pollIntervalMs: 3_600_000, onDomainStopped: async () => undefined });
}

export async function vncdisplayCommand(instance: string, opts: ConfigArgs & { json?: boolean }): Promise<void> {
  const { config } = readConfig(opts);
  const driver = libvirtDriverFor(config);
  try {
    const r = await vncDisplay(driver, instance);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    } else {
      process.stdout.write(`${r.display}\n`);
      process.stdout.write(`listen:        ${r.listen}${r.port === undefined ? '' : ` port ${r.port}`}\n`);
      process.stdout.write(`proxy target:  ${r.proxyTarget ?? '(none)'}\n`);
      process.stdout.write(`reachable:     ${r.reachable ? 'yes' : 'no'} (${r.detail})\n`);
    }
    if (!r.reachable) throw new CliExit(1, `the proxy cannot reach ${r.domain}'s VNC server: ${r.detail}`);
  } finally {
    await driver.close();
  }
}
