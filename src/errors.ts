/**
 * The one catalogue of Porthole errors. Every failure a user or operator can see has a stable
 * `PH_ERR_*` code, an HTTP status (API and pre-upgrade proxy answers) and a WebSocket close code
 * (after the upgrade). docs/errors.md lists the same codes; a unit test keeps the two in step.
 *
 * WebSocket close codes 4000-4999 are reserved for applications (RFC 6455 §7.4.2); the console
 * page maps them to a sentence for the person in front of the browser.
 */

export interface ErrorSpec {
  readonly httpStatus: number;
  readonly wsCloseCode: number;
  /** Short, token-free text; also used as the WebSocket close reason (≤ 123 bytes). */
  readonly summary: string;
}

export const ERROR_CATALOGUE = {
  PH_ERR_CONFIG_INVALID: { httpStatus: 500, wsCloseCode: 1011, summary: 'configuration is invalid' },
  PH_ERR_CONFIG_FILE_UNREADABLE: { httpStatus: 500, wsCloseCode: 1011, summary: 'configuration file cannot be read' },
  PH_ERR_INVENTORY_INVALID: { httpStatus: 500, wsCloseCode: 1011, summary: 'static inventory file is invalid' },
  PH_ERR_API_UNAUTHORIZED: { httpStatus: 401, wsCloseCode: 4401, summary: 'missing or wrong API key' },
  PH_ERR_API_BAD_REQUEST: { httpStatus: 400, wsCloseCode: 4400, summary: 'malformed request' },
  PH_ERR_PROTOCOL: { httpStatus: 400, wsCloseCode: 1003, summary: 'WebSocket use not supported: binary frames and the "binary" subprotocol only' },
  PH_ERR_API_NOT_FOUND: { httpStatus: 404, wsCloseCode: 4404, summary: 'no such route' },
  PH_ERR_INSTANCE_NOT_FOUND: { httpStatus: 404, wsCloseCode: 4404, summary: 'no such instance' },
  PH_ERR_INSTANCE_NO_CONSOLE: { httpStatus: 409, wsCloseCode: 4409, summary: 'instance has no console of that protocol' },
  PH_ERR_INSTANCE_NOT_RUNNING: { httpStatus: 409, wsCloseCode: 4409, summary: 'instance is not running' },
  PH_ERR_INSTANCE_CONSOLE_UNREACHABLE: { httpStatus: 409, wsCloseCode: 4409, summary: "instance's console cannot be reached over TCP from the proxy" },
  PH_ERR_INSTANCE_SERIAL_PTY_ONLY: { httpStatus: 409, wsCloseCode: 4409, summary: 'the instance\'s serial console is a pty: reachable only with `virsh console` on its host' },
  PH_ERR_CONSOLE_TYPE_UNSUPPORTED: { httpStatus: 400, wsCloseCode: 4400, summary: 'console protocol/type not supported' },
  PH_ERR_TOKEN_MISSING: { httpStatus: 401, wsCloseCode: 4001, summary: 'no console token in the request' },
  PH_ERR_TOKEN_INVALID: { httpStatus: 401, wsCloseCode: 4002, summary: 'console token is not valid' },
  PH_ERR_TOKEN_EXPIRED: { httpStatus: 401, wsCloseCode: 4003, summary: 'console token has expired' },
  PH_ERR_TOKEN_REVOKED: { httpStatus: 401, wsCloseCode: 4004, summary: 'console token was revoked' },
  PH_ERR_TOKEN_SOURCE_READ_ONLY: { httpStatus: 409, wsCloseCode: 4409, summary: 'tokens come from Nova here; this API does not mint or revoke them' },
  PH_ERR_TOKEN_CONSOLE_TYPE: { httpStatus: 409, wsCloseCode: 4006, summary: 'console token is for another kind of console' },
  PH_ERR_ORIGIN_FORBIDDEN: { httpStatus: 403, wsCloseCode: 4005, summary: 'Origin header not allowed' },
  PH_ERR_UPSTREAM_UNREACHABLE: { httpStatus: 502, wsCloseCode: 4010, summary: 'console server (VNC, serial) unreachable' },
  PH_ERR_UPSTREAM_TIMEOUT: { httpStatus: 504, wsCloseCode: 4011, summary: 'console server (VNC, serial) did not answer in time' },
  PH_ERR_UPSTREAM_CLOSED: { httpStatus: 502, wsCloseCode: 4012, summary: 'console server (VNC, serial) closed the connection' },
  PH_ERR_TARGET_STALE: { httpStatus: 410, wsCloseCode: 4015, summary: 'the VM no longer owns the console port this token was issued for' },
  PH_ERR_LIBVIRT_UNAVAILABLE: { httpStatus: 503, wsCloseCode: 4016, summary: 'libvirt is not available' },
  PH_ERR_RFB_HANDSHAKE: { httpStatus: 502, wsCloseCode: 4017, summary: 'RFB handshake with the VNC server or browser failed' },
  PH_ERR_RFB_NO_COMMON_AUTH: { httpStatus: 502, wsCloseCode: 4018, summary: 'the VNC server offers no allowed security type' },
  PH_ERR_RFB_AUTH_FAILED: { httpStatus: 502, wsCloseCode: 4019, summary: 'the VNC server rejected the proxy\'s credentials' },
  PH_ERR_UPSTREAM_TLS: { httpStatus: 502, wsCloseCode: 4020, summary: 'TLS to the VNC server failed (VeNCrypt)' },
  PH_ERR_LIMIT_SESSIONS: { httpStatus: 503, wsCloseCode: 4021, summary: 'the console proxy is at its session limit' },
  PH_ERR_LIMIT_INSTANCE_SESSIONS: { httpStatus: 503, wsCloseCode: 4022, summary: 'too many open consoles for this instance' },
  PH_ERR_SESSION_IDLE: { httpStatus: 408, wsCloseCode: 4023, summary: 'console closed after being idle' },
  PH_ERR_SESSION_EXPIRED: { httpStatus: 401, wsCloseCode: 4024, summary: 'console closed because its token expired' },
  PH_ERR_PROXY_FD_EXHAUSTED: { httpStatus: 503, wsCloseCode: 4025, summary: 'the console proxy ran out of file descriptors' },
  PH_ERR_NOVA_RPC_UNAVAILABLE: { httpStatus: 503, wsCloseCode: 4027, summary: 'cannot ask nova-compute whether the console port is still the instance\'s (RabbitMQ or nova-compute unreachable)' },
  PH_ERR_NOVA_RPC_FAILED: { httpStatus: 502, wsCloseCode: 4028, summary: 'nova-compute could not confirm the console port (it raised an error)' },
  PH_ERR_SPICE_AUTH_FAILED: { httpStatus: 502, wsCloseCode: 4031, summary: 'the SPICE server rejected the proxy\'s password (ticket)' },
  PH_ERR_SPICE_LINK_FAILED: { httpStatus: 502, wsCloseCode: 4032, summary: 'the SPICE server refused the channel link' },
  PH_ERR_RFB_CLIENT_MESSAGE: { httpStatus: 400, wsCloseCode: 4033, summary: 'the viewer sent an RFB message a view-only console does not pass' },
  PH_ERR_RECORDING_UNAVAILABLE: { httpStatus: 503, wsCloseCode: 4034, summary: 'this console must be recorded and the recording cannot be written' },
  PH_ERR_RECORDING_LIMIT: { httpStatus: 507, wsCloseCode: 4035, summary: 'the console\'s recording reached its size limit' },
  PH_ERR_SESSION_CLOSED_BY_ADMIN: { httpStatus: 410, wsCloseCode: 4030, summary: 'console closed by an administrator' },
  PH_ERR_SESSION_NOT_FOUND: { httpStatus: 404, wsCloseCode: 4404, summary: 'no such console session on this node' },
  PH_ERR_TOO_MANY_FAILURES: { httpStatus: 429, wsCloseCode: 4029, summary: 'too many failed token attempts from this address' },
  PH_ERR_STORE_UNAVAILABLE: { httpStatus: 503, wsCloseCode: 4013, summary: 'token store unavailable, try again' },
  PH_ERR_CLIENT_TIMEOUT: { httpStatus: 408, wsCloseCode: 4014, summary: 'browser stopped answering keepalive pings' },
  PH_ERR_SHUTTING_DOWN: { httpStatus: 503, wsCloseCode: 1001, summary: 'console proxy is shutting down' },
  PH_ERR_LISTEN_FAILED: { httpStatus: 500, wsCloseCode: 1011, summary: 'cannot listen on the configured address' },
  PH_ERR_DEMO_UNAVAILABLE: { httpStatus: 500, wsCloseCode: 1011, summary: 'demo VM cannot be started' },
  PH_ERR_AUDIT_WRITE: { httpStatus: 500, wsCloseCode: 1011, summary: 'an audit event could not be written' },
  PH_ERR_INTERNAL: { httpStatus: 500, wsCloseCode: 1011, summary: 'internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface PortholeErrorOptions {
  cause?: unknown;
  /** Structured detail safe to show a caller (never secrets). */
  details?: Record<string, unknown>;
}

/** Base error: callers match on `err.code`, never on the class. */
export class PortholeError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly wsCloseCode: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, options: PortholeErrorOptions = {}) {
    super(message ?? ERROR_CATALOGUE[code].summary, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PortholeError';
    this.code = code;
    this.httpStatus = ERROR_CATALOGUE[code].httpStatus;
    this.wsCloseCode = ERROR_CATALOGUE[code].wsCloseCode;
    this.details = options.details;
  }
}

/** True when `err` carries one of our codes (works across realms and bundles, unlike instanceof). */
export function isPortholeError(err: unknown): err is PortholeError {
  return (
    typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' &&
    Object.hasOwn(ERROR_CATALOGUE, (err as { code: string }).code)
  );
}

/**
 * WebSocket close reason for a code: `CODE: summary`, cut to the 123-byte limit of RFC 6455 §5.5.
 * Summaries are ASCII, so slicing by characters is slicing by bytes.
 */
export function closeReasonFor(code: ErrorCode): string {
  return `${code}: ${ERROR_CATALOGUE[code].summary}`.slice(0, 123);
}
