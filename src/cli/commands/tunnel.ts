/**
 * `porthole tunnel INSTANCE|CONSOLE_URL`: a local port for native console clients (TigerVNC,
 * remote-viewer, vncsnapshot) that reaches the console through the proxy, like `virtctl vnc`.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { consoleSocketOf } from '../../native/console-url.js';
import { ConsoleTunnel, type TunnelConnectionEnd, type TunnelTarget } from '../../native/tunnel.js';
import { apiMinter } from '../api-client.js';
import { CliExit, type ConfigArgs } from '../common.js';

export interface TunnelArgs extends ConfigArgs {
  readonly listen: string;
  readonly exec?: string;
  readonly once?: boolean;
  readonly json?: boolean;
  readonly protocol: string;
  readonly api?: string;
  readonly apiKeyFile?: string;
  readonly ca?: string;
}

/** Re-mint this long before a token's expiry, so a connection never starts with a dying token. */
const REMINT_MARGIN_MS = 5000;

/** `host:port` (IPv6 in brackets) → parts. Pure. @throws CliExit */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port > 65535) throw new CliExit(2, `--listen ${value}: expected host:port, e.g. 127.0.0.1:0 or [::1]:5999`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

/** One line for the person: why a tunnelled console ended. Pure. */
export function describeEnd(end: TunnelConnectionEnd): string {
  const bytes = `${end.bytesToClient} bytes in, ${end.bytesToServer} out`;
  if (end.opened && (end.code === 1000 || end.code === 1005)) return `console connection from ${end.remote} closed (${bytes})`;
  // The proxy accepts the upgrade and then closes with the reason, so a page can show it: with no
  // byte of the console ever received, that is a refusal.
  const how = end.httpStatus !== undefined || end.bytesToClient === 0 ? 'refused' : 'closed';
  return `console connection from ${end.remote} ${how}: ${end.httpStatus === undefined ? `${end.code} ` : ''}${end.reason || '(no reason given)'} (${bytes})`;
}

export async function tunnelCommand(target: string, opts: TunnelArgs): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  const fixed = consoleSocketOf(target);
  let next: () => Promise<TunnelTarget>;
  let what: string;
  if (fixed !== undefined) {
    next = () => Promise.resolve({ wsUrl: fixed.wsUrl });
    what = 'the console URL';
  } else {
    if (/^[a-z]+:\/\//i.test(target)) throw new CliExit(2, `${target.replace(/token=[^&]*/, 'token=…')}: not a console URL with a token (expected what the API or Nova returned)`);
    const mint = apiMinter(opts);
    let current: { wsUrl: string; expiresAt: number } | undefined;
    next = async () => {
      if (current === undefined || Date.now() > current.expiresAt - REMINT_MARGIN_MS) {
        const minted = await mint({ instance: target, protocol: opts.protocol });
        const socket = consoleSocketOf(minted.url);
        if (socket === undefined) throw new CliExit(1, 'the API returned a console URL without a token');
        current = { wsUrl: socket.wsUrl, expiresAt: Date.parse(minted.expires_at) };
      }
      return { wsUrl: current.wsUrl };
    };
    await next(); // fail now, not at the first connection, if the instance or the API is wrong
    what = `instance ${target}`;
  }
  const tunnel = new ConsoleTunnel({
    host, port, target: next, once: opts.once === true,
    ca: opts.ca === undefined ? undefined : readFileSync(opts.ca),
    onConnectionEnd: (end) => process.stderr.write(`porthole: ${describeEnd(end)}\n`),
    onError: (err) => process.stderr.write(`porthole: ${err.message}\n`),
  });
  let address;
  try {
    address = await tunnel.listen();
  } catch (err) {
    throw new CliExit(1, `cannot listen on ${opts.listen}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const local = `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
  if (opts.json === true) process.stdout.write(`${JSON.stringify({ port: address.port, address: address.address })}\n`);
  else process.stdout.write(`Tunnel to ${what} on ${local}; connect a native client there (TigerVNC: vncviewer ${address.address}::${address.port}).\n`);
  if (opts.exec !== undefined) {
    const child = spawn('/bin/sh', ['-c', `exec ${opts.exec.replaceAll('{port}', String(address.port))}`], { stdio: 'inherit' });
    // Stopping the tunnel stops the viewer it started (exec: the shell is replaced by the command).
    const stopChild = () => child.kill('SIGTERM');
    process.once('SIGINT', stopChild);
    process.once('SIGTERM', stopChild);
    const code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1))));
    process.off('SIGINT', stopChild);
    process.off('SIGTERM', stopChild);
    await tunnel.close();
    if (code !== 0) throw new CliExit(code, `${opts.exec.split(' ')[0] ?? 'the command'} exited with ${code}`);
    return;
  }
  const stop = () => void tunnel.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await tunnel.done;
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
}
