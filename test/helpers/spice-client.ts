/**
 * A minimal SPICE client over the proxy's WebSocket, as spice-html5 links a channel: link message
 * (AUTH_SELECTION | MINI_HEADER), reply, ticket (garbage here: the proxy must replace it), result.
 */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

export interface SpiceLinkOutcome {
  /** The link result the server sent (0 OK), if the channel got that far. */
  readonly result?: number;
  /** The main channel's session id (from SPICE_MSG_MAIN_INIT), for linking further channels. */
  readonly sessionId?: number;
  readonly closeCode?: number;
  readonly closeReason?: string;
  readonly ws: WebSocket;
}

export function linkMessage(channelType: number, connectionId = 0): Buffer {
  const body = Buffer.alloc(18 + 4);
  body.writeUInt32LE(connectionId, 0);
  body.writeUInt8(channelType, 4);
  body.writeUInt8(0, 5);
  body.writeUInt32LE(1, 6); // one common caps word
  body.writeUInt32LE(0, 10); // no channel caps
  body.writeUInt32LE(18, 14); // caps offset
  body.writeUInt32LE((1 << 0) | (1 << 3), 18); // AUTH_SELECTION | MINI_HEADER (as spice-html5)
  const header = Buffer.alloc(16);
  header.write('REDQ', 0, 'latin1');
  header.writeUInt32LE(2, 4);
  header.writeUInt32LE(2, 8);
  header.writeUInt32LE(body.length, 12);
  return Buffer.concat([header, body]);
}

/** Link one channel through the proxy; keeps the WebSocket open (close it yourself). */
export function linkChannel(url: string, channelType: number, options: { origin?: string; connectionId?: number } = {}): Promise<SpiceLinkOutcome> {
  const ws = new WebSocket(url, ['binary'], options.origin ? { origin: options.origin } : {});
  let buf = Buffer.alloc(0);
  let stage: 'reply' | 'result' | 'init' | 'done' = 'reply';
  let result: number | undefined;
  return new Promise((resolve) => {
    const timer = setTimeout(() => { ws.terminate(); }, 15_000);
    ws.on('open', () => ws.send(linkMessage(channelType, options.connectionId)));
    ws.on('message', (data: Buffer) => {
      buf = Buffer.concat([buf, data]);
      if (stage === 'reply' && buf.length >= 16 && buf.length >= 16 + buf.readUInt32LE(12)) {
        buf = buf.subarray(16 + buf.readUInt32LE(12));
        const ticket = Buffer.concat([Buffer.from([1, 0, 0, 0]), randomBytes(128)]); // not a valid ticket for any password
        ws.send(ticket);
        stage = 'result';
      }
      if (stage === 'result' && buf.length >= 4) {
        result = buf.readUInt32LE(0);
        buf = buf.subarray(4);
        stage = channelType === 1 ? 'init' : 'done';
        if (stage === 'done') { clearTimeout(timer); resolve({ result, ws }); return; }
      }
      if (stage === 'init' && buf.length >= 6 + 4) {
        stage = 'done';
        clearTimeout(timer);
        resolve({ result, sessionId: buf.readUInt32LE(6), ws });
      }
    });
    ws.on('error', () => { /* close reports it */ });
    ws.on('close', (code: number, reason: Buffer) => {
      clearTimeout(timer);
      resolve({ ...(result === undefined ? {} : { result }), closeCode: code, closeReason: reason.toString(), ws });
    });
  });
}
