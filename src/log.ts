/** The pino logger factory. Tokens, API keys and cookies are redacted even at debug level. */
import { pino, type DestinationStream, type Logger } from 'pino';

export const REDACT_PATHS = [
  'token',
  '*.token',
  'req.query.token',
  'req.headers.authorization',
  'req.headers["x-auth-token"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'res.headers["set-cookie"]',
];

export interface LoggerOptions {
  readonly debug: boolean;
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const opts = {
    level: options.debug ? 'debug' : 'info',
    base: { service: 'porthole' },
    // `token` fields hold a hash prefix (tokenLogId); the censor only bites if a raw token slips in.
    redact: { paths: REDACT_PATHS.filter((p) => p !== 'token'), censor: '[redacted]' },
    // fastify logs request URLs; a console URL's query would carry the token.
    serializers: {
      req: (req: { method?: string; url?: string; ip?: string }) => ({ method: req.method, url: redactQuery(req.url), remote: req.ip }),
    },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** Drop any `token=` value from a URL-ish string. */
export function redactQuery(url: string | undefined): string | undefined {
  return url?.replace(/([?&](?:token|path)=)[^&#]*/gi, '$1[redacted]');
}
