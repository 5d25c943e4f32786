/**
 * `porthole` command line. The only module that prints to stdout/stderr for people or calls
 * process.exit. Human lines go to stdout; JSON logs (pino) go to stderr.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { loadApiKeys } from '../api/keys.js';
import { formatProblem, loadConfig, type ConfigProblem, type LoadedConfig } from '../config/load.js';
import { startDemoVm, DEMO_INSTANCE, type DemoVm } from '../demo/qemu-demo.js';
import { createLibvirtDriver } from '../compute/create-driver.js';
import type { LibvirtDriver } from '../compute/libvirt-driver.js';
import { createVirshRunner } from '../compute/virsh.js';
import type { Config } from '../config/schema.js';
import { isPortholeError } from '../errors.js';
import { auditHost } from '../ops/audit-host.js';
import { runDoctor, type DoctorFinding } from '../ops/doctor.js';
import { createTokenStore } from '../tokens/create-store.js';
import { vncDisplay } from '../ops/vncdisplay.js';
import { currentOpenFilesLimit, fdLimitWarning } from '../ops/fd-limit.js';
import { Gateway, packageVersion } from '../gateway.js';
import { createLogger, logFilePath, openLogDestination } from '../log.js';

export const DEFAULT_CONFIG_FILE = '/etc/porthole/porthole.conf';

class CliExit extends Error {
  constructor(readonly exitCode: number, message: string) {
    super(message);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function configOption(): Option {
  return new Option('--config-file <path>', `config file (repeatable, later files win; default ${DEFAULT_CONFIG_FILE} if it exists)`)
    .argParser(collect).default([]);
}

function configDirOption(): Option {
  return new Option('--config-dir <dir>', 'directory of *.conf files read after --config-file, in name order (as oslo.config does)');
}

interface ConfigArgs { readonly configFile: string[]; readonly configDir?: string }

/** --config-file files, then --config-dir's *.conf in name order (oslo.config); default file if neither. */
function configFilesOf(opts: ConfigArgs): string[] {
  const fromDir = opts.configDir === undefined ? [] : readdirSync(opts.configDir).filter((f) => f.endsWith('.conf')).sort().map((f) => join(opts.configDir as string, f));
  const files = [...opts.configFile, ...fromDir];
  return files.length > 0 ? files : existsSync(DEFAULT_CONFIG_FILE) ? [DEFAULT_CONFIG_FILE] : [];
}

function readConfig(opts: ConfigArgs, options: Parameters<typeof loadConfig>[2] = {}): LoadedConfig {
  const loaded = loadConfig(configFilesOf(opts), undefined, options);
  for (const w of loaded.warnings) process.stderr.write(`porthole: ${formatProblem(w)}\n`);
  return loaded;
}

/** The API as seen from this host: a wildcard bind is reached on loopback. */
function apiBaseUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

async function serve(opts: ConfigArgs & { demo?: boolean }): Promise<void> {
  await runGateway(readConfig(opts), { demo: opts.demo === true, proxyOnly: false, binary: 'porthole-serve' });
}

interface NovaProxyArgs extends ConfigArgs {
  readonly web?: string;
  readonly record?: string;
  readonly daemon?: boolean;
  readonly ssl_only?: boolean;
  readonly cert?: string;
  readonly key?: string;
  readonly source_is_ipv6?: boolean;
  readonly debug?: boolean;
}

/**
 * Nova's nova-novncproxy, replaced: the same command line (`--config-file /etc/nova/nova.conf`,
 * `--web`, `--ssl_only`, `--cert`, `--key`…), tokens from Nova's database, the console proxy only.
 * An operator swaps the binary in the unit's ExecStart and nothing else.
 */
async function novaNovncproxy(opts: NovaProxyArgs): Promise<void> {
  if (opts.record !== undefined) throw new CliExit(2, '--record: session recording is not supported yet; remove the option (consoles work without it)');
  if (opts.daemon === true) throw new CliExit(2, '--daemon: porthole does not fork into the background; run it in the foreground under systemd (as Debian\'s nova-novncproxy unit does)');
  if (opts.web !== undefined) process.stderr.write(`porthole: warning: --web ${opts.web} is ignored: the console pages are Porthole's own (noVNC 1.7 from its package)\n`);
  const overrides = [
    ...(opts.ssl_only === true ? ['ssl_only = true'] : []),
    ...(opts.cert === undefined ? [] : [`cert = ${opts.cert}`]),
    ...(opts.key === undefined ? [] : [`key = ${opts.key}`]),
    ...(opts.debug === true ? ['debug = true'] : []),
  ];
  const extra = overrides.length === 0 ? undefined : { file: '<command line>', text: `[DEFAULT]\n${overrides.join('\n')}\n` };
  await runGateway(readConfig(opts, { nova: true, ...(extra === undefined ? {} : { extra }) }), { demo: false, proxyOnly: true, binary: 'nova-novncproxy' });
}

