/**
 * The REST API (fastify factory, no listen): Porthole's own `/v1` routes plus the Nova-compatible
 * `remote-consoles` and `os-getVNCConsole` calls, so existing tooling can point at Porthole.
 */
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ComputeDriver } from '../compute/driver.js';
import { ERROR_CATALOGUE, isPortholeError, PortholeError } from '../errors.js';
import type { ConsoleProtocol, ConsoleType } from '../tokens/store.js';
import type { ConsoleService } from './consoles.js';
import { digestKey, keyMatches, presentedKey } from './keys.js';

export interface ApiServerOptions {
  readonly consoles: ConsoleService;
  readonly driver: ComputeDriver;
  readonly apiKeys: readonly string[];
  readonly logger: Logger;
  readonly health: () => Promise<{ ok: boolean } & Record<string, unknown>>;
}

const consoleBody = {
  type: 'object',
  required: ['instance'],
  additionalProperties: false,
  properties: {
    instance: { type: 'string', minLength: 1, maxLength: 255 },
    protocol: { type: 'string', enum: ['vnc', 'serial'], default: 'vnc' },
    type: { type: 'string', enum: ['novnc', 'vnc', 'serial'], default: 'novnc' },
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
  properties: { instance: { type: 'string', minLength: 1, maxLength: 255 } },
} as const;

function errorBody(code: string, message: string) {
  return { code, message };
}

export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });
  const digests = options.apiKeys.map(digestKey);

  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/healthz') return;
    const key = presentedKey(req.headers);
    if (key === undefined || !keyMatches(key, digests)) {
      await reply.code(401).header('WWW-Authenticate', 'Bearer').send(errorBody('PH_ERR_API_UNAUTHORIZED', ERROR_CATALOGUE.PH_ERR_API_UNAUTHORIZED.summary));
    }
  });

  app.setErrorHandler((err: FastifyError | PortholeError, _req, reply) => {
    if (isPortholeError(err)) {
      if (err.httpStatus >= 500) options.logger.error({ err }, err.message);
      return reply.code(err.httpStatus).send(errorBody(err.code, err.message));
    }
    const fe = err as FastifyError;
    if (fe.validation || (fe.statusCode !== undefined && fe.statusCode < 500)) {
      return reply.code(400).send(errorBody('PH_ERR_API_BAD_REQUEST', fe.message));
    }
    options.logger.error({ err }, 'API request failed');
    return reply.code(500).send(errorBody('PH_ERR_INTERNAL', 'internal error'));
  });

  app.setNotFoundHandler((_req, reply) => reply.code(404).send(errorBody('PH_ERR_API_NOT_FOUND', 'no such route')));

  app.get('/healthz', async (_req, reply) => {
    const health = await options.health();
    return reply.code(health.ok ? 200 : 503).send(health);
  });

  app.post<{ Body: { instance: string; protocol: ConsoleProtocol; type: ConsoleType } }>(
    '/v1/consoles', { schema: { body: consoleBody } },
    async (req, reply) => reply.code(201).send(await options.consoles.mint(req.body)),
  );

  app.delete<{ Params: { instance: string } }>(
    '/v1/instances/:instance/consoles', { schema: { params: instanceParam } },
    async (req, reply) => {
      const revoked = await options.consoles.revoke(req.params.instance);
      req.log.info({ instance: req.params.instance, revoked }, 'console tokens revoked');
      return reply.code(204).send();
    },
  );

  app.get('/v1/instances', async () => ({ instances: await options.driver.list() }));

  // Nova compute API compatibility (microversion 2.6+ remote-consoles, and the older action).
  app.post<{ Params: { id: string }; Body: { remote_console: { protocol: ConsoleProtocol; type: ConsoleType } } }>(
    '/v2.1/servers/:id/remote-consoles', { schema: { body: novaRemoteConsoleBody } },
    async (req) => {
      const { protocol, type } = req.body.remote_console;
      const minted = await options.consoles.mint({ instance: req.params.id, protocol, type });
      return { remote_console: { protocol: minted.protocol, type: minted.type, url: minted.url } };
    },
  );

  app.post<{ Params: { id: string }; Body: Record<string, { type?: string } | undefined> }>(
    '/v2.1/servers/:id/action',
    async (req) => {
      const action = req.body?.['os-getVNCConsole'];
      if (!action || typeof action.type !== 'string') {
        throw new PortholeError('PH_ERR_API_BAD_REQUEST', 'only the os-getVNCConsole action is supported: {"os-getVNCConsole": {"type": "novnc"}}');
      }
      const minted = await options.consoles.mint({ instance: req.params.id, protocol: 'vnc', type: action.type as ConsoleType });
      return { console: { type: minted.type, url: minted.url } };
    },
  );

  return app;
}
