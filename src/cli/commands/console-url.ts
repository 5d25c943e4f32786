/** `porthole console url`: mint a console URL through the running API. */
import { loadApiKeys } from '../../api/keys.js';
import { CliExit, readConfig, apiBaseUrl, type ConfigArgs } from '../common.js';

export async function consoleUrl(instance: string, opts: ConfigArgs & { protocol: string; type?: string; json?: boolean; api?: string }): Promise<void> {
  const { config } = readConfig(opts);
  const keys = await loadApiKeys(config.api.auth_keys_file, config.DEFAULT.state_path, false);
  const base = opts.api ?? apiBaseUrl(config.api.host, config.api.port);
  let res: Response;
  try {
    res = await fetch(`${base}/v1/consoles`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${keys.keys[0]}` },
      body: JSON.stringify({ instance, protocol: opts.protocol, ...(opts.type === undefined ? {} : { type: opts.type }) }),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    throw new CliExit(1, `cannot reach the Porthole API at ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message} (is \`porthole serve\` running with the same config?)`);
  }
  const body = (await res.json().catch(() => ({}))) as { url?: string; page_url?: string; code?: string; message?: string };
  if (!res.ok || typeof body.url !== 'string') {
    throw new CliExit(1, `${body.code ?? `HTTP ${res.status}`}: ${body.message ?? 'request failed'}`);
  }
  // A serial console: the browser page first (what a person opens), then Nova's WebSocket URL.
  process.stdout.write(opts.json ? `${JSON.stringify(body, null, 2)}\n` : `${body.page_url === undefined ? '' : `${body.page_url}\n`}${body.url}\n`);
}