async function runGateway(loaded: LoadedConfig, mode: { demo: boolean; proxyOnly: boolean; binary: string }): Promise<void> {
  const { config, files } = loaded;
  const opts = mode;
  const logPath = logFilePath(config.DEFAULT.log_file, config.DEFAULT.log_dir, mode.binary);
  const logDestination = openLogDestination(logPath);
  const logger = createLogger({ debug: config.DEFAULT.debug, destination: logDestination });
  let demo: DemoVm | undefined;
  if (opts.demo) demo = await startDemoVm(logger, process.env.PATH ?? '');
  let created: Gateway | undefined;
  let addresses;
  try {
    created = await Gateway.create({ config, logger, generateApiKey: !mode.proxyOnly, proxyOnly: mode.proxyOnly, builtinInstances: demo ? [demo.entry] : [] });
    addresses = await created.start();
  } catch (err) {
    await created?.close();
    await demo?.stop();
    throw err;
  }
  const gateway = created;
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`Porthole ${packageVersion()} is running (config: ${files.length > 0 ? files.join(', ') : 'built-in defaults'})`);
  out(config.porthole.token_source === 'nova'
    ? `  tokens:        Nova's database (${gateway.tokens.identity.replace(/^nova:/, '')}), read only`
    : `  token store:   ${config.cache.backend}${config.cache.backend === 'sqlite' ? ` (${config.cache.sqlite_path})` : ''}`);
  out(`  console proxy: ${addresses.proxy}`);
  out(`  console URLs:  ${addresses.consoleBaseUrl}?token=…`);
  if (logPath !== undefined) out(`  log:           ${logPath} (reopened on SIGHUP)`);
  if (!mode.proxyOnly) out(`  API:           ${addresses.api} (key ${gateway.apiKeys.generated ? 'generated into' : 'from'} ${gateway.apiKeys.file})`);
  const driverHealth = await gateway.driver.health();
  if (!driverHealth.ok) out(`  WARNING: compute driver ${config.compute.driver} is not usable: ${driverHealth.detail ?? ''} (see /healthz)`);
  const fdWarning = fdLimitWarning(config.console.max_sessions, currentOpenFilesLimit());
  if (fdWarning !== undefined) out(`  WARNING: ${fdWarning}`);
  if (demo) {
    const minted = await gateway.consoles.mint({ instance: DEMO_INSTANCE, protocol: 'vnc', type: 'novnc' });
    out(`  demo VM:       ${demo.entry.host}:${demo.entry.port}, instance "${DEMO_INSTANCE}"`);
    out(`Open this console URL in a browser (valid ${config.consoleauth.token_ttl} s; \`porthole console url ${DEMO_INSTANCE}\` mints another):`);
    out(`  ${minted.url}`);
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        process.stderr.write(`porthole: ${signal} again, exiting now\n`);
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal, graceSeconds: config.console.shutdown_grace_period }, 'shutting down');
      gateway.close(config.console.shutdown_grace_period * 1000)
        .then(() => demo?.stop())
        .catch((err: unknown) => logger.error({ err }, 'error during shutdown'))
        .finally(() => resolve());
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', () => {
      logDestination.reopen?.(); // logrotate moved the file: write to a new one at the configured path
      void gateway.reloadTls();
    });
    process.on('SIGINT', () => stop('SIGINT'));
  });
  logger.flush();
}

async function consoleUrl(instance: string, opts: ConfigArgs & { protocol: string; type: string; json?: boolean; api?: string }): Promise<void> {
  const { config } = readConfig(opts);
  const keys = await loadApiKeys(config.api.auth_keys_file, config.DEFAULT.state_path, false);
  const base = opts.api ?? apiBaseUrl(config.api.host, config.api.port);
  let res: Response;
  try {
    res = await fetch(`${base}/v1/consoles`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${keys.keys[0]}` },
      body: JSON.stringify({ instance, protocol: opts.protocol, type: opts.type }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    throw new CliExit(1, `cannot reach the Porthole API at ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message} (is \`porthole serve\` running with the same config?)`);
  }
  const body = (await res.json().catch(() => ({}))) as { url?: string; code?: string; message?: string };
  if (!res.ok || typeof body.url !== 'string') {
    throw new CliExit(1, `${body.code ?? `HTTP ${res.status}`}: ${body.message ?? 'request failed'}`);
  }
  process.stdout.write(opts.json ? `${JSON.stringify(body, null, 2)}\n` : `${body.url}\n`);
}

function libvirtDriverFor(config: Config): LibvirtDriver {
  return createLibvirtDriver(config, { logger: pino({ level: 'silent' }), pollIntervalMs: 3_600_000, onDomainStopped: async () => undefined });
}

