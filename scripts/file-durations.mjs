/**
 * A node:test reporter that prints, after the run, how long each test file took (slowest first),
 * so a file that grows slow shows up in every `npm test`. Files run one at a time
 * (--test-concurrency=1), so a file's wall time is from the previous file's last event to its own.
 * Plain JavaScript: node:test loads reporters before tsx's loader is in place.
 */
import { relative } from 'node:path';

/** @param {AsyncIterable<{ type: string, data?: { file?: string } }>} source */
export default async function* fileDurations(source) {
  const started = Date.now();
  const files = new Map(); // file → { ms, failed }
  let boundary = started; // when the previous file's last event came
  let lastAt = started;
  let current;
  for await (const event of source) {
    const file = event.data?.file;
    if (file === undefined) continue;
    const now = Date.now();
    if (file !== current) {
      if (current !== undefined) boundary = lastAt;
      current = file;
    }
    lastAt = now;
    const entry = files.get(file) ?? { ms: 0, failed: 0 };
    entry.ms = now - boundary;
    if (event.type === 'test:fail') entry.failed++;
    files.set(file, entry);
  }
  const rows = [...files].sort((a, b) => b[1].ms - a[1].ms);
  const width = Math.max(...rows.map(([f]) => relative(process.cwd(), f).length), 4);
  yield `\nTest files by wall time (total ${((Date.now() - started) / 1000).toFixed(1)} s):\n`;
  for (const [file, { ms, failed }] of rows) {
    yield `  ${relative(process.cwd(), file).padEnd(width)}  ${(ms / 1000).toFixed(1).padStart(6)} s${failed > 0 ? `  (${failed} failed)` : ''}\n`;
  }
}
