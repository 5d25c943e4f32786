/**
 * Serving the console pages and the noVNC library. Every servable file is listed once at start-up
 * into a map from URL path to content; a request is served only on an exact map hit. There is no
 * path joining at request time, so `..`, encoded slashes or `//host` targets cannot reach any other
 * file, and nothing here ever redirects (no open redirect, OSSA-2021-002).
 */
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';
import { splitTarget } from './target.js';

export interface StaticMount {
  /** URL prefix ending in '/', e.g. '/novnc/'. */
  readonly prefix: string;
  readonly dir: string;
  /** Relative paths (posix) to include; default all. */
  readonly include?: (relPath: string) => boolean;
  /** Headers instead of {@link STATIC_HEADERS} (the /admin pages forbid framing). */
  readonly headers?: Readonly<Record<string, string>>;
}

interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
  readonly headers: Readonly<Record<string, string>>;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** Headers on every static answer. No X-Frame-Options: dashboards embed consoles in iframes. */
export const STATIC_HEADERS: Readonly<Record<string, string>> = {
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data: blob:; style-src 'self'; object-src 'none'; base-uri 'none'",
  'Cache-Control': 'no-cache',
};

/**
 * For pages whose library sets styles with `<style>` elements (xterm.js's DOM renderer sizes rows
 * and applies the theme that way): inline styles allowed, scripts still only from this origin.
 */
export const INLINE_STYLE_HEADERS: Readonly<Record<string, string>> = {
  ...STATIC_HEADERS,
  'Content-Security-Policy': (STATIC_HEADERS['Content-Security-Policy'] as string).replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
};

/** The /admin pages: never inside a frame (their buttons close consoles: no clickjacking), no caching. */
export const ADMIN_HEADERS: Readonly<Record<string, string>> = {
  ...STATIC_HEADERS,
  'Content-Security-Policy': `${STATIC_HEADERS['Content-Security-Policy'] as string}; frame-ancestors 'none'`,
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

/**
 * The recording player: asciinema-player runs its terminal emulator as WebAssembly (needs
 * 'wasm-unsafe-eval', which allows compiling wasm, not JS eval) and sets inline styles.
 */
export const PLAYBACK_HEADERS: Readonly<Record<string, string>> = {
  ...ADMIN_HEADERS,
  'Content-Security-Policy': (ADMIN_HEADERS['Content-Security-Policy'] as string)
    .replace("script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'").replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
};

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

export class StaticSite {
  readonly #files: ReadonlyMap<string, StaticFile>;

  private constructor(files: Map<string, StaticFile>) {
    this.#files = files;
  }

  /**
   * @param aliases extra URL paths served with another path's content, e.g. '/vnc_auto.html' → '/vnc_lite.html'.
   * @param inlineStylePages URL paths served with {@link INLINE_STYLE_HEADERS}.
   */
  static async load(mounts: readonly StaticMount[], aliases: Readonly<Record<string, string>> = {}, inlineStylePages: readonly string[] = []): Promise<StaticSite> {
    const files = new Map<string, StaticFile>();
    for (const mount of mounts) {
      for (const full of await walk(mount.dir)) {
        const rel = relative(mount.dir, full).split(sep).join('/');
        const type = CONTENT_TYPES[extname(rel)];
        if (type === undefined || (mount.include && !mount.include(rel))) continue;
        const path = mount.prefix + rel;
        files.set(path, { body: await readFile(full), type, headers: mount.headers ?? (inlineStylePages.includes(path) ? INLINE_STYLE_HEADERS : STATIC_HEADERS) });
      }
    }
    for (const [from, to] of Object.entries(aliases)) {
      const file = files.get(to);
      if (file) files.set(from, file);
    }
    return new StaticSite(files);
  }

  has(urlPath: string): boolean {
    return this.#files.has(urlPath);
  }

  /** Serve a GET/HEAD for a listed file; returns false (nothing written) when the path is not listed. */
  serve(req: IncomingMessage, res: ServerResponse): boolean {
    let path: string;
    try {
      path = decodeURIComponent(splitTarget(req.url ?? '/').path);
    } catch {
      return false;
    }
    const file = this.#files.get(path);
    if (!file) return false;
    res.writeHead(200, { ...file.headers, 'Content-Type': file.type, 'Content-Length': file.body.length });
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  }
}
