/**
 * `npm test`: first removes what killed earlier runs left (test/helpers/run.ts), then runs every
 * suite (or the files given) with node:test, one file at a time, and prints each file's duration.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sweepLeftovers } from '../test/helpers/run.js';

const SUITES = ['unit', 'contract', 'integration', 'e2e'];
const TEST_TIMEOUT_MS = 180_000;

const swept = sweepLeftovers();
for (const p of swept.killed) console.log(`removed a leftover of an earlier test run: pid ${p.pid} ${p.command}`);
if (swept.removedDirs.length > 0) console.log(`removed ${swept.removedDirs.length} temp dirs of earlier test runs`);

const given = process.argv.slice(2);
const files = given.length > 0 ? given : SUITES.flatMap((suite) =>
  readdirSync(join('test', suite)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => join('test', suite, f)));

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', `--test-timeout=${TEST_TIMEOUT_MS}`,
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  '--test-reporter=./scripts/file-durations.mjs', '--test-reporter-destination=stdout', ...files], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => { process.exitCode = code ?? (signal ? 1 : 0); });
