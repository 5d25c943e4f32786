/**
 * The REST API (fastify factory, no listen): Porthole's own `/v1` routes plus the Nova-compatible
 * `remote-consoles`, `os-getVNCConsole`, `os-getSerialConsole` and `os-getSPICEConsole` calls, so existing tooling can point at Porthole.
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { ComputeDriver } from '../compute/driver.js';
import { ERROR_CATALOGUE, isPortholeError, PortholeError } from '../errors.js';
import type { ConsoleProtocol, ConsoleRequester, ConsoleType } from '../console/types.js';
import type { SessionInfo } from '../sessions/registry.js';
import type { AuditSink } from '../audit/audit-log.js';
import { tokenLogId } from '../tokens/token.js';
import type { ConsoleService, MintedConsole } from './consoles.js';
import { digestKey, matchKey, presentedKey, type ApiKey } from './keys.js';

/** What the API needs of the session registry. */
export interface SessionDirectory {
  list(): SessionInfo[];
  close(id: string, reason: PortholeError): boolean;
  /** Close every console of these instance names/UUIDs; how many. */
  closeInstances(keys: readonly string[], reason: () => PortholeError): number;
}

export interface ApiServerOptions {
  readonly consoles: ConsoleService;
  readonly sessions: SessionDirectory;
  readonly driver: ComputeDriver;
  /** Keys and their names: the name is recorded as `who.key` of what the key mints. */
  readonly apiKeys: readonly ApiKey[];
  readonly logger: Logger;
  readonly health: () => Promise<{ ok: boolean } & Record<string, unknown>>;
  /** Prometheus exposition (GET /metrics, no key: it holds no token, and no instance name unless configured). */
  readonly metrics?: { readonly contentType: string; metrics(): Promise<string> } | undefined;
  /** `[audit]`: consoles minted, tokens revoked, sessions killed (the proxy reports the rest). */
  readonly audit?: AuditSink | undefined;
  /** `[porthole] node_name`: said with the session list, so lists of several nodes can be merged. */
  readonly node?: string | undefined;
  /** Session recordings: listed and downloaded (with a key) for the playback page. */
  readonly recordings?: { list(): ReadonlyArray<{ name: string; protocol: string }>; pathOf(name: string): string | undefined } | undefined;
  /** The `/admin` pages (static files; they hold no data and ask for the key themselves). */
  readonly adminSite?: { serve(req: IncomingMessage, res: ServerResponse): boolean } | undefined;
}

/** `/admin` and below: static pages served without a key (their API calls carry one). Pure. */
export function isAdminPage(url: string): boolean {
  const path = url.split('?')[0] as string;
  return path === '/admin' || path.startsWith('/admin/');
}

/** The longest instance name or UUID the API accepts, in every route (mint, revoke, Nova's). */
export const MAX_INSTANCE_NAME_LENGTH = 255;

const sessionFilter = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(['instance', 'protocol', 'key', 'user', 'project'].map((k) => [k, { type: 'string', maxLength: 255 }])),
} as const;

const consoleBody = {
  type: 'object',
  required: ['instance'],
  additionalProperties: false,
  properties: {
    instance: { type: 'string', minLength: 1, maxLength: MAX_INSTANCE_NAME_LENGTH },
    // Who the console is for, as the caller says (a dashboard passes its end user): shown in sessions and logs.
    user: { type: 'string', minLength: 1, maxLength: 255 },
    project: { type: 'string', minLength: 1, maxLength: 255 },
    protocol: { type: 'string', enum: ['vnc', 'serial', 'spice'], default: 'vnc' },
    // Enforced by the proxy: no keyboard, pointer or clipboard reaches the VM (VNC and serial).
    view_only: { type: 'boolean' },
    // Record this console's session ([console] record_dir; VNC and serial).
    record: { type: 'boolean' },
    // Default by protocol: novnc for vnc, serial for serial, spice-html5 for spice.
    type: { type: 'string', enum: ['novnc', 'vnc', 'serial', 'spice-html5', 'native'] },
  },
} as const;

