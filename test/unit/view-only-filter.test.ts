import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ViewOnlyFilter } from '../../src/protocols/vnc/view-only-filter.js';
import { PortholeError } from '../../src/errors.js';

const setPixelFormat = Buffer.concat([Buffer.from([0, 0, 0, 0]), Buffer.alloc(16, 7)]);
const setEncodings = Buffer.from([2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21]);
const fbur = Buffer.from([3, 1, 0, 0, 0, 0, 2, 0, 1, 0x80]);
const key = Buffer.from([4, 1, 0, 0, 0, 0, 0xff, 0x1b]);
const pointer = Buffer.from([5, 1, 0, 10, 0, 20]);
const cut = (text: string) => Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from([0, 0, 0, text.length]), Buffer.from(text)]);
const qemuKey = Buffer.from([255, 0, 0, 1, 0, 0, 0xff, 0x1b, 0, 0, 0, 1]);
const fence = Buffer.from([248, 0, 0, 0, 0, 0, 0, 0, 2, 0xaa, 0xbb]);
const xvp = Buffer.from([250, 0, 1, 2]);
const desktopSize = Buffer.concat([Buffer.from([251, 0, 4, 0, 3, 0, 1, 0]), Buffer.alloc(16)]);
const continuous = Buffer.from([150, 1, 0, 0, 0, 0, 4, 0, 3, 0]);
const audioOn = Buffer.from([255, 1, 0, 0]);

const passed = (f: ViewOnlyFilter, ...chunks: Buffer[]) => Buffer.concat(chunks.flatMap((c) => {
  const out = f.push(c);
  if (out instanceof PortholeError) throw out;
  return out;
}));

test('view only: what a viewer needs passes, input, clipboard, power and resize do not; ClientInit is forced shared', () => {
  const f = new ViewOnlyFilter();
  const stream = Buffer.concat([Buffer.from([0]), setPixelFormat, setEncodings, key, fbur, pointer, cut('secret'), qemuKey, fence, xvp, desktopSize, continuous, audioOn, fbur]);
  assert.deepEqual(passed(f, stream), Buffer.concat([Buffer.from([1]), setPixelFormat, setEncodings, fbur, fence, continuous, audioOn, fbur]));
  assert.deepEqual(Object.fromEntries(f.dropped), { KeyEvent: 1, PointerEvent: 1, ClientCutText: 1, 'QEMU extended KeyEvent': 1, 'XVP (power action)': 1, SetDesktopSize: 1 });
});

test('view only: the same bytes one at a time give the same result (messages span frames)', () => {
  const stream = Buffer.concat([Buffer.from([1]), setEncodings, key, cut('abc'), fbur, qemuKey, fence, setPixelFormat]);
  const whole = passed(new ViewOnlyFilter(), stream);
  const f = new ViewOnlyFilter();
  const bytewise = passed(f, ...[...stream].map((b) => Buffer.from([b])));
  assert.deepEqual(bytewise, whole);
  assert.deepEqual(whole, Buffer.concat([Buffer.from([1]), setEncodings, fbur, fence, setPixelFormat]));
});

test('view only: a huge ClientCutText (extended clipboard, negative length) is skipped, never buffered', () => {
  const f = new ViewOnlyFilter(true);
  const header = Buffer.from([6, 0, 0, 0, 0xf0, 0, 0, 0]); // -268435456: 256 MiB of payload follows
  assert.deepEqual(passed(f, header), Buffer.alloc(0));
  for (let i = 0; i < 4; i++) assert.deepEqual(passed(f, Buffer.alloc(1 << 20, 0x41)), Buffer.alloc(0));
  // still inside the payload: a byte that looks like FramebufferUpdateRequest is not one
  assert.deepEqual(passed(f, fbur), Buffer.alloc(0));
});

test('view only: unknown or malformed messages close the console with PH_ERR_RFB_CLIENT_MESSAGE', () => {
  const unknown = new ViewOnlyFilter(true).push(Buffer.from([77, 0, 0, 0]));
  assert.ok(unknown instanceof PortholeError && unknown.code === 'PH_ERR_RFB_CLIENT_MESSAGE' && /type 77/.test(unknown.message));
  const qemu = new ViewOnlyFilter(true).push(Buffer.from([255, 9, 0, 0]));
  assert.ok(qemu instanceof PortholeError && /sub-type 9/.test(qemu.message));
  const bigFence = new ViewOnlyFilter(true).push(Buffer.from([248, 0, 0, 0, 0, 0, 0, 0, 200]));
  assert.ok(bigFence instanceof PortholeError && /ClientFence/.test(bigFence.message));
  assert.equal(unknown.wsCloseCode, 4033);
});
