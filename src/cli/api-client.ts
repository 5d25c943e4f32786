/** Minting a console through a running node's API, for `console url` and `tunnel`. */
import { loadApiKeys } from '../api/keys.js';
import { readFileSync } from 'node:fs';
import { apiBaseUrl, CliExit, readConfig, type ConfigArgs } from './common.js';

/** The first non-empty line of a key file. @throws CliExit */
function readKeyFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliExit(1, `--api-key-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const key = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
  if (key === undefined) throw new CliExit(1, `--api-key-file ${file}: no key in the file`);
  return key;
}

export interface MintedByApi {
  readonly url: string;
  readonly page_url?: string;
  readonly token: string;
  readonly expires_at: string;
  readonly [key: string]: unknown;
}

export interface ApiMintArgs extends ConfigArgs {
  /** The API's base URL; default the config's `[api] host`/`port`. */
  readonly api?: string | undefined;
  /** A file holding the API key (first line); default the config's key file. Not a flag value: ps would show it. */
  readonly apiKeyFile?: string | undefined;
}

/** A function that mints a console for `instance` each time it is called. @throws CliExit with the API's code and message. */
export function apiMinter(opts: ApiMintArgs): (request: { instance: string; protocol: string; type?: string | undefined }) => Promise<MintedByApi> {
  const { config } = readConfig(opts);
  const base = opts.api ?? apiBaseUrl(config.api.host, config.api.port);
  return async (request) => {
    const keys = opts.apiKeyFile !== undefined
      ? { keys: [readKeyFile(opts.apiKeyFile)] }
      : await loadApiKeys(config.api.auth_keys_file, config.DEFAULT.state_path, false);
    let res: Response;
    try {
      res = await fetch(`${base}/v1/consoles`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${keys.keys[0]}` },
        body: JSON.stringify({ instance: request.instance, protocol: request.protocol, ...(request.type === undefined ? {} : { type: request.type }) }),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      throw new CliExit(1, `cannot reach the Porthole API at ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message} (is \`porthole serve\` running with the same config?)`);
    }
    const body = (await res.json().catch(() => ({}))) as Partial<MintedByApi> & { code?: string; message?: string };
    if (!res.ok || typeof body.url !== 'string') {
      throw new CliExit(1, `${body.code ?? `HTTP ${res.status}`}: ${body.message ?? 'request failed'}`);
    }
    return body as MintedByApi;
  };
}
