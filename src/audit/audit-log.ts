/**
 * The audit trail: one JSON line per console event (minted, opened, refused, closed, revoked,
 * killed by an administrator), to a file and/or syslog. The file is written synchronously, one
 * `write` per line: an event is on disk (in the page cache) before the next one is built, so a
 * SIGTERM, a crash after it or a logrotate between two events loses nothing, and a line is never
 * interleaved with another. Events are rare (per console, never per byte), so the cost is a few
 * microseconds per console.
 *
 * Syslog goes through util-linux's `logger` (Essential in Debian: always there) reading lines on
 * its stdin: Node has no Unix datagram sockets, which /dev/log is. Its pipe is bounded: when
 * `logger` cannot keep up, lines are counted as dropped (and logged), never buffered without bound.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fchmodSync, fstatSync, openSync, writeSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ConsoleEvents } from '../console/events.js';
import type { ConsoleProtocol, ConsoleRequester } from '../console/types.js';
import { PortholeError } from '../errors.js';

export type AuditEventName = 'console.minted' | 'console.opened' | 'console.refused' | 'console.closed' | 'console.revoked' | 'session.killed';

/** One audit line's fields (docs/audit.md lists them). Absent fields are left out of the line. */
export interface AuditEvent {
  readonly event: AuditEventName;
  readonly session?: string | undefined;
  readonly instance?: string | undefined;
  readonly instance_uuid?: string | undefined;
  readonly protocol?: ConsoleProtocol | undefined;
  readonly console_type?: string | undefined;
  readonly remote?: string | undefined;
  readonly who?: ConsoleRequester | undefined;
  /** The first 8 hex digits of the token's SHA-256, as in the logs: correlates a mint with its sessions. Never the token. */
  readonly token_id?: string | undefined;
  readonly expires_at?: string | undefined;
  readonly view_only?: boolean | undefined;
  readonly recording?: string | undefined;
  /** refused: the gate stage; closed: how it ended. */
  readonly stage?: string | undefined;
  readonly code?: string | undefined;
  readonly close_code?: number | undefined;
  readonly relayed?: boolean | undefined;
  readonly duration_ms?: number | undefined;
  readonly bytes_to_client?: number | undefined;
  readonly bytes_to_server?: number | undefined;
  readonly setup_ms?: number | undefined;
  /** revoked: tokens revoked (absent where the store cannot count); killed: consoles closed. */
  readonly count?: number | undefined;
  /** killed/revoked: the API key's name that asked. */
  readonly by?: string | undefined;
}

export interface AuditSink {
  record(event: AuditEvent): void;
}

/** The JSON line of an event: time and node first, then the event's fields in a fixed order. Pure. */
export function auditLine(event: AuditEvent, time: Date, node: string): string {
  return `${JSON.stringify({ time: time.toISOString(), node, ...event })}\n`;
}

export interface AuditLogOptions {
  /** `[audit] file`; empty: no file. */
  readonly file: string;
  /** `[audit] syslog`: also send each line to syslog. */
  readonly syslog: boolean;
  /** A Unix socket path (/dev/log) or host:port (UDP). */
  readonly syslogAddress: string;
  readonly syslogFacility: string;
  readonly node: string;
  readonly logger: Logger;
  readonly now?: () => Date;
}

/** Bytes queued towards `logger` before lines are dropped. */
const SYSLOG_PIPE_LIMIT = 1024 * 1024;

export class AuditLog implements AuditSink {
  readonly #o: AuditLogOptions;
  #fd: number | undefined;
  #syslog: ChildProcess | undefined;
  #syslogDropped = 0;
  #closed = false;

  /** @throws PortholeError PH_ERR_CONFIG_INVALID when the file cannot be opened (at start, not at the first console). */
  constructor(options: AuditLogOptions) {
    this.#o = options;
    if (options.file !== '') this.#fd = openAuditFile(options.file);
    if (options.syslog) this.#syslog = this.#startLogger();
  }

  get enabled(): boolean {
    return this.#fd !== undefined || this.#syslog !== undefined;
  }

