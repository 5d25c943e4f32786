/**
 * Session recordings on disk: one file per recorded console session under `[console] record_dir`
 * (0700), each file 0600, written through a stream whose queue is bounded (a disk slower than the
 * console closes the console rather than growing memory), with a size cap per file and for the
 * directory. Which bytes are written, and in which format, is the format's business (formats.ts).
 */
import { createWriteStream, mkdirSync, readdirSync, statSync, chmodSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { SessionRecorder } from '../console/handler.js';
import type { ConsoleProtocol } from '../console/types.js';
import { PortholeError } from '../errors.js';
import { AsciicastEvents, asciicastHeader, VNC_RECORDING_FOOTER, VNC_RECORDING_HEADER, vncFrameLine } from './formats.js';

/** Bytes queued towards the disk before the console is closed (PH_ERR_RECORDING_UNAVAILABLE). */
export const MAX_QUEUED_RECORDING_BYTES = 16 * 1024 * 1024;
/** How long a directory size stays believed before it is summed again (operators delete old files). */
const DIR_RESCAN_MS = 10_000;

export const RECORDING_NAME = /^[0-9TZ-]+-[A-Za-z0-9._-]{1,64}-[0-9a-z-]{1,64}\.(vnc\.js|cast)$/;

export interface RecordingsOptions {
  readonly dir: string;
  readonly maxFileBytes: number;
  readonly maxTotalBytes: number;
  /** Also record what the viewer sent (VNC client messages, serial keystrokes). */
  readonly recordInput: boolean;
  readonly logger: Logger;
}

export interface RecordingFile {
  readonly name: string;
  readonly size: number;
  readonly modified: string;
  readonly protocol: ConsoleProtocol;
}

/** A recording's file name: time, instance (made safe), session id, format. Pure. */
export function recordingName(startedAtMs: number, instance: string, sessionId: string, protocol: 'vnc' | 'serial'): string {
  const time = new Date(startedAtMs).toISOString().replace(/[:.]/g, '-').replace(/-(\d{3})Z$/, '-$1Z');
  const safe = instance.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || 'instance';
  return `${time}-${safe}-${sessionId}.${protocol === 'vnc' ? 'vnc.js' : 'cast'}`;
}

export class Recordings {
  readonly #o: RecordingsOptions;
  #dirBytes = 0;
  #scannedAt = -Infinity;

  constructor(options: RecordingsOptions) {
    this.#o = options;
  }

  get dir(): string {
    return this.#o.dir;
  }

  /** The directory's recordings, newest first. */
  list(): RecordingFile[] {
    let names: string[];
    try {
      names = readdirSync(this.#o.dir);
    } catch {
      return [];
    }
    const files: RecordingFile[] = [];
    for (const name of names) {
      if (!RECORDING_NAME.test(name)) continue;
      try {
        const st = statSync(join(this.#o.dir, name));
        files.push({ name, size: st.size, modified: st.mtime.toISOString(), protocol: name.endsWith('.cast') ? 'serial' : 'vnc' });
      } catch {
        // removed meanwhile
      }
    }
    return files.sort((a, b) => b.name.localeCompare(a.name));
  }

  /** The path of a listed recording, or undefined: only names of our own form, never a path from the caller. */
  pathOf(name: string): string | undefined {
    return RECORDING_NAME.test(name) && this.list().some((f) => f.name === name) ? join(this.#o.dir, name) : undefined;
  }

  #totalBytes(): number {
    const now = Date.now();
    if (now - this.#scannedAt > DIR_RESCAN_MS) {
      this.#dirBytes = this.list().reduce((n, f) => n + f.size, 0);
      this.#scannedAt = now;
    }
    return this.#dirBytes;
  }

  /**
   * Start the recording of one session.
   * @param fail closes the session (file size cap reached, disk too slow or failing).
   * @throws PortholeError PH_ERR_RECORDING_UNAVAILABLE (directory full or not writable; SPICE).
   */
  open(session: { id: string; instance: string; protocol: ConsoleProtocol; startedAt: number }, fail: (err: PortholeError) => void): SessionRecording {
    if (session.protocol === 'spice') throw new PortholeError('PH_ERR_RECORDING_UNAVAILABLE', 'SPICE consoles cannot be recorded (VNC and serial can)');
    if (this.#totalBytes() >= this.#o.maxTotalBytes) {
      throw new PortholeError('PH_ERR_RECORDING_UNAVAILABLE', `the recordings in ${this.#o.dir} reached [console] record_max_total_size (${this.#o.maxTotalBytes} bytes); remove old ones`);
    }
    const name = recordingName(session.startedAt, session.instance, session.id, session.protocol);
    const path = join(this.#o.dir, name);
    try {
      mkdirSync(this.#o.dir, { recursive: true, mode: 0o700 });
      chmodSync(this.#o.dir, 0o700);
    } catch (err) {
      throw new PortholeError('PH_ERR_RECORDING_UNAVAILABLE', `[console] record_dir ${this.#o.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    const stream = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    return new SessionRecording({
      name, path, stream, protocol: session.protocol, startedAt: session.startedAt, instance: session.instance,
      maxBytes: this.#o.maxFileBytes, recordInput: this.#o.recordInput, logger: this.#o.logger,
      onWritten: (n) => { this.#dirBytes += n; },
      fail,
    });
  }
}

/** One session's recording: the recorder the protocol handler feeds. */
export class SessionRecording implements SessionRecorder {
  readonly name: string;
  readonly path: string;
  #bytes = 0;
  #closed = false;
  readonly #stream: WriteStream;
  readonly #startedAt: number;
  readonly #maxBytes: number;
  readonly #recordInput: boolean;
  readonly #protocol: 'vnc' | 'serial';
  readonly #cast = new AsciicastEvents();
  readonly #fail: (err: PortholeError) => void;
  readonly #onWritten: (n: number) => void;

  constructor(o: {
    name: string; path: string; stream: WriteStream; protocol: 'vnc' | 'serial'; startedAt: number; instance: string;
    maxBytes: number; recordInput: boolean; logger: Logger; onWritten: (n: number) => void; fail: (err: PortholeError) => void;
  }) {
    this.name = o.name;
    this.path = o.path;
    this.#stream = o.stream;
    this.#startedAt = o.startedAt;
    this.#maxBytes = o.maxBytes;
    this.#recordInput = o.recordInput;
    this.#protocol = o.protocol;
    this.#fail = o.fail;
    this.#onWritten = o.onWritten;
    o.stream.on('error', (err: NodeJS.ErrnoException) => {
      o.logger.error({ code: 'PH_ERR_RECORDING_UNAVAILABLE', err: err.message, file: o.path }, 'recording failed');
      this.#closed = true;
      o.fail(new PortholeError('PH_ERR_RECORDING_UNAVAILABLE', `writing the recording ${o.name} failed: ${err.code ?? err.message}`, { cause: err }));
    });
    this.#write(o.protocol === 'vnc' ? VNC_RECORDING_HEADER : asciicastHeader(o.startedAt, o.instance));
  }

  toClient(chunk: Buffer): void {
    this.#frame(false, chunk);
  }

  toServer(chunk: Buffer): void {
    if (this.#recordInput) this.#frame(true, chunk);
  }

  #frame(fromClient: boolean, chunk: Buffer): void {
    if (this.#closed || chunk.length === 0) return;
    const elapsed = Date.now() - this.#startedAt;
    if (this.#protocol === 'vnc') this.#write(vncFrameLine(fromClient, elapsed, chunk));
    else {
      const line = this.#cast.line(fromClient ? 'i' : 'o', elapsed / 1000, chunk);
      if (line !== '') this.#write(line);
    }
  }

  #write(data: string | Buffer): void {
    const n = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    if (this.#bytes + n > this.#maxBytes) {
      this.close();
      this.#fail(new PortholeError('PH_ERR_RECORDING_LIMIT', `the recording ${this.name} reached [console] record_max_file_size (${this.#maxBytes} bytes)`));
      return;
    }
    if (this.#stream.writableLength > MAX_QUEUED_RECORDING_BYTES) {
      this.close();
      this.#fail(new PortholeError('PH_ERR_RECORDING_UNAVAILABLE', `the disk of ${this.name} is slower than the console (${MAX_QUEUED_RECORDING_BYTES} bytes queued)`));
      return;
    }
    this.#bytes += n;
    this.#onWritten(n);
    this.#stream.write(data);
  }

  /** End the file (VNC: the closing `'EOF'];`). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stream.end(this.#protocol === 'vnc' ? VNC_RECORDING_FOOTER : undefined);
  }
}
