/**
 * `porthole` command line: argv → command (one file each under commands/). cli/ is the only part
 * that prints to stdout/stderr for people or calls process.exit. Human lines go to stdout; JSON
 * logs (pino) go to stderr.
 */
import { Command } from 'commander';
import { isPortholeError } from '../errors.js';
import { packageVersion } from '../gateway.js';
import { CliExit, configOption, configDirOption } from './common.js';
import { serve, novaNovncproxy, novaSerialproxy, novaSpicehtml5proxy, type NovaProxyArgs } from './commands/serve.js';
import { tunnelCommand } from './commands/tunnel.js';
import { sessionsCommand } from './commands/sessions.js';
import { consoleUrl } from './commands/console-url.js';
import { vncdisplayCommand } from './commands/vncdisplay.js';
import { auditCommand } from './commands/audit.js';
import { doctorCommand } from './commands/doctor.js';
import { configCheck } from './commands/config-check.js';

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
    .option('--type <type>', 'console type (default: novnc for vnc, serial for serial)')
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
  program.command('tunnel')
    .description('a local port for native clients (TigerVNC, remote-viewer, vncsnapshot) that reaches a console through the proxy, like virtctl vnc')
    .argument('<target>', 'an instance name (minted through the API) or a console URL the API or Nova returned')
    .addOption(configOption()).addOption(configDirOption())
    .option('--listen <host:port>', 'local address to listen on', '127.0.0.1:0')
    .option('--exec <command>', 'run this command with {port} replaced by the local port; the tunnel ends with it')
    .option('--once', 'serve one connection, then exit')
    .option('--json', 'print {"port":N} instead of a sentence')
    .option('--protocol <protocol>', 'console protocol when minting for an instance', 'vnc')
    .option('--api <url>', 'API base URL (default from the config\'s [api] host/port)')
    .option('--api-key-file <file>', 'file with the API key (default: the config\'s key file)')
    .option('--ca <file>', 'CA certificates for a wss:// console proxy with a private CA')
    .action(tunnelCommand);
  program.command('sessions')
    .description('list the open consoles of this node, or of every node with --peers; --close ID closes one')
    .addOption(configOption()).addOption(configDirOption())
    .option('--peers <urls>', 'API base URLs of all nodes, comma-separated (default [api] peers; none: this node\'s API)')
    .option('--instance <name>', 'only consoles of this instance')
    .option('--close <id>', 'close this console (with 4030, "closed by an administrator") on whichever node has it')
    .option('--json', 'machine-readable output')
    .option('--api <url>', 'API base URL (default from the config\'s [api] host/port)')
    .option('--api-key-file <file>', 'file with the API key (default: the config\'s key file)')
    .action(sessionsCommand);
  // Nova's three console proxy binaries, replaced: the same command line each.
  novaProxyCommand(program, 'nova-novncproxy', 'tokens from Nova\'s database, console proxy only', '[vnc] novncproxy_host', novaNovncproxy);
  novaProxyCommand(program, 'nova-serialproxy', 'serial tokens from Nova\'s database, serial listener only', '[serial_console] serialproxy_host', novaSerialproxy);
  novaProxyCommand(program, 'nova-spicehtml5proxy', 'spice-html5 tokens from Nova\'s database, SPICE listener only', '[spice] html5proxy_host', novaSpicehtml5proxy);
  const configCmd = program.command('config').description('configuration tools');
  configCmd.command('check')
    .description('validate the configuration files and report every problem')
    .addOption(configOption()).addOption(configDirOption())
    .action(configCheck);
  return program;
}

/** One of Nova's proxy commands, with Nova's options (`--web`, `--record`, `--daemon`, `--ssl_only`…). */
function novaProxyCommand(program: Command, name: string, what: string, listenOption: string, action: (opts: NovaProxyArgs) => Promise<void>): void {
  program.command(name)
    .description(`drop-in for Nova's ${name}: the operator's nova.conf, ${what}`)
    .addOption(configOption()).addOption(configDirOption())
    .option('--web <dir>', 'accepted (Nova\'s unit files pass it) and ignored: the console pages are Porthole\'s')
    .option('--record <file>', 'record every console into this file prefix\'s directory (as [console] record = true, record_dir = its directory)')
    .option('--daemon', 'refused: run in the foreground under systemd')
    .option('--ssl_only', 'as [DEFAULT] ssl_only')
    .option('--cert <file>', 'as [DEFAULT] cert')
    .option('--key <file>', 'as [DEFAULT] key')
    .option('--source_is_ipv6', `accepted and ignored (Porthole listens on what ${listenOption} says)`)
    .option('--debug', 'as [DEFAULT] debug')
    .action(action);
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
