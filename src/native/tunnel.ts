/**
 * `porthole tunnel`: native clients (TigerVNC, remote-viewer, Remmina, vncsnapshot) through the
 * authenticating proxy, as KubeVirt's `virtctl vnc` does. A local TCP listener (loopback unless
 * told otherwise); every local connection becomes one WebSocket to the console proxy with the
 * token, relayed both ways with backpressure. Several connections at once are fine (SPICE opens
 * one per channel). The target is the proxy's business: the tunnel only ever carries a token.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import WebSocket from 'ws';
import { TUNNEL_CLIENT_HEADER } from '../console/types.js';

/** Where one local connection goes. Asked per connection, so an expired token can be replaced. */
export interface TunnelTarget {
  readonly wsUrl: string;
}

/** How one tunnelled connection ended, for the person running the tunnel. */
export interface TunnelConnectionEnd {
  readonly remote: string;
  /** The WebSocket close code (1006 when it never opened or dropped). */
  readonly code: number;
  readonly reason: string;
  /** HTTP status when the proxy refused the upgrade itself (429, 403, 503…). */
  readonly httpStatus?: number | undefined;
  readonly opened: boolean;
  readonly bytesToClient: number;
  readonly bytesToServer: number;
}

export interface ConsoleTunnelOptions {
  readonly host: string;
  readonly port: number;
  readonly target: () => Promise<TunnelTarget>;
  /** Serve one connection, then stop listening (`--once`). */
  readonly once?: boolean | undefined;
  /** CA certificates for a wss:// proxy with a private CA. */
  readonly ca?: Buffer | undefined;
  readonly onConnectionEnd?: ((end: TunnelConnectionEnd) => void) | undefined;
  readonly onError?: ((err: Error) => void) | undefined;
  /** Bytes queued towards the proxy before the local client is paused. */
  readonly highWaterBytes?: number | undefined;
}

const DEFAULT_HIGH_WATER_BYTES = 512 * 1024;

export class ConsoleTunnel {
  readonly #options: ConsoleTunnelOptions;
  readonly #server: Server;
  readonly #open = new Set<{ sock: Socket; ws: WebSocket | undefined }>();
  #served = 0;
  #resolveDone: (() => void) | undefined;
  /** Resolves when a `once` tunnel's connection has ended, or after close(). */
  readonly done: Promise<void>;

  constructor(options: ConsoleTunnelOptions) {
    this.#options = options;
    this.done = new Promise((resolve) => { this.#resolveDone = resolve; });
    this.#server = createServer((sock) => this.#onLocal(sock));
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    for (const c of this.#open) {
      c.ws?.terminate();
      c.sock.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#resolveDone?.();
  }

  #onLocal(sock: Socket): void {
    this.#served++;
    if (this.#options.once === true) this.#server.close(); // no second client
    sock.setNoDelay(true);
    sock.pause(); // until the WebSocket is open: the console server speaks first anyway
    const entry: { sock: Socket; ws: WebSocket | undefined } = { sock, ws: undefined };
    this.#open.add(entry);
    const remote = `${sock.remoteAddress ?? '?'}:${sock.remotePort ?? '?'}`;
    let bytesToClient = 0;
    let bytesToServer = 0;
    let opened = false;
    let httpStatus: number | undefined;
    let ended = false;
    const end = (code: number, reason: string) => {
      if (ended) return;
      ended = true;
      this.#open.delete(entry);
      sock.end();
      this.#options.onConnectionEnd?.({ remote, code, reason, httpStatus, opened, bytesToClient, bytesToServer });
      if (this.#options.once === true) this.#resolveDone?.();
    };
    sock.on('error', () => { entry.ws?.terminate(); });
    this.#options.target().then((target) => {
      if (sock.destroyed) {
        end(1006, 'the local client left before the console was opened');
        return;
      }
      const highWater = this.#options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
      const ws = new WebSocket(target.wsUrl, ['binary'], {
        headers: { [TUNNEL_CLIENT_HEADER]: 'tunnel' },
        perMessageDeflate: false,
        maxPayload: 0,
        ...(this.#options.ca === undefined ? {} : { ca: this.#options.ca }),
      });
      entry.ws = ws;
      ws.on('unexpected-response', (_req, res) => {
        httpStatus = res.statusCode;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { if (body.length < 2048) body += d; });
        res.on('end', () => {
          let reason = body;
          try {
            const parsed = JSON.parse(body) as { code?: string; message?: string };
            reason = `${parsed.code ?? ''}: ${parsed.message ?? ''}`;
          } catch { /* not ours: keep the text */ }
          end(1006, `HTTP ${res.statusCode ?? '?'} ${reason}`.trim()); // before terminate: its close has no reason
          ws.terminate();
        });
      });
      ws.on('open', () => {
        opened = true;
        sock.resume();
      });
      ws.on('message', (data: Buffer) => {
        bytesToClient += data.length;
        if (!sock.write(data)) ws.pause();
      });
      sock.on('drain', () => ws.resume());
      sock.on('data', (chunk: Buffer) => {
        bytesToServer += chunk.length;
        if (ws.bufferedAmount + chunk.length > highWater) {
          sock.pause();
          ws.send(chunk, { binary: true }, () => sock.resume());
        } else {
          ws.send(chunk, { binary: true });
        }
      });
      sock.on('close', () => {
        if (ws.readyState === WebSocket.OPEN) ws.close(1000);
        else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      });
      ws.on('error', (err) => this.#options.onError?.(err));
      ws.on('close', (code: number, reason: Buffer) => end(code, reason.toString()));
    }, (err: unknown) => {
      this.#options.onError?.(err as Error);
      sock.destroy();
      end(1006, (err as Error).message);
    });
  }

  /** Local connections accepted so far. */
  get served(): number {
    return this.#served;
  }
}
