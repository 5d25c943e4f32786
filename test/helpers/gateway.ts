/** Start a real Gateway on free loopback ports with a config file written for the test. */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import type { InventoryEntry } from '../../src/compute/inventory.js';
import { Gateway, type GatewayOptions } from '../../src/gateway.js';
import type { TokenStoreClock } from '../../src/tokens/store.js';
import { freePort } from './net.js';
import { runTempDir } from './run.js';

export interface TestGateway {
  readonly gateway: Gateway;
  readonly dir: string;
  readonly configFile: string;
  readonly apiUrl: string;
  readonly proxyUrl: string;
  readonly wsUrl: string;
  readonly apiKey: string;
  readonly logLines: string[];
  mint(instance: string, extra?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }>;
  api(method: string, path: string, body?: unknown, key?: string | null): Promise<{ status: number; body: Record<string, unknown> }>;
  close(graceMs?: number): Promise<void>;
}

export interface TestGatewayOptions {
  /** Extra INI text appended to the generated config. */
  readonly ini?: string;
  readonly builtin?: readonly InventoryEntry[];
  readonly clock?: TokenStoreClock;
  readonly dir?: string;
  readonly keepDir?: boolean;
  readonly debug?: boolean;
  /** The console page scheme in novncproxy_base_url (https when the proxy serves TLS). */
  readonly scheme?: 'http' | 'https';
  readonly extra?: Partial<GatewayOptions>;
}

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = options.dir ?? runTempDir('gateway');
  const proxyPort = await freePort();
  const apiPort = await freePort();
  const configFile = join(dir, 'porthole.conf');
  await writeFile(configFile, `[DEFAULT]
state_path = ${dir}/state
debug = ${options.debug ? 'true' : 'false'}
[vnc]
novncproxy_host = 127.0.0.1
novncproxy_port = ${proxyPort}
novncproxy_base_url = ${options.scheme ?? 'http'}://127.0.0.1:${proxyPort}/vnc_lite.html
[api]
host = 127.0.0.1
port = ${apiPort}
${options.ini ?? ''}
`);
  const removeDir = () => (options.keepDir || options.dir ? Promise.resolve() : rm(dir, { recursive: true, force: true }));
  let loaded;
  try {
    loaded = loadConfig([configFile]);
  } catch (err) {
    await removeDir(); // a config the test expects to be refused leaves nothing behind
    throw err;
  }
  const { config } = loaded;
  const logLines: string[] = [];
  const logger: Logger = pino({ level: options.debug ? 'debug' : 'info' }, { write: (line: string) => { logLines.push(line); } });
  let gateway: Gateway | undefined;
  try {
    gateway = await Gateway.create({
      config, logger, generateApiKey: true, builtinInstances: options.builtin ?? [],
      ...(options.clock ? { clock: options.clock } : {}),
      ...options.extra,
    });
    await gateway.start();
  } catch (err) {
    await gateway?.close();
    await removeDir();
    throw err;
  }
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const apiKey = gateway.apiKeys.keys[0] as string;
  const api: TestGateway['api'] = async (method, path, body, key = apiKey) => {
    const headers: Record<string, string> = {};
    if (key !== null) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${apiUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  };
  return {
    gateway, dir, configFile, apiUrl, apiKey, logLines,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    wsUrl: `ws://127.0.0.1:${proxyPort}/websockify`,
    api,
    mint: (instance, extra = {}) => api('POST', '/v1/consoles', { instance, ...extra }),
    async close(graceMs = 0) {
      await gateway.close(graceMs);
      const bug = logLines.find((l) => l.includes('illegal session transition'));
      if (bug) throw new Error(`session state machine bug logged: ${bug}`);
      if (!options.keepDir && !options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}
