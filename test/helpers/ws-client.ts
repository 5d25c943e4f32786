/** A WebSocket console client for tests: reads bytes, or reports how the proxy closed it. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';

export interface WsOutcome {
  readonly opened: boolean;
  readonly closeCode?: number;
  readonly closeReason?: string;
  readonly httpStatus?: number;
  readonly received: Buffer;
  readonly elapsedMs: number;
}

export interface OpenOptions {
  readonly origin?: string;
  readonly headers?: Record<string, string>;
  /** Stop and close once this many bytes have arrived. */
  readonly wantBytes?: number;
  readonly timeoutMs?: number;
}

/** Open `url`, collect bytes until `wantBytes` or close; never throws for protocol outcomes. */
export async function openConsole(url: string, options: OpenOptions = {}): Promise<WsOutcome> {
  const start = Date.now();
  const ws = new WebSocket(url, ['binary'], {
    ...(options.origin ? { origin: options.origin } : {}),
    headers: options.headers ?? {},
  });
  const chunks: Buffer[] = [];
  let size = 0;
  let opened = false;
  return new Promise<WsOutcome>((resolve) => {
    const timer = setTimeout(() => { ws.terminate(); }, options.timeoutMs ?? 10_000);
    let httpStatus: number | undefined;
    ws.on('unexpected-response', (_req, res) => {
      httpStatus = res.statusCode;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => { opened = true; });
    ws.on('message', (data: Buffer) => {
      chunks.push(data);
      size += data.length;
      if (options.wantBytes !== undefined && size >= options.wantBytes) ws.close(1000);
    });
    ws.on('error', () => { /* the close event reports the outcome */ });
    ws.on('close', (code: number, reason: Buffer) => {
      clearTimeout(timer);
      resolve({
        opened,
        ...(httpStatus === undefined ? { closeCode: code, closeReason: reason.toString() } : { httpStatus }),
        received: Buffer.concat(chunks),
        elapsedMs: Date.now() - start,
      });
    });
  });
}

/** Open a console and wait for the VNC server's first bytes; the WebSocket stays open. */
export async function openVncConsole(url: string, origin: string): Promise<WebSocket> {
  const ws = new WebSocket(url, ['binary'], { origin });
  await new Promise((resolve, reject) => { ws.once('message', resolve); ws.once('error', reject); });
  return ws;
}

/** Open a console and run an RFB 3.8 exchange up to the security types list. */
export async function rfbSecurityTypes(url: string, origin?: string): Promise<{ version: string; types: number[] }> {
  const ws = new WebSocket(url, ['binary'], origin ? { origin } : {});
  let buf = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let closed: Error | undefined;
  ws.on('message', (data: Buffer) => { buf = Buffer.concat([buf, data]); wake?.(); });
  ws.on('close', (code: number, reason: Buffer) => { closed = new Error(`closed ${code} ${reason.toString()}`); wake?.(); });
  ws.on('error', () => { /* close follows */ });
  const next = async (n: number): Promise<Buffer> => {
    while (buf.length < n) {
      if (closed) throw closed;
      await new Promise<void>((r) => { wake = r; });
    }
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  try {
    await once(ws, 'open');
    const version = (await next(12)).toString('latin1');
    ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
    const count = (await next(1))[0] ?? 0;
    const types = [...(await next(count))];
    return { version, types };
  } finally {
    ws.close();
  }
}

/** Browser-side RFB 3.8 up to ServerInit, choosing None. Returns the framebuffer size. */
export async function handshakeToServerInit(url: string, origin: string): Promise<{ width: number; height: number }> {
  const viewer = await openRfbViewer(url, origin);
  viewer.ws.terminate();
  return { width: viewer.width, height: viewer.height };
}

export interface RfbViewer {
  readonly ws: WebSocket;
  readonly width: number;
  readonly height: number;
  /** Everything the server sent after ServerInit. */
  received(): Buffer;
  readonly closed: Promise<{ code: number; reason: string }>;
}

/** A browser-side RFB 3.8 client through the proxy (choosing None), past ServerInit, that keeps the connection for more messages. */
export async function openRfbViewer(url: string, origin: string, shared = 1): Promise<RfbViewer> {
  const ws = new WebSocket(url, ['binary'], { origin });
  let buf = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let closedWith: { code: number; reason: string } | undefined;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code: number, reason: Buffer) => { closedWith = { code, reason: reason.toString() }; resolve(closedWith); wake?.(); });
  });
  ws.on('message', (data: Buffer) => { buf = Buffer.concat([buf, data]); wake?.(); });
  ws.on('error', () => { /* close follows */ });
  const next = async (n: number): Promise<Buffer> => {
    while (buf.length < n) {
      if (closedWith) throw new Error(`closed ${closedWith.code} ${closedWith.reason}`);
      await new Promise<void>((r) => { wake = r; });
    }
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  await once(ws, 'open');
  await next(12);
  ws.send(Buffer.from('RFB 003.008\n'));
  const types = await next(2);
  assert.deepEqual([...types], [1, 1], 'the proxy offers None');
  ws.send(Buffer.from([1]));
  assert.equal((await next(4)).readUInt32BE(0), 0);
  ws.send(Buffer.from([shared]));
  const init = await next(24);
  await next(init.readUInt32BE(20));
  return { ws, width: init.readUInt16BE(0), height: init.readUInt16BE(2), received: () => buf, closed };
}
