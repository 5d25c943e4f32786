import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auditLine } from '../../src/audit/audit-log.js';
import { fanOutEvents, type ConsoleEvents } from '../../src/console/events.js';
import { parseSyslogAddress } from '../../src/config/schema.js';

test('an audit line: time and node first, absent fields left out, one line', () => {
  const line = auditLine({ event: 'console.closed', session: 's-1', instance: 'vm\nevil', code: undefined, close_code: 1000 }, new Date(0), 'n1');
  assert.equal(line, '{"time":"1970-01-01T00:00:00.000Z","node":"n1","event":"console.closed","session":"s-1","instance":"vm\\nevil","close_code":1000}\n');
  assert.equal(line.split('\n').length, 2, 'a name with a newline cannot start a second line');
});

test('[audit] syslog_address: a socket path or host:port, else a clear error', () => {
  assert.equal(parseSyslogAddress('/dev/log'), '/dev/log');
  assert.equal(parseSyslogAddress('127.0.0.1:514'), '127.0.0.1:514');
  assert.equal(parseSyslogAddress('[::1]:514'), '[::1]:514');
  assert.throws(() => parseSyslogAddress('dev/log'), /Unix socket path \(\/dev\/log\) or host:port/);
  assert.throws(() => parseSyslogAddress('host:99999'), /65535/);
});

test('fanOutEvents: every observer is told, one that throws does not stop the next', () => {
  const seen: string[] = [];
  const thrower = { sessionOpened: () => { throw new Error('boom'); }, sessionClosed() {}, refused() {}, tokenLookup() {} } satisfies ConsoleEvents;
  const counter = { sessionOpened: () => { seen.push('opened'); }, sessionClosed() {}, refused() {}, tokenLookup() {} } satisfies ConsoleEvents;
  const errors: unknown[] = [];
  fanOutEvents([thrower, counter], (e) => errors.push(e)).sessionOpened({ id: 'a', instance: 'vm', remote: 'r', protocol: 'vnc', setupSeconds: 0 });
  assert.deepEqual(seen, ['opened']);
  assert.equal(errors.length, 1);
});

test('refusals of an address over the failure limit: one line per minute with the count, not one per request', async () => {
  const { auditConsoleEvents } = await import('../../src/audit/audit-log.js');
  const lines: Array<Record<string, unknown>> = [];
  let t = 0;
  const events = auditConsoleEvents({ record: (e) => lines.push({ ...e }) }, () => t);
  const limited = { stage: 'failure-limit', code: 'PH_ERR_TOO_MANY_FAILURES', remote: '192.0.2.1' };
  for (let i = 0; i < 500; i++) events.refused(limited);
  events.refused({ stage: 'token', code: 'PH_ERR_TOKEN_INVALID', remote: '192.0.2.2' });
  assert.deepEqual(lines.map((l) => [l.remote, l.stage, l.count]), [['192.0.2.1', 'failure-limit', 1], ['192.0.2.2', 'token', undefined]]);
  t = 60_000;
  events.refused(limited);
  assert.deepEqual(lines.slice(2).map((l) => [l.remote, l.count]), [['192.0.2.1', 499], ['192.0.2.1', 1]], 'the next minute says how many were not written');
});
