import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ERROR_CATALOGUE, closeReasonFor, type ErrorCode } from '../../src/errors.js';
import { SCHEMA } from '../../src/config/schema.js';

const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

test('docs/errors.md lists exactly the codes of src/errors.ts, with the same statuses', async () => {
  const doc = await readFile('docs/errors.md', 'utf8');
  const rows = [...doc.matchAll(/^\| `(PH_ERR_[A-Z_]+)` \| (\d+) \| (\d+) \|/gm)].map((m) => [m[1], Number(m[2]), Number(m[3])]);
  assert.deepEqual(rows.map((r) => r[0]).sort(), [...codes].sort());
  for (const [code, http, ws] of rows) {
    const spec = ERROR_CATALOGUE[code as ErrorCode];
    assert.equal(http, spec.httpStatus, `${code} HTTP`);
    assert.equal(ws, spec.wsCloseCode, `${code} close code`);
  }
});

test('the console page explains every close code a console can end with, ws\'s protocol codes too (regression: 1008, 4400 unknown)', async () => {
  const page = await readFile('web/console-common.js', 'utf8');
  const explained = new Set([...page.matchAll(/^\s+(\d{4}): '/gm)].map((m) => Number(m[1])));
  const apiOnly = new Set([4401, 4404, 4409]); // API refusals: never a WebSocket close
  for (const code of codes) {
    const ws = ERROR_CATALOGUE[code].wsCloseCode;
    if (apiOnly.has(ws)) continue;
    assert.ok(explained.has(ws), `${code} (${ws}) has no sentence in web/console-common.js`);
  }
  const doc = await readFile('docs/errors.md', 'utf8');
  for (const ws of [1002, 1003, 1007, 1008, 1009]) {
    assert.ok(explained.has(ws), `close code ${ws} (sent by ws) has no sentence in web/console-common.js`);
    assert.ok(doc.includes(`\`${ws}\``), `docs/errors.md does not mention ${ws}`);
  }
});

test('close reasons fit the 123-byte limit of RFC 6455 §5.5', () => {
  for (const code of codes) assert.ok(Buffer.byteLength(closeReasonFor(code)) <= 123, code);
});

test('docs/config.md documents every option', async () => {
  const doc = await readFile('docs/config.md', 'utf8');
  for (const [group, options] of Object.entries(SCHEMA)) {
    for (const name of Object.keys(options)) {
      assert.ok(doc.includes(`| \`[${group}] ${name}\``), `[${group}] ${name} missing from docs/config.md`);
    }
  }
});

test('fd limit: a warning when max_sessions cannot get its descriptors; none when it can or there is no limit', async () => {
  const { fdLimitWarning, parseOpenFilesLimit } = await import('../../src/ops/fd-limit.js');
  assert.equal(parseOpenFilesLimit('Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n'), 1024);
  assert.equal(parseOpenFilesLimit('Max open files            unlimited            unlimited            files\n'), undefined);
  assert.match(fdLimitWarning(1000, 1024) ?? '', /open-files limit is 1024, but \[console\] max_sessions = 1000 needs about 2128/);
  assert.equal(fdLimitWarning(1000, 1_048_576), undefined);
  assert.equal(fdLimitWarning(0, 64), undefined, 'no session limit: nothing to compare');
});
