/** `porthole serve` and `porthole nova-novncproxy`: run the gateway in the foreground. */
import { dirname, resolve } from 'node:path';
import type { LoadedConfig } from '../../config/load.js';
import { startDemoVm, DEMO_INSTANCE, type DemoVm } from '../../demo/qemu-demo.js';
import { currentOpenFilesLimit, fdLimitWarning } from '../../ops/fd-limit.js';
import { Gateway, packageVersion, type ConsoleKind } from '../../gateway.js';
import { createLogger, logFilePath, openLogDestination } from '../../log.js';
import { CliExit, readConfig, type ConfigArgs } from '../common.js';

export async function serve(opts: ConfigArgs & { demo?: boolean }): Promise<void> {
  // The demo VM has a serial console too: --demo turns serial consoles on so both URLs work.
  const demo = opts.demo === true ? { extra: { file: '--demo', text: '[serial_console]\nenabled = true\n' } } : {};
  await runGateway(readConfig(opts, demo), { demo: opts.demo === true, proxyOnly: undefined, binary: 'porthole-serve' });
}

export interface NovaProxyArgs extends ConfigArgs {
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
export async function novaNovncproxy(opts: NovaProxyArgs): Promise<void> {
  await runNovaProxy(opts, 'vnc', 'nova-novncproxy');
}

/** Nova's nova-serialproxy, replaced the same way: `[serial_console] serialproxy_host/port`, Nova's serial tokens. */
export async function novaSerialproxy(opts: NovaProxyArgs): Promise<void> {
  await runNovaProxy(opts, 'serial', 'nova-serialproxy');
}

/** Nova's nova-spicehtml5proxy, replaced the same way: `[spice] html5proxy_host/port`, Nova's spice-html5 tokens. */
export async function novaSpicehtml5proxy(opts: NovaProxyArgs): Promise<void> {
  await runNovaProxy(opts, 'spice', 'nova-spicehtml5proxy');
}

async function runNovaProxy(opts: NovaProxyArgs, consoles: ConsoleKind, binary: string): Promise<void> {
  if (opts.record !== undefined && opts.record.trim() === '') throw new CliExit(2, '--record needs a file prefix (as websockify\'s): its directory becomes [console] record_dir');
  if (opts.daemon === true) throw new CliExit(2, '--daemon: porthole does not fork into the background; run it in the foreground under systemd (as Debian\'s nova-novncproxy unit does)');
  if (opts.web !== undefined) process.stderr.write(`porthole: warning: --web ${opts.web} is ignored: the console pages are Porthole's own (noVNC and xterm.js from their npm packages)\n`);
  const overrides = [
    ...(opts.ssl_only === true ? ['ssl_only = true'] : []),
    ...(opts.cert === undefined ? [] : [`cert = ${opts.cert}`]),
    ...(opts.key === undefined ? [] : [`key = ${opts.key}`]),
    ...(opts.debug === true ? ['debug = true'] : []),
  ];
  // websockify's --record PREFIX writes PREFIX.<n> per connection; Porthole records every console
  // into PREFIX's directory, one file per session in the same VNC_frame_data format (serial: asciicast).
  const record = opts.record === undefined ? '' : `[console]\nrecord = true\nrecord_dir = ${dirname(resolve(opts.record))}\n`;
  if (opts.record !== undefined) process.stderr.write(`porthole: --record ${opts.record}: recording every console into ${dirname(resolve(opts.record))} (one file per session, see docs/recording.md)\n`);
  const text = `${overrides.length === 0 ? '' : `[DEFAULT]\n${overrides.join('\n')}\n`}${record}`;
  const extra = text === '' ? undefined : { file: '<command line>', text };
  await runGateway(readConfig(opts, { nova: true, ...(extra === undefined ? {} : { extra }) }), { demo: false, proxyOnly: consoles, binary });
}

async function runGateway(loaded: LoadedConfig, mode: { demo: boolean; proxyOnly: ConsoleKind | undefined; binary: string }): Promise<void> {
  const { config, files } = loaded;
  const logPath = logFilePath(config.DEFAULT.log_file, config.DEFAULT.log_dir, mode.binary);
  const logDestination = openLogDestination(logPath);
  const logger = createLogger({ debug: config.DEFAULT.debug, destination: logDestination });
  let demo: DemoVm | undefined;
  if (mode.demo) demo = await startDemoVm(logger, process.env.PATH ?? '');
  let created: Gateway | undefined;
  let addresses;
  try {
    created = await Gateway.create({ config, logger, generateApiKey: mode.proxyOnly === undefined, proxyOnly: mode.proxyOnly, builtinInstances: demo ? [demo.entry] : [] });
    addresses = await created.start();
  } catch (err) {
    await created?.close();
    await demo?.stop();
    throw err;
  }
  const gateway = created;
  // Before the banner: a SIGHUP (logrotate, `systemctl reload`) right after the start must not meet
  // Node's default action for it, which ends the process.
  process.on('SIGHUP', () => {
    try {
      // logrotate moved the file: write to a new one at the configured path. Only a file: pino's
      // stderr destination throws on reopen (that took the whole gateway down on SIGHUP).
      if (logPath !== undefined) logDestination.reopen?.();
    } catch (err) {
      logger.error({ err }, 'log file not reopened');
    }
    gateway.audit.reopen();
    void gateway.reloadTls();
  });
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`Porthole ${packageVersion()} is running (config: ${files.length > 0 ? files.join(', ') : 'built-in defaults'})`);
  out(config.porthole.token_source === 'nova'
    ? `  tokens:        Nova's database (${gateway.tokens.identity.replace(/^nova:/, '')}), read only`
    : `  token store:   ${config.cache.backend}${config.cache.backend === 'sqlite' ? ` (${config.cache.sqlite_path})` : ''}`);
  if (mode.proxyOnly === undefined || mode.proxyOnly === 'vnc') {
    out(`  console proxy: ${addresses.proxy}`);
    out(`  console URLs:  ${addresses.consoleBaseUrl}?token=…`);
  }
  if (addresses.spiceProxy !== undefined) out(`  SPICE proxy:   ${addresses.spiceProxy} (console URLs: ${config.spice.html5proxy_base_url}?token=…)`);
  if (addresses.serialProxy !== undefined) out(`  serial proxy:  ${addresses.serialProxy} (serial console URLs: ${addresses.serialBaseUrl ?? ''}?token=…)`);
  if (logPath !== undefined) out(`  log:           ${logPath} (reopened on SIGHUP)`);
  if (config.audit.file !== '') out(`  audit:         ${config.audit.file} (reopened on SIGHUP)${config.audit.syslog ? ` and syslog ${config.audit.syslog_address}` : ''}`);
  else if (config.audit.syslog) out(`  audit:         syslog ${config.audit.syslog_address}`);
  if (mode.proxyOnly === undefined) out(`  API:           ${addresses.api} (key ${gateway.apiKeys.generated ? 'generated into' : 'from'} ${gateway.apiKeys.file})`);
  const driverHealth = await gateway.driver.health();
  if (!driverHealth.ok) out(`  WARNING: compute driver ${config.compute.driver} is not usable: ${driverHealth.detail ?? ''} (see /healthz)`);
  const fdWarning = fdLimitWarning(config.console.max_sessions, currentOpenFilesLimit());
  if (fdWarning !== undefined) out(`  WARNING: ${fdWarning}`);
  if (demo) {
    const minted = await gateway.consoles.mint({ instance: DEMO_INSTANCE, protocol: 'vnc', type: 'novnc' });
    out(`  demo VM:       ${demo.entry.host}:${demo.entry.port} (VNC), ${demo.entry.host}:${demo.entry.serialPort ?? '?'} (serial), instance "${DEMO_INSTANCE}"`);
    out(`Open this console URL in a browser (valid ${config.consoleauth.token_ttl} s; \`porthole console url ${DEMO_INSTANCE}\` mints another):`);
    out(`  ${minted.url}`);
    if (gateway.config.serial_console.enabled) {
      const serial = await gateway.consoles.mint({ instance: DEMO_INSTANCE, protocol: 'serial', type: 'serial' });
      out('Its serial console (press ESC within a minute of the VM\'s boot for SeaBIOS\'s boot menu; the VM reboots every ~2 minutes):');
      out(`  ${serial.page_url ?? serial.url}`);
      out(`  WebSocket, as Nova returns it: ${serial.url}`);
    }
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
    process.on('SIGINT', () => stop('SIGINT'));
  });
  logger.flush();
}
