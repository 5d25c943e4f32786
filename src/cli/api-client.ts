/** Minting a console through a running node's API, for `console url` and `tunnel`. */
import { loadApiKeys, parseKeyEntries } from '../api/keys.js';
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
  // The same format as [api] auth_keys_file (`name:key` or a plain key): the first key is used.
  const key = parseKeyEntries(text)[0];
  if (key === undefined) throw new CliExit(1, `--api-key-file ${file}: no key in the file`);
  return key.key;
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

export interface ApiAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * Requests to running nodes' APIs with the key from `--api-key-file` or the config's key file.
 * `base` defaults to `--api`, else the config's `[api] host`/`port`.
 * @throws CliExit when a node cannot be reached (with its address), never for an HTTP status.
 */
export function apiClient(opts: ApiMintArgs): { readonly base: string; request(method: string, path: string, body?: unknown, base?: string): Promise<ApiAnswer> } {
  const { config } = readConfig(opts);
  const defaultBase = opts.api ?? apiBaseUrl(config.api.host, config.api.port);
  let key: Promise<string> | undefined;
  const apiKey = () => (key ??= opts.apiKeyFile !== undefined
    ? Promise.resolve(readKeyFile(opts.apiKeyFile))
    : loadApiKeys(config.api.auth_keys_file, config.DEFAULT.state_path, false).then((k) => k.keys[0] ?? ''));
  return {
    base: defaultBase,
    async request(method, path, body, base = defaultBase) {
      let res: Response;
      try {
        res = await fetch(`${base.replace(/\/$/, '')}${path}`, {
          method,
          headers: { Authorization: `Bearer ${await apiKey()}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(15_000),
        });
      } catch (err) {
        throw new CliExit(1, `cannot reach the Porthole API at ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message} (is \`porthole serve\` running with the same config?)`);
      }
      const text = await res.text();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
      } catch {
        parsed = { message: text.slice(0, 200) };
      }
      return { status: res.status, body: parsed };
    },
  };
}

/** `CODE: message` of an API refusal. Pure. */
export function apiRefusal(answer: ApiAnswer): string {
  return `${typeof answer.body.code === 'string' ? answer.body.code : `HTTP ${answer.status}`}: ${typeof answer.body.message === 'string' ? answer.body.message : 'request failed'}`;
}

/** A function that mints a console for `instance` each time it is called. @throws CliExit with the API's code and message. */
export function apiMinter(opts: ApiMintArgs): (request: { instance: string; protocol: string; type?: string | undefined }) => Promise<MintedByApi> {
  const client = apiClient(opts);
  return async (request) => {
    const answer = await client.request('POST', '/v1/consoles', { instance: request.instance, protocol: request.protocol, ...(request.type === undefined ? {} : { type: request.type }) });
    if (answer.status !== 201 || typeof answer.body.url !== 'string') throw new CliExit(1, apiRefusal(answer));
    return answer.body as unknown as MintedByApi;
  };
}
