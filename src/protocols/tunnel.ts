/**
 * Nova's `internal_access_path`: ask the console endpoint for `CONNECT <path>` and require a 200 in
 * its status line (as nova-novncproxy does). What follows the answer's header belongs to the console
 * and is handed on. Protocol-neutral; the caller feeds it the server's bytes.
 */
import { PortholeError } from '../errors.js';

/** Largest answer header to the CONNECT. */
export const MAX_TUNNEL_HEADER_BYTES = 4096;

export type TunnelStep =
  | { readonly done: false }
  | { readonly done: true; readonly rest: Buffer | undefined };

/** Reads the answer to `CONNECT <path>`, chunk by chunk (resumable: "need more" until the header ends). */
export class TunnelAnswer {
  #head = Buffer.alloc(0);
  readonly #what: string;

  /** @param what `CONNECT <path> to <host>:<port>`, for error messages. */
  constructor(what: string) {
    this.#what = what;
  }

  /** @throws PortholeError PH_ERR_UPSTREAM_UNREACHABLE for an answer that is not 200 or has no end of header. */
  feed(chunk: Buffer): TunnelStep {
    this.#head = Buffer.concat([this.#head, chunk]);
    const end = this.#head.indexOf('\r\n\r\n');
    if (end === -1) {
      if (this.#head.length > MAX_TUNNEL_HEADER_BYTES) throw new PortholeError('PH_ERR_UPSTREAM_UNREACHABLE', `${this.#what}: no end of header in ${MAX_TUNNEL_HEADER_BYTES} bytes`);
      return { done: false };
    }
    const status = this.#head.toString('latin1', 0, this.#head.indexOf('\r\n'));
    if (!status.includes('200')) throw new PortholeError('PH_ERR_UPSTREAM_UNREACHABLE', `${this.#what} was answered ${JSON.stringify(status.slice(0, 80))}, not 200`);
    const rest = this.#head.subarray(end + 4);
    return { done: true, rest: rest.length > 0 ? rest : undefined };
  }
}

/** The request line to send first. Pure. */
export function tunnelRequest(path: string): string {
  return `CONNECT ${path} HTTP/1.1\r\n\r\n`;
}