async function vncdisplayCommand(instance: string, opts: ConfigArgs & { json?: boolean }): Promise<void> {
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

async function auditCommand(opts: ConfigArgs & { json?: boolean }): Promise<void> {
  const { config } = readConfig(opts);
  const report = await auditHost({ virsh: createVirshRunner(config.libvirt.connection_uri), serverListen: config.vnc.server_listen });
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

async function doctorCommand(opts: ConfigArgs & { peers?: string; json?: boolean }): Promise<void> {
  const files = configFilesOf(opts);
  let findings: DoctorFinding[];
  try {
    const { config, warnings } = loadConfig(files);
    const peers = opts.peers !== undefined ? opts.peers.split(',').map((p) => p.trim()).filter(Boolean) : [...config.porthole.peers];
    let store;
    let openError: string | undefined;
    try {
      store = await createTokenStore(config);
    } catch (err) {
      openError = (err as Error).message;
    }
    try {
      findings = await runDoctor({ config, warnings, store, peers, ...(openError === undefined ? {} : { openError }) });
    } finally {
      await store?.close();
    }
  } catch (err) {
    if (!isPortholeError(err) || !err.code.startsWith('PH_ERR_CONFIG')) throw err;
    const problems = (err.details?.problems as ConfigProblem[] | undefined) ?? [];
    findings = problems.map((p) => ({ code: 'PH_DOCTOR_CONFIG_INVALID', severity: 'error', message: formatProblem(p), fix: 'fix the line named; unknown options are never ignored' }));
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ok: !findings.some((f) => f.severity === 'error'), findings }, null, 2)}\n`);
  } else {
    const width = Math.max(...findings.map((f) => f.code.length));
    for (const f of findings) {
      process.stdout.write(`${f.severity.toUpperCase().padEnd(7)} ${f.code.padEnd(width)}  ${f.message}\n`);
      if (f.fix) process.stdout.write(`${' '.repeat(width + 10)}fix: ${f.fix}\n`);
    }
  }
  if (findings.some((f) => f.severity === 'error')) process.exitCode = 1;
}

function configCheck(opts: ConfigArgs): void {
  const { files } = readConfig(opts);
  process.stdout.write(`configuration OK (${files.length > 0 ? files.join(', ') : 'built-in defaults'})\n`);
}

export function buildProgram(): Command {
  const program = new Command('porthole')
    .description('Console gateway for libvirt/KVM clouds')
    .version(packageVersion())
    .showHelpAfterError();
  program.command('serve')
    .description('run the API, the console proxy and the token store in one process')
    .addOption(configOption()).addOption(configDirOption())
    .option('--demo', 'also start a throwaway QEMU VM (instance "demo") and print its console URL')
    .action(serve);
  const consoleCmd = program.command('console').description('console operations');
  consoleCmd.command('url')
    .description('print a fresh console URL for INSTANCE (like `nova get-vnc-console INSTANCE novnc`)')
    .argument('<instance>', 'instance name or UUID')
    .addOption(configOption()).addOption(configDirOption())
    .option('--protocol <protocol>', 'console protocol', 'vnc')
    .option('--type <type>', 'console type', 'novnc')
    .option('--api <url>', 'API base URL (default from [api] host/port)')
    .option('--json', 'print the whole API answer as JSON')
    .action(consoleUrl);
  program.command('vncdisplay')
    .description('where a libvirt domain\'s VNC server listens (like `virsh vncdisplay`) and whether the proxy can reach it')
    .argument('<instance>', 'domain name or UUID')
    .addOption(configOption()).addOption(configDirOption())
    .option('--json', 'machine-readable output')
    .action(vncdisplayCommand);
  program.command('audit')
    .description('find VNC/SPICE consoles on this hypervisor that listen on 0.0.0.0/::, lack auth, or drifted from their definition')
    .addOption(configOption()).addOption(configDirOption())
    .option('--json', 'machine-readable output')
    .action(auditCommand);
  program.command('doctor')
    .description('check config, token store and (with --peers) that every node shares one token store')
    .addOption(configOption()).addOption(configDirOption())
    .option('--peers <urls>', 'console proxy base URLs of all nodes, comma-separated (default [porthole] peers)')
    .option('--json', 'machine-readable output')
    .action(doctorCommand);
  program.command('nova-novncproxy')
    .description('drop-in for Nova\'s nova-novncproxy: the operator\'s nova.conf, tokens from Nova\'s database, console proxy only')
    .addOption(configOption()).addOption(configDirOption())
    .option('--web <dir>', 'accepted (Nova\'s unit files pass it) and ignored: the console pages are Porthole\'s')
    .option('--record <file>', 'refused: session recording is not supported yet')
    .option('--daemon', 'refused: run in the foreground under systemd')
    .option('--ssl_only', 'as [DEFAULT] ssl_only')
    .option('--cert <file>', 'as [DEFAULT] cert')
    .option('--key <file>', 'as [DEFAULT] key')
    .option('--source_is_ipv6', 'accepted and ignored (Porthole listens on what [vnc] novncproxy_host says)')
    .option('--debug', 'as [DEFAULT] debug')
    .action(novaNovncproxy);
  const configCmd = program.command('config').description('configuration tools');
  configCmd.command('check')
    .description('validate the configuration files and report every problem')
    .addOption(configOption()).addOption(configDirOption())
    .action(configCheck);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CliExit) {
      process.stderr.write(`porthole: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    if (isPortholeError(err)) {
      process.stderr.write(`porthole: ${err.code}: ${err.message}\n`);
      process.exit(err.code.startsWith('PH_ERR_CONFIG') ? 2 : 1);
    }
    process.stderr.write(`porthole: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(70);
  }
}