const novaRemoteConsoleBody = {
  type: 'object',
  required: ['remote_console'],
  properties: {
    remote_console: {
      type: 'object',
      required: ['protocol', 'type'],
      properties: { protocol: { type: 'string', enum: ['vnc', 'serial', 'spice', 'rdp', 'mks'] }, type: { type: 'string' } },
    },
  },
} as const;

const instanceParam = {
  type: 'object',
  properties: { instance: { type: 'string', minLength: 1, maxLength: MAX_INSTANCE_NAME_LENGTH } },
} as const;

const sessionParam = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9a-z-]+$' } },
} as const;

const novaServerParam = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: MAX_INSTANCE_NAME_LENGTH } },
} as const;

/** A path parameter may be percent-encoded: up to 3 characters per byte, 4 bytes per character. */
const MAX_PARAM_URL_LENGTH = MAX_INSTANCE_NAME_LENGTH * 12;

function errorBody(code: string, message: string) {
  return { code, message };
}

export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    // fastify's default (100) answered 414 to names that POST /v1/consoles accepts, so they could not be revoked.
    routerOptions: { maxParamLength: MAX_PARAM_URL_LENGTH },
    // Errors fastify answers before routing (414 param too long, 400 bad URL) in our shape too.
    frameworkErrors: (err, _req, reply) => {
      const status = (err as FastifyError).statusCode ?? 400;
      const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? `a path parameter is longer than ${MAX_PARAM_URL_LENGTH} characters` : 'malformed URL';
      void (reply as FastifyReply).code(status).send(errorBody('PH_ERR_API_BAD_REQUEST', message));
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });
  const digests = options.apiKeys.map((k) => ({ name: k.name, digest: digestKey(k.key) }));
  /** Which key each authorized request came with (its name; never the key). */
  const keyNames = new WeakMap<object, string>();

  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/healthz' || (req.url === '/metrics' && options.metrics !== undefined)) return;
    if (options.adminSite !== undefined && (req.method === 'GET' || req.method === 'HEAD') && isAdminPage(req.url)) return;
    const key = presentedKey(req.headers);
    const name = key === undefined ? undefined : matchKey(key, digests);
    if (name !== undefined) keyNames.set(req, name);
    if (name === undefined) {
      await reply.code(401).header('WWW-Authenticate', 'Bearer').send(errorBody('PH_ERR_API_UNAUTHORIZED', ERROR_CATALOGUE.PH_ERR_API_UNAUTHORIZED.summary));
    }
  });

  app.setErrorHandler((err: FastifyError | PortholeError, _req, reply) => {
    if (isPortholeError(err)) {
      if (err.httpStatus >= 500) options.logger.error({ err }, err.message);
      return reply.code(err.httpStatus).send(errorBody(err.code, err.message));
    }
    const fe = err as FastifyError;
    if (fe.validation) return reply.code(400).send(errorBody('PH_ERR_API_BAD_REQUEST', fe.message));
    if (fe.statusCode !== undefined && fe.statusCode < 500) {
      // Framework refusals (413 body too large, 414, 415 media type…) keep their status, in our shape.
      return reply.code(fe.statusCode).send(errorBody('PH_ERR_API_BAD_REQUEST', fe.message));
    }
    options.logger.error({ err }, 'API request failed');
    return reply.code(500).send(errorBody('PH_ERR_INTERNAL', 'internal error'));
  });

  app.setNotFoundHandler((_req, reply) => reply.code(404).send(errorBody('PH_ERR_API_NOT_FOUND', 'no such route')));

  // Without a key: up/down and the version (for load balancers); with one: every detail.
  if (options.metrics !== undefined) {
    const metrics = options.metrics;
    app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));
  }

  if (options.adminSite !== undefined) {
    const site = options.adminSite;
    const page = async (req: FastifyRequest, reply: FastifyReply) => {
      reply.hijack();
      if (!site.serve(req.raw, reply.raw)) {
        reply.raw.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify(errorBody('PH_ERR_API_NOT_FOUND', 'no such page')));
      }
    };
    app.get('/admin', page);
    app.get('/admin/*', page);
  }

  app.get('/healthz', async (req, reply) => {
    const health = await options.health();
    const key = presentedKey(req.headers);
    const authorized = key !== undefined && matchKey(key, digests) !== undefined;
    return reply.code(health.ok ? 200 : 503).send(authorized ? health : { ok: health.ok, version: health.version });
  });

  const whoOf = (req: object, said: { user?: string | undefined; project?: string | undefined } = {}) => ({
    key: keyNames.get(req), ...(said.user === undefined ? {} : { user: said.user }), ...(said.project === undefined ? {} : { project: said.project }),
  });

  const audited = (minted: MintedConsole, who: ConsoleRequester, remote: string) => options.audit?.record({
    event: 'console.minted', instance: minted.instance, instance_uuid: minted.instance_uuid, protocol: minted.protocol, console_type: minted.type,
    remote, who, token_id: tokenLogId(minted.token), expires_at: minted.expires_at, view_only: minted.view_only || undefined,
  });

  app.post<{ Body: { instance: string; protocol: ConsoleProtocol; type?: ConsoleType; user?: string; project?: string; view_only?: boolean; record?: boolean } }>(
    '/v1/consoles', { schema: { body: consoleBody } },
    async (req, reply) => {
      const { instance, protocol, type } = req.body;
      const who = whoOf(req, req.body);
      const byProtocol: Record<ConsoleProtocol, ConsoleType> = { vnc: 'novnc', serial: 'serial', spice: 'spice-html5' };
      const minted = await options.consoles.mint({
        instance, protocol, type: type ?? byProtocol[protocol], who, viewOnly: req.body.view_only === true, record: req.body.record === true,
      });
      audited(minted, who, req.ip);
      // remote-viewer's own format when asked for it (`curl -H 'Accept: application/x-virt-viewer' … > c.vv`).
      if (minted.vv !== undefined && (req.headers.accept ?? '').includes('application/x-virt-viewer')) {
        return reply.code(201).type('application/x-virt-viewer').header('Content-Disposition', 'attachment; filename="console.vv"').send(minted.vv);
      }
      return reply.code(201).send(minted);
    },
  );

  app.delete<{ Params: { instance: string } }>(
    '/v1/instances/:instance/consoles', { schema: { params: instanceParam } },
    async (req, reply) => {
      const revoked = await options.consoles.revoke(req.params.instance);
      req.log.info({ instance: req.params.instance, revoked }, 'console tokens revoked');
      options.audit?.record({ event: 'console.revoked', instance: req.params.instance, count: revoked, by: keyNames.get(req), remote: req.ip });
      return reply.code(200).send({ instance: req.params.instance, revoked: revoked ?? null });
    },
  );

  app.get('/v1/instances', async () => ({ instances: await options.driver.list() }));

  // Open consoles of this node (each node lists its own; a load balancer's nodes are asked one by one).
  app.get<{ Querystring: { instance?: string; protocol?: string; key?: string; user?: string; project?: string } }>(
    '/v1/sessions', { schema: { querystring: sessionFilter } },
    async (req) => {
      const q = req.query;
      const sessions = options.sessions.list().filter((s) => (q.instance === undefined || s.instance === q.instance) &&
        (q.protocol === undefined || s.protocol === q.protocol) && (q.key === undefined || s.who?.key === q.key) &&
        (q.user === undefined || s.who?.user === q.user) && (q.project === undefined || s.who?.project === q.project));
      return { node: options.node, sessions };
    },
  );
  app.delete<{ Params: { id: string } }>(
    '/v1/sessions/:id', { schema: { params: sessionParam } },
    async (req, reply) => {
      const session = options.sessions.list().find((s) => s.id === req.params.id);
      if (session === undefined || !options.sessions.close(req.params.id, new PortholeError('PH_ERR_SESSION_CLOSED_BY_ADMIN'))) {
        throw new PortholeError('PH_ERR_SESSION_NOT_FOUND', `no console session ${req.params.id} on this node`);
      }
      req.log.info({ sessionId: req.params.id, by: keyNames.get(req) }, 'console session closed by an administrator');
      options.audit?.record({ event: 'session.killed', session: session.id, instance: session.instance, protocol: session.protocol, who: session.who, count: 1, by: keyNames.get(req), remote: req.ip });
      return reply.code(204).send();
    },
  );
  // Every open console of an instance on this node (the tokens stay valid: DELETE …/consoles revokes them).
  app.delete<{ Params: { instance: string } }>(
    '/v1/instances/:instance/sessions', { schema: { params: instanceParam } },
    async (req) => {
      const keys = await options.consoles.instanceKeys(req.params.instance);
      const closed = options.sessions.closeInstances(keys, () => new PortholeError('PH_ERR_SESSION_CLOSED_BY_ADMIN'));
      req.log.info({ instance: req.params.instance, closed, by: keyNames.get(req) }, 'console sessions closed by an administrator');
      options.audit?.record({ event: 'session.killed', instance: req.params.instance, count: closed, by: keyNames.get(req), remote: req.ip });
      return { instance: req.params.instance, closed };
    },
  );

  if (options.recordings !== undefined) {
    const recordings = options.recordings;
    app.get('/v1/recordings', async () => ({ recordings: recordings.list() }));
    app.get<{ Params: { name: string } }>(
      '/v1/recordings/:name', { schema: { params: { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 255 } } } } },
      async (req, reply) => {
        // Only a name the directory listing has: the caller's string never becomes a path.
        const path = recordings.pathOf(req.params.name);
        if (path === undefined) throw new PortholeError('PH_ERR_API_NOT_FOUND', `no recording ${req.params.name}`);
        req.log.info({ recording: req.params.name, by: keyNames.get(req) }, 'recording downloaded');
        const type = req.params.name.endsWith('.cast') ? 'application/x-asciicast' : 'text/javascript; charset=utf-8';
        return reply.type(type).header('Cache-Control', 'no-store').header('Content-Disposition', `attachment; filename="${req.params.name}"`).send(createReadStream(path));
      },
    );
  }

  // Nova compute API compatibility (microversion 2.6+ remote-consoles, and the older action).
  app.post<{ Params: { id: string }; Body: { remote_console: { protocol: ConsoleProtocol; type: ConsoleType } } }>(
    '/v2.1/servers/:id/remote-consoles', { schema: { params: novaServerParam, body: novaRemoteConsoleBody } },
    async (req) => {
      const { protocol, type } = req.body.remote_console;
      const who = whoOf(req);
      const minted = await options.consoles.mint({ instance: req.params.id, protocol, type, who });
      audited(minted, who, req.ip);
      return { remote_console: { protocol: minted.protocol, type: minted.type, url: minted.url } };
    },
  );

  app.post<{ Params: { id: string }; Body: Record<string, { type?: string } | undefined> }>(
    '/v2.1/servers/:id/action', { schema: { params: novaServerParam } },
    async (req) => {
      const actions: ReadonlyArray<[string, ConsoleProtocol]> = [['os-getVNCConsole', 'vnc'], ['os-getSerialConsole', 'serial'], ['os-getSPICEConsole', 'spice']];
      const found = actions.find(([name]) => req.body?.[name] !== undefined);
      const action = found === undefined ? undefined : req.body?.[found[0]];
      if (found === undefined || !action || typeof action.type !== 'string') {
        throw new PortholeError('PH_ERR_API_BAD_REQUEST',
          'only the os-getVNCConsole, os-getSerialConsole and os-getSPICEConsole actions are supported: {"os-getVNCConsole": {"type": "novnc"}}, {"os-getSerialConsole": {"type": "serial"}}, {"os-getSPICEConsole": {"type": "spice-html5"}}');
      }
      const who = whoOf(req);
      const minted = await options.consoles.mint({ instance: req.params.id, protocol: found[1], type: action.type as ConsoleType, who });
      audited(minted, who, req.ip);
      return { console: { type: minted.type, url: minted.url } };
    },
  );

  return app;
}
