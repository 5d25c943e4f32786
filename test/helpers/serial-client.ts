/** A WebSocket serial-console client for tests: collects output as text, waits for patterns, types. */
import WebSocket from 'ws';

export interface SerialClient {
  readonly ws: WebSocket;
  /** Everything received so far, as latin1 text. */
  text(): string;
  /** Resolves once the output (from `from` on) matches `pattern`; rejects after `timeoutMs` with what was seen. */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<void>;
  /** Send keystrokes: a binary frame (Horizon, nova-serialproxy clients) or a text frame (xterm.js's attach addon). */
  type(data: string, frame?: 'binary' | 'text'): void;
  /** The close code and reason, once the proxy or we closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): Promise<{ code: number; reason: string }>;
}

export async function openSerial(url: string, options: { origin?: string; protocols?: string[] } = {}): Promise<SerialClient> {
  const ws = new WebSocket(url, options.protocols ?? ['binary'], options.origin ? { origin: options.origin } : {});
  let received = '';
  const waiters = new Set<() => void>();
  ws.on('message', (data: Buffer) => {
    received += data.toString('latin1');
    for (const w of waiters) w();
  });
  ws.on('error', () => { /* close reports it */ });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code: number, reason: Buffer) => {
      resolve({ code, reason: reason.toString() });
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('close', (code: number) => resolve(void code));
  });
  return {
    ws,
    closed,
    text: () => received,
    waitFor(pattern, timeoutMs = 15_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(received.slice(from))) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (ws.readyState === WebSocket.CLOSED) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`closed before ${pattern}; got ${JSON.stringify(received.slice(from).slice(-300))}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${pattern} within ${timeoutMs} ms; got ${JSON.stringify(received.slice(from).slice(-300))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    type(data, frame = 'binary') {
      ws.send(frame === 'binary' ? Buffer.from(data, 'latin1') : data, { binary: frame === 'binary' });
    },
    async close() {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      return closed;
    },
  };
}
