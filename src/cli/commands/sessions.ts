/**
 * `porthole sessions`: the open consoles of one node or of all (`--peers`, default `[api] peers`),
 * each node answering for its own (GET /v1/sessions); `--close ID` closes one wherever it is open.
 * A node that cannot be reached is named and makes the exit status 1; the others are still shown.
 */
import { apiClient, apiRefusal, type ApiMintArgs } from '../api-client.js';
import { CliExit, readConfig } from '../common.js';

export interface SessionsArgs extends ApiMintArgs {
  readonly peers?: string | undefined;
  readonly instance?: string | undefined;
  readonly close?: string | undefined;
  readonly json?: boolean | undefined;
}

interface ListedSession {
  readonly id: string;
  readonly instance?: string;
  readonly protocol?: string;
  readonly remote: string;
  readonly started: string;
  readonly bytesToClient: number;
  readonly bytesToServer: number;
  readonly state: string;
  readonly who?: { key?: string; user?: string; project?: string };
  readonly node?: string;
}

/** A fixed-width table of sessions. Pure. */
export function sessionsTable(sessions: readonly ListedSession[], now: number): string {
  const rows = [['NODE', 'ID', 'INSTANCE', 'PROTOCOL', 'WHO', 'FROM', 'SINCE', 'TO VIEWER', 'TO SERVER', 'STATE']];
  for (const s of sessions) {
    const who = [s.who?.user, s.who?.project, s.who?.key === undefined ? undefined : `key ${s.who.key}`].filter((x) => x !== undefined).join('/');
    rows.push([s.node ?? '', s.id, s.instance ?? '', s.protocol ?? '', who, s.remote, `${Math.round((now - Date.parse(s.started)) / 1000)} s`,
      String(s.bytesToClient), String(s.bytesToServer), s.state]);
  }
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd()).join('\n') + '\n';
}

export async function sessionsCommand(opts: SessionsArgs): Promise<void> {
  const { config } = readConfig(opts);
  const client = apiClient(opts);
  const peers = opts.peers !== undefined ? opts.peers.split(',').map((p) => p.trim()).filter((p) => p !== '') : config.api.peers;
  const nodes = peers.length > 0 ? peers : [client.base];
  const problems: string[] = [];
  const ask = async (base: string, method: string, path: string) => {
    try {
      return await client.request(method, path, undefined, base);
    } catch (err) {
      problems.push(err instanceof CliExit ? err.message : String(err));
      return undefined;
    }
  };
  if (opts.close !== undefined) {
    const id = opts.close;
    const answers = await Promise.all(nodes.map((base) => ask(base, 'DELETE', `/v1/sessions/${encodeURIComponent(id)}`)));
    const closed = answers.findIndex((a) => a?.status === 204);
    for (const a of answers) if (a !== undefined && a.status !== 204 && a.status !== 404) problems.push(apiRefusal(a));
    if (closed >= 0) process.stdout.write(`closed ${id} on ${nodes[closed] ?? ''}\n`);
    else problems.push(`no open console ${id} on ${nodes.join(', ')}`);
  } else {
    const query = opts.instance === undefined ? '' : `?instance=${encodeURIComponent(opts.instance)}`;
    const answers = await Promise.all(nodes.map((base) => ask(base, 'GET', `/v1/sessions${query}`)));
    const all: ListedSession[] = [];
    answers.forEach((a, i) => {
      if (a === undefined) return;
      if (a.status !== 200) {
        problems.push(`${nodes[i] ?? ''}: ${apiRefusal(a)}`);
        return;
      }
      const node = typeof a.body.node === 'string' ? a.body.node : (nodes[i] as string);
      for (const s of a.body.sessions as ListedSession[]) all.push({ ...s, node });
    });
    process.stdout.write(opts.json ? `${JSON.stringify({ sessions: all }, null, 2)}\n` : all.length === 0 ? 'no open consoles\n' : sessionsTable(all, Date.now()));
  }
  if (problems.length > 0) throw new CliExit(1, problems.join('\nporthole: '));
}
