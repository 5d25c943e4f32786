/** The pino logger factory. Tokens, API keys and cookies are redacted even at debug level. */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type DestinationStream, type Logger } from 'pino';
import { PortholeError } from './errors.js';

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

/**
 * Where oslo.log would write, from `[DEFAULT] log_file` and `log_dir` (oslo.log's
 * `_get_log_file_path`): both → log_dir/log_file (an absolute log_file wins, as os.path.join);
 * only log_file → it; only log_dir → log_dir/<binary>.log; neither → undefined (standard error). Pure.
 */
export function logFilePath(logFile: string, logDir: string, binary: string): string | undefined {
  if (logFile !== '') return logDir !== '' && !logFile.startsWith('/') ? join(logDir, logFile) : logFile;
  if (logDir !== '') return join(logDir, `${binary}.log`);
  return undefined;
}

/**
 * The log destination: the file (appended; `reopen()` after logrotate moved it), or standard error.
 * @throws PortholeError PH_ERR_CONFIG_INVALID when the file cannot be opened for appending: at start,
 *   not as lost log lines later.
 */
export function openLogDestination(path: string | undefined): DestinationStream & { reopen?: () => void } {
  if (path === undefined) return pino.destination({ dest: 2, sync: false });
  try {
    closeSync(openSync(path, 'a', 0o640));
  } catch (err) {
    throw new PortholeError('PH_ERR_CONFIG_INVALID', `[DEFAULT] log_file/log_dir: cannot append to ${path}: ${(err as Error).message}`, { cause: err });
  }
  return pino.destination({ dest: path, sync: false, append: true });
}
