/**
 * The last N bytes of a serial console's output, for viewers who join later. A list of copied
 * chunks trimmed from the front: serial output is slow (a UART's worth), so copying each chunk is
 * cheap, and it keeps the ring from pinning the socket's larger read buffers.
 */
export class Scrollback {
  readonly #capacity: number;
  #chunks: Buffer[] = [];
  #bytes = 0;

  /** @param capacityBytes most bytes kept (the oldest go first). */
  constructor(capacityBytes: number) {
    if (!Number.isInteger(capacityBytes) || capacityBytes < 0) throw new RangeError(`scrollback capacity must be a non-negative integer, got ${capacityBytes}`);
    this.#capacity = capacityBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  push(chunk: Buffer): void {
    if (this.#capacity === 0 || chunk.length === 0) return;
    const kept = chunk.length > this.#capacity ? chunk.subarray(chunk.length - this.#capacity) : chunk;
    this.#chunks.push(Buffer.from(kept));
    this.#bytes += kept.length;
    while (this.#bytes > this.#capacity) {
      const first = this.#chunks[0] as Buffer;
      const excess = this.#bytes - this.#capacity;
      if (first.length <= excess) {
        this.#chunks.shift();
        this.#bytes -= first.length;
      } else {
        this.#chunks[0] = first.subarray(excess);
        this.#bytes -= excess;
      }
    }
  }

  /** Everything kept, oldest first, as one buffer (a copy). */
  snapshot(): Buffer {
    return Buffer.concat(this.#chunks, this.#bytes);
  }

  clear(): void {
    this.#chunks = [];
    this.#bytes = 0;
  }
}
