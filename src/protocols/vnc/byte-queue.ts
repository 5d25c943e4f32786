/** A bounded byte queue for resumable protocol parsing ("need more bytes" → wait for the next chunk). */
import { PortholeError } from '../../errors.js';

export class ByteQueue {
  #buf = Buffer.alloc(0);
  readonly #max: number;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  get length(): number {
    return this.#buf.length;
  }

  /** @throws PortholeError when the peer sends more than a handshake can need. */
  push(chunk: Buffer): void {
    if (this.#buf.length + chunk.length > this.#max) {
      throw new PortholeError('PH_ERR_RFB_HANDSHAKE', `peer sent more than ${this.#max} bytes during the RFB handshake`);
    }
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
  }

  has(n: number): boolean {
    return this.#buf.length >= n;
  }

  peekU32(offset = 0): number {
    return this.#buf.readUInt32BE(offset);
  }

  take(n: number): Buffer {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  rest(): Buffer {
    return this.take(this.#buf.length);
  }
}
