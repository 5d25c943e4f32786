/** Prints the option table of docs/config.md from the schema: `node --import tsx scripts/config-table.ts`. */
import { DEPRECATED_NAMES, SCHEMA, type OptionSpec } from '../src/config/schema.js';

const lines = ['| Option | Default | Meaning |', '|---|---|---|'];
for (const [group, options] of Object.entries(SCHEMA)) {
  for (const [name, spec] of Object.entries(options as Record<string, OptionSpec<unknown>>)) {
    const def = spec.defaultText ?? (Array.isArray(spec.default) ? (spec.default.length ? spec.default.join(', ') : '(empty)') : String(spec.default));
    lines.push(`| \`[${group}] ${name}\` | \`${def === '' ? '(empty)' : def}\` | ${spec.help} |`);
  }
}
lines.push('', 'Deprecated names (accepted with a warning):', '');
for (const d of DEPRECATED_NAMES) lines.push(`- \`[${d.group}] ${d.name}\` → \`[${d.to.group}] ${d.to.name}\``);
process.stdout.write(`${lines.join('\n')}\n`);
