/**
 * The option names Nova (Debian 12, Zed) and its oslo libraries accept, by group: data generated
 * from Nova's own code by scripts/gen-nova-options.py (data/nova-options.json), never typed by
 * hand. In nova mode an operator's nova.conf loads as it is: these names are accepted (and ignored
 * unless Porthole uses them); anything else is a warning with a did-you-mean.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NovaCatalogue {
  readonly groups: ReadonlyMap<string, ReadonlySet<string>>;
  readonly generatedFrom: string;
}

/** The directory holding package.json, from this module's location (src/ or dist/src/). */
function packageDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/** Read data/nova-options.json (once per call; the loader calls it once per load). */
export function loadNovaCatalogue(): NovaCatalogue {
  const data = JSON.parse(readFileSync(join(packageDir(), 'data', 'nova-options.json'), 'utf8')) as {
    generated_from: string;
    groups: Record<string, string[]>;
  };
  return {
    generatedFrom: data.generated_from,
    groups: new Map(Object.entries(data.groups).map(([g, names]) => [g, new Set(names)])),
  };
}
