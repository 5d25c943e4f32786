/** `porthole console url`: mint a console URL through the running API. */
import { apiMinter } from '../api-client.js';
import type { ConfigArgs } from '../common.js';

export async function consoleUrl(instance: string, opts: ConfigArgs & { protocol: string; type?: string; json?: boolean; api?: string }): Promise<void> {
  const body = await apiMinter(opts)({ instance, protocol: opts.protocol, type: opts.type });
  // A serial console: the browser page first (what a person opens), then Nova's WebSocket URL.
  process.stdout.write(opts.json ? `${JSON.stringify(body, null, 2)}\n` : `${body.page_url === undefined ? '' : `${body.page_url}\n`}${body.url}\n`);
}
