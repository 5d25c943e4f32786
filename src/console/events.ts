/**
 * What the proxy tells an observer (metrics; audit events later) about consoles. Passed in as a
 * dependency rather than read from a process-wide diagnostics channel, so that two gateways in one
 * process never count each other's consoles. Types only.
 */
import type { ConsoleProtocol } from './types.js';

export interface ConsoleEvents {
  /** A console is relaying, `setupSeconds` after its upgrade was accepted. */
  sessionOpened(e: { readonly protocol: ConsoleProtocol; readonly setupSeconds: number }): void;
  /** A session ended; `relayed` false when it never reached the console (its setup failed with `errorCode`). */
  sessionClosed(e: {
    readonly protocol: ConsoleProtocol | undefined;
    readonly relayed: boolean;
    readonly closeCode: number | undefined;
    /** The PH_ERR_* code it was closed with, if Porthole closed it. */
    readonly errorCode: string | undefined;
    readonly bytesToClient: number;
    readonly bytesToServer: number;
  }): void;
  /** The upgrade gate refused a request (no session was created). */
  refused(e: { readonly stage: string; readonly code: string }): void;
  /** One token look-up in the token source. */
  tokenLookup(e: { readonly source: string; readonly result: string; readonly seconds: number }): void;
}
