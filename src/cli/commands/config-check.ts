/** `porthole config check`. */
import { readConfig, type ConfigArgs } from '../common.js';

export function configCheck(opts: ConfigArgs): void {
  const { files } = readConfig(opts);
  process.stdout.write(`configuration OK (${files.length > 0 ? files.join(', ') : 'built-in defaults'})\n`);
}
