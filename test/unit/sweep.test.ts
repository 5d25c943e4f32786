import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sweepInSlices } from '../../src/proxy/sweep.js';

test('sweepInSlices visits every item once, in order, and gives the event loop back between slices', async () => {
  const items = Array.from({ length: 10 }, (_, i) => i);
  const seen: number[] = [];
  const turns: number[] = [];
  // An immediate queued before the sweep runs at the first yield: after the first slice of 4.
  setImmediate(() => turns.push(seen.length));
  await sweepInSlices(items, (i) => { seen.push(i); }, { sliceSize: 4, pauseMs: 0 });
  assert.deepEqual(seen, items);
  assert.deepEqual(turns, [4], 'the loop turned after the first slice, not only at the end');
});

test('sweepInSlices walks a snapshot and awaits async visits one at a time', async () => {
  const items = new Set([1, 2, 3]);
  const order: string[] = [];
  await sweepInSlices(items, async (i) => {
    order.push(`start ${i}`);
    items.add(i + 10); // added meanwhile: not visited in this sweep
    await new Promise((r) => setTimeout(r, 1));
    order.push(`end ${i}`);
  }, { sliceSize: 2, pauseMs: 0 });
  assert.deepEqual(order, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
});

test('sweepInSlices with a pause spreads the slices over time', async () => {
  const stamps: number[] = [];
  const started = performance.now();
  await sweepInSlices([1, 2, 3, 4, 5, 6], () => { stamps.push(performance.now() - started); }, { sliceSize: 2, pauseMs: 20 });
  assert.equal(stamps.length, 6);
  assert.ok((stamps[5] ?? 0) >= 38, `the last slice waited two pauses (${stamps[5]} ms)`);
  assert.ok((stamps[1] ?? 99) < 15, 'the first slice ran at once');
});
