/**
 * oslo.config-style INI reader that keeps line numbers.
 *
 * Written here rather than taken from the `ini` package because every config problem must be
 * reported as `file:line`, and `ini` drops line information; it also folds oslo's indented
 * continuation lines differently. The dialect is small: `[group]`, `key = value` (or `key: value`),
 * `#`/`;` comment lines, indented continuation lines appended with a newline.
 */

export interface IniEntry {
  readonly group: string;
  readonly key: string;
  readonly value: string;
  readonly file: string;
  readonly line: number;
}

export interface IniSection {
  readonly name: string;
  readonly file: string;
  readonly line: number;
}

export interface IniProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export interface IniDocument {
  readonly sections: IniSection[];
  readonly entries: IniEntry[];
  readonly problems: IniProblem[];
}

const SECTION_RE = /^\[\s*([^\]]*?)\s*\]\s*$/;
const ENTRY_RE = /^([^=:\s][^=:]*?)\s*[=:]\s?(.*)$/;

/**
 * Parse INI text. Pure: never throws, returns problems for malformed lines.
 * @example parseIni('[vnc]\nnovncproxy_port = 6080\n', 'a.conf').entries[0].value // '6080'
 */
export function parseIni(text: string, file: string): IniDocument {
  const sections: IniSection[] = [];
  const entries: IniEntry[] = [];
  const problems: IniProblem[] = [];
  let group: string | undefined;
  let last: { group: string; key: string; value: string; file: string; line: number } | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' ) { last = undefined; continue; }
    if (trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
    if (/^\s/.test(raw) && last) {
      last.value = last.value === '' ? trimmed : `${last.value}\n${trimmed}`;
      continue;
    }
    const section = SECTION_RE.exec(trimmed);
    if (section) {
      group = section[1] ?? '';
      if (group === '') problems.push({ file, line, message: 'empty group name "[]"' });
      sections.push({ name: group, file, line });
      last = undefined;
      continue;
    }
    const entry = ENTRY_RE.exec(trimmed);
    if (!entry) {
      // The line's text is not echoed: it may be a secret missing its "=" (`password hunter2`).
      problems.push({ file, line, message: 'cannot parse this line: expected "key = value" or "[group]"' });
      last = undefined;
      continue;
    }
    if (group === undefined) {
      problems.push({ file, line, message: `option "${entry[1]}" appears before any [group] header` });
      last = undefined;
      continue;
    }
    last = { group, key: (entry[1] ?? '').trim(), value: (entry[2] ?? '').trim(), file, line };
    entries.push(last);
  }
  return { sections, entries, problems };
}
