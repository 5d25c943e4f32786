/**
 * Session recording formats, as pure encoders:
 * - VNC: websockify's `VNC_frame_data` (its `--record`, Nova's `[DEFAULT] record`), so noVNC's own
 *   playback harness (tests/vnc_playback.html) replays Porthole's recordings unchanged. A JS file:
 *   `var VNC_frame_data = [` then one string per frame, `'{<ms>{<bytes>'` from the server,
 *   `'}<ms>}<bytes>'` from the client, bytes as a JS string of code units 0–255 (Python's
 *   unicode_escape of latin1, `'` escaped), then `'EOF'];`.
 * - Serial: asciicast v2 (asciinema): a JSON header line, then `[seconds, "o"|"i", text]` lines.
 */
import { StringDecoder } from 'node:string_decoder';

export const VNC_RECORDING_HEADER = 'var VNC_frame_data = [\n';
export const VNC_RECORDING_FOOTER = "'EOF'];\n";

/** Each byte's escaped form, as websockify writes it (Python unicode_escape; `'` escaped for the JS literal). */
const ESCAPED: readonly Buffer[] = Array.from({ length: 256 }, (_, b) => {
  if (b === 0x5c) return Buffer.from('\\\\');
  if (b === 0x27) return Buffer.from("\\'");
  if (b === 0x0a) return Buffer.from('\\n');
  if (b === 0x0d) return Buffer.from('\\r');
  if (b === 0x09) return Buffer.from('\\t');
  if (b >= 0x20 && b < 0x7f) return Buffer.from([b]);
  return Buffer.from(`\\x${b.toString(16).padStart(2, '0')}`);
});

/** One frame line of a VNC recording. Pure. */
export function vncFrameLine(fromClient: boolean, ms: number, bytes: Uint8Array): Buffer {
  const mark = fromClient ? '}' : '{';
  const head = Buffer.from(`'${mark}${Math.max(0, Math.round(ms))}${mark}`);
  const out = Buffer.allocUnsafe(head.length + bytes.length * 4 + 3);
  head.copy(out, 0);
  let at = head.length;
  for (let i = 0; i < bytes.length; i++) {
    const e = ESCAPED[bytes[i] as number] as Buffer;
    if (e.length === 1) out[at++] = e[0] as number;
    else at += e.copy(out, at);
  }
  out[at++] = 0x27; // '
  out[at++] = 0x2c; // ,
  out[at++] = 0x0a; // \n
  return out.subarray(0, at);
}

/** The frames of a VNC recording back (what noVNC's playback harness reads), for tests and the player's check. Pure. */
export function parseVncRecording(text: string): Array<{ fromClient: boolean; ms: number; bytes: Buffer }> {
  const frames: Array<{ fromClient: boolean; ms: number; bytes: Buffer }> = [];
  for (const m of text.matchAll(/^'([{}])(\d+)\1((?:[^'\\]|\\.)*)',?$/gm)) {
    const body = (m[3] as string).replace(/\\(x[0-9a-f]{2}|.)/g, (_, e: string) => {
      if (e[0] === 'x' && e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
      return ({ n: '\n', r: '\r', t: '\t' } as Record<string, string>)[e] ?? e;
    });
    frames.push({ fromClient: m[1] === '}', ms: Number(m[2]), bytes: Buffer.from(body, 'latin1') });
  }
  return frames;
}

/** The header line of an asciicast v2 recording. Pure. */
export function asciicastHeader(startedAtMs: number, title: string, cols = 80, rows = 24): string {
  return `${JSON.stringify({ version: 2, width: cols, height: rows, timestamp: Math.floor(startedAtMs / 1000), title, env: { TERM: 'xterm-256color' } })}\n`;
}

/**
 * Turns a byte stream into asciicast events. UTF-8 sequences split across chunks are kept for the
 * next chunk (one decoder per direction), so a character is never recorded as two halves.
 */
export class AsciicastEvents {
  readonly #decoders = { o: new StringDecoder('utf8'), i: new StringDecoder('utf8') };

  /** The event line for `bytes`, or '' when they only started a character. */
  line(kind: 'o' | 'i', seconds: number, bytes: Buffer): string {
    const text = this.#decoders[kind].write(bytes);
    return text === '' ? '' : `${JSON.stringify([Math.round(seconds * 1e6) / 1e6, kind, text])}\n`;
  }
}
