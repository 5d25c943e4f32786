/** `porthole audit`: consoles on this hypervisor listening where they should not. */
import { createVirshRunner } from '../../compute/virsh.js';
import { auditHost } from '../../ops/audit-host.js';
import { readConfig, type ConfigArgs } from '../common.js';

export async function auditCommand(opts: ConfigArgs & { json?: boolean }): Promise<void> {
  const { config } = readConfig(opts);
  const report = await auditHost({ virsh: createVirshRunner(config.libvirt.connection_uri), serverListen: config.vnc.server_listen,
    serialPortRange: config.serial_console.port_range, serialAddress: config.serial_console.proxyclient_address });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else if (report.findings.length === 0) {
    process.stdout.write(`no problems found (${report.domainsChecked} running domains, ${report.listenersChecked} qemu listening sockets)\n`);
  } else {
    const rows = report.findings.map((f) => [f.severity.toUpperCase(), f.code, f.domain, f.message]);
    const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    for (const [i, f] of report.findings.entries()) {
      const r = rows[i] as string[];
      process.stdout.write(`${r.slice(0, 3).map((c, j) => c.padEnd(widths[j] ?? 0)).join('  ')}  ${f.message}\n`);
      process.stdout.write(`${' '.repeat((widths[0] ?? 0) + (widths[1] ?? 0) + (widths[2] ?? 0) + 6)}fix: ${f.fix}\n`);
    }
  }
  if (report.findings.length > 0) process.exitCode = 1;
}
