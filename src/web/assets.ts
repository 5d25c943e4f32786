/** Where the console pages and the noVNC library live on disk. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Porthole package root (works from src/ under tsx and from dist/src/ after build). */
export function packageRoot(fromUrl: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(fromUrl));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'porthole') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the porthole package root');
    dir = up;
  }
}

/** The @novnc/novnc package directory (its `exports` hides package.json, so resolve the entry point). */
export function novncRoot(): string {
  return dirname(dirname(fileURLToPath(import.meta.resolve('@novnc/novnc'))));
}

/** A package's directory from its resolvable entry point `lib/<file>` (xterm.js and its addons). */
export function packageDirOf(entry: string): string {
  return dirname(dirname(fileURLToPath(import.meta.resolve(entry))));
}