  record(event: AuditEvent): void {
    if (this.#closed) return;
    const line = auditLine(event, (this.#o.now ?? (() => new Date()))(), this.#o.node);
    if (this.#fd !== undefined) {
      try {
        writeSync(this.#fd, line);
      } catch (err) {
        this.#o.logger.error({ code: 'PH_ERR_AUDIT_WRITE', err: (err as Error).message, file: this.#o.file }, `audit event not written: ${line.trim()}`);
      }
    }
    const child = this.#syslog;
    if (child?.stdin !== null && child?.stdin !== undefined) {
      if (child.stdin.writableLength > SYSLOG_PIPE_LIMIT) {
        if (this.#syslogDropped++ === 0) this.#o.logger.error({ code: 'PH_ERR_AUDIT_WRITE' }, 'syslog (logger) does not keep up: audit lines to syslog are being dropped (the audit file, if set, has them)');
      } else {
        child.stdin.write(line);
      }
    }
  }

  /** logrotate moved the file: continue in a new one at the configured path (SIGHUP). */
  reopen(): void {
    if (this.#closed || this.#o.file === '') return;
    try {
      const fd = openAuditFile(this.#o.file);
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = fd;
    } catch (err) {
      this.#o.logger.error({ code: 'PH_ERR_AUDIT_WRITE', err: (err as Error).message }, 'audit file not reopened, writing to the old one');
    }
  }

  /** After the last event (the proxy closed every console first). Waits for `logger` to send what it has. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    const child = this.#syslog;
    this.#syslog = undefined;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { child.kill(); resolve(); }, 2000);
      child.once('exit', () => { clearTimeout(timer); resolve(); });
      child.stdin?.end();
    });
  }

  #startLogger(): ChildProcess {
    const { syslogAddress: address, syslogFacility: facility } = this.#o;
    const target = address.startsWith('/') ? ['--socket', address, '--socket-errors=on'] : hostPort(address);
    const child = spawn('logger', ['--tag', 'porthole-audit', '--priority', `${facility}.info`, '--size', '16384', ...target], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
    child.on('error', (err) => this.#o.logger.error({ code: 'PH_ERR_AUDIT_WRITE', err: err.message }, 'cannot run `logger` for audit events to syslog (util-linux)'));
    child.stdin?.on('error', () => {}); // reported by 'exit'
    child.on('exit', (code) => {
      if (this.#closed) return;
      this.#o.logger.error({ code: 'PH_ERR_AUDIT_WRITE', exitCode: code, stderr: stderr.trim() }, `\`logger\` for audit events to syslog (${address}) exited; restarting it`);
      this.#syslog = undefined;
      setTimeout(() => { if (!this.#closed) this.#syslog = this.#startLogger(); }, 1000).unref();
    });
    return child;
  }
}

function hostPort(address: string): string[] {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return ['--server', host, '--port', address.slice(colon + 1), '--udp', '--rfc5424'];
}

/** Open for appending, 0600 (an existing file is tightened, not trusted). @throws PortholeError naming the file. */
function openAuditFile(file: string): number {
  let fd: number;
  try {
    fd = openSync(file, 'a', 0o600);
  } catch (err) {
    throw new PortholeError('PH_ERR_CONFIG_INVALID', `[audit] file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  if ((fstatSync(fd).mode & 0o077) !== 0) fchmodSync(fd, 0o600);
  return fd;
}

/** Addresses whose over-the-limit refusals are being counted in one window (bounded: an attacker may use many). */
const MAX_SUPPRESSED_ADDRESSES = 10_000;
const SUPPRESS_WINDOW_MS = 60_000;

/**
 * The console events (from the proxy) as audit lines. An address already over `[console]
 * max_failed_tokens` gets one `failure-limit` line per minute (with `count`, the refusals since its
 * last line), not one per request: a flood of refused requests must not fill the audit disk.
 */
export function auditConsoleEvents(sink: AuditSink, now: () => number = Date.now): ConsoleEvents {
  let windowStart = now();
  let limited = new Map<string, number>();
  const overLimit = (e: { stage: string; code: string; remote: string }) => {
    if (now() - windowStart >= SUPPRESS_WINDOW_MS) {
      // The refusals counted since each address's last line.
      for (const [remote, n] of limited) if (n > 0) sink.record({ event: 'console.refused', stage: e.stage, code: e.code, remote, count: n });
      windowStart = now();
      limited = new Map();
    }
    const seen = limited.get(e.remote);
    if (seen === undefined && limited.size < MAX_SUPPRESSED_ADDRESSES) {
      limited.set(e.remote, 0);
      sink.record({ event: 'console.refused', stage: e.stage, code: e.code, remote: e.remote, count: 1 });
    } else if (seen !== undefined) {
      limited.set(e.remote, seen + 1);
    }
  };
  return {
    sessionOpened: (e) => sink.record({
      event: 'console.opened', session: e.id, instance: e.instance, instance_uuid: e.instanceUuid, protocol: e.protocol, remote: e.remote, who: e.who,
      view_only: e.viewOnly || undefined, recording: e.recording, setup_ms: Math.round(e.setupSeconds * 1000),
    }),
    sessionClosed: (e) => sink.record({
      event: 'console.closed', session: e.id, instance: e.instance, instance_uuid: e.instanceUuid, protocol: e.protocol, remote: e.remote, who: e.who,
      recording: e.recording, relayed: e.relayed, close_code: e.closeCode, code: e.errorCode, duration_ms: e.durationMs,
      bytes_to_client: e.bytesToClient, bytes_to_server: e.bytesToServer,
    }),
    refused: (e) => {
      if (e.stage === 'failure-limit') overLimit(e);
      else sink.record({ event: 'console.refused', stage: e.stage, code: e.code, remote: e.remote, instance: e.instance, protocol: e.protocol, who: e.who });
    },
    tokenLookup: () => {},
  };
}
