/**
 * What the proxy tells its observers (metrics, the audit log) about consoles. Passed in as a
 * dependency rather than read from a process-wide diagnostics channel, so that two gateways in one
 * process never count each other's consoles. Types, and the fan-out to several observers.
 */
import type { ConsoleProtocol, ConsoleRequester } from './types.js';

/** Who and what a session is, as its events carry it. Never the token. */
export interface SessionIdentity {
  readonly id: string;
  readonly instance: string | undefined;
  readonly instanceUuid?: string | undefined;
  readonly protocol: ConsoleProtocol | undefined;
  /** The client's address (after trusted forwarded headers). */
  readonly remote: string;
  readonly who?: ConsoleRequester | undefined;
  /** The recording file of this session, when it is recorded. */
  readonly recording?: string | undefined;
  readonly viewOnly?: boolean | undefined;
}

export interface SessionOpenedEvent extends SessionIdentity {
  readonly protocol: ConsoleProtocol;
  /** From the accepted upgrade to relaying. */
  readonly setupSeconds: number;
}

export interface SessionClosedEvent extends SessionIdentity {
  /** False when it never reached the console (its setup failed with `errorCode`). */
  readonly relayed: boolean;
  readonly closeCode: number | undefined;
  /** The PH_ERR_* code it was closed with, if Porthole closed it. */
  readonly errorCode: string | undefined;
  readonly durationMs: number;
  readonly bytesToClient: number;
  readonly bytesToServer: number;
}

export interface RefusalEvent {
  readonly stage: string;
  readonly code: string;
  readonly remote: string;
  /** Known once the token was looked up. */
  readonly instance?: string | undefined;
  readonly protocol?: ConsoleProtocol | undefined;
  readonly who?: ConsoleRequester | undefined;
}

export interface ConsoleEvents {
  /** A console is relaying. */
  sessionOpened(e: SessionOpenedEvent): void;
  /** A session ended (every accepted session ends exactly once, shutdown included). */
  sessionClosed(e: SessionClosedEvent): void;
  /** The upgrade gate refused a request (no session was created). */
  refused(e: RefusalEvent): void;
  /** One token look-up in the token source. */
  tokenLookup(e: { readonly source: string; readonly result: string; readonly seconds: number }): void;
}

/** One observer that tells each of `observers`, in order. An observer that throws does not stop the others. */
export function fanOutEvents(observers: readonly ConsoleEvents[], onError: (err: unknown) => void): ConsoleEvents {
  const each = <K extends keyof ConsoleEvents>(key: K) => (e: Parameters<ConsoleEvents[K]>[0]) => {
    for (const o of observers) {
      try {
        (o[key] as (arg: typeof e) => void)(e);
      } catch (err) {
        onError(err);
      }
    }
  };
  return { sessionOpened: each('sessionOpened'), sessionClosed: each('sessionClosed'), refused: each('refused'), tokenLookup: each('tokenLookup') };
}
