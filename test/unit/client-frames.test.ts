/** The relay's own reader of browser frames: any split of the bytes gives the same output; what it does not take goes back to ws whole. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { ClientFrameReader, loadUnmask, unmaskInJs, type ClientFrameSink } from '../../src/protocols/client-frames.js';

/** A client frame masked with a random key; `len16`/`len64` force the longer length encodings. */
function frame(opcode: number, payload: Buffer, { fin = true, rsv = 0, masked = true, len64 = false } = {}): Buffer {
  const mask = masked ? randomBytes(4) : Buffer.alloc(0);
  const len = payload.length;
  const b0 = (fin ? 0x80 : 0) | rsv | opcode;
  const m = masked ? 0x80 : 0;
  let head: Buffer;
  if (len64 || len > 0xffff) {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = m | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  } else if (len < 126) {
    head = Buffer.from([b0, m | len]);
  } else {
    head = Buffer.from([b0, m | 126, len >> 8, len & 255]);
  }
  const body = Buffer.from(payload);
  if (masked) unmaskInJs(body, mask);
  return Buffer.concat([head, mask, body]);
}

interface Output { payload: Buffer; controls: Buffer[]; handedBack: Buffer | undefined }

function collect(max = 0): { reader: ClientFrameReader; out: () => Output } {
  const payload: Buffer[] = [];
  const controls: Buffer[] = [];
  let handedBack: Buffer | undefined;
  const sink: ClientFrameSink = {
    payload: (c) => payload.push(Buffer.from(c)),
    control: (f) => controls.push(f),
    handBack: (b) => { handedBack = b; },
  };
  const reader = new ClientFrameReader(max, sink, loadUnmask());
  return { reader, out: () => ({ payload: Buffer.concat(payload), controls, handedBack }) };
}

/** Feed `bytes` in pieces of the given sizes (repeating), copies each time (the reader unmasks in place). */
function feed(reader: ClientFrameReader, bytes: Buffer, sizes: number[]): void {
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = Math.max(1, sizes[i++ % sizes.length] as number);
    reader.push(Buffer.from(bytes.subarray(at, at + n)));
    at += n;
  }
}

describe('ClientFrameReader', () => {
  const big = randomBytes(70_000);
  const ping = frame(0x9, Buffer.from('are you there'));
  const stream = Buffer.concat([
    frame(0x2, Buffer.from('RFB 003.008\n')),
    frame(0x2, big.subarray(0, 300), { fin: false }),
    ping,
    frame(0x0, big.subarray(300, 66_000), { fin: false }),
    frame(0x0, Buffer.alloc(0), { fin: false }),
    frame(0x0, big.subarray(66_000), { len64: true }),
    frame(0xa, Buffer.alloc(0)),
    frame(0x2, Buffer.alloc(0)),
    frame(0x2, Buffer.from([1, 2, 3])),
  ]);
  const expected = Buffer.concat([Buffer.from('RFB 003.008\n'), big, Buffer.from([1, 2, 3])]);

  test('the payload and control frames come out the same for any split of the stream', () => {
    for (const sizes of [[stream.length], [1], [2, 3], [7], [13, 1, 65_536], [65_536], [4096, 5]]) {
      const { reader, out } = collect();
      feed(reader, stream, sizes);
      const o = out();
      assert.ok(o.payload.equals(expected), `split ${sizes.join(',')}`);
      assert.equal(o.controls.length, 2);
      assert.ok(o.controls[0]?.equals(ping), 'the ping goes to ws whole, still masked');
      assert.equal(o.handedBack, undefined);
      assert.ok(reader.atMessageBoundary);
    }
  });

  test('the JS unmask and the native one agree at every key offset', () => {
    const key = randomBytes(4);
    const data = randomBytes(1000);
    const a = Buffer.from(data);
    const b = Buffer.from(data);
    unmaskInJs(a, key);
    loadUnmask()(b, key);
    assert.ok(a.equals(b));
  });

  test('a text frame, RSV bits, an unmasked frame or a reserved opcode go back to ws from their header on', () => {
    for (const bad of [frame(0x1, Buffer.from('hi')), frame(0x2, Buffer.from('x'), { rsv: 0x40 }), frame(0x2, Buffer.from('x'), { masked: false }), frame(0x3, Buffer.from('x'))]) {
      const rest = Buffer.concat([bad, frame(0x2, Buffer.from('after'))]);
      for (const sizes of [[1000], [1]]) {
        const { reader, out } = collect();
        feed(reader, Buffer.concat([frame(0x2, Buffer.from('ok')), rest]), sizes);
        const o = out();
        assert.equal(o.payload.toString(), 'ok');
        assert.ok(o.handedBack?.equals(rest) === true || (sizes[0] === 1 && o.handedBack !== undefined && rest.subarray(0, o.handedBack.length).equals(o.handedBack)), `handed back from the bad header on (split ${sizes[0]})`);
        assert.ok(reader.done);
      }
    }
  });

  test('inside a fragmented message, ws first gets a zero-length fragment start, so it rejects a new data frame itself', () => {
    const { reader, out } = collect();
    const second = frame(0x2, Buffer.from('new message'));
    reader.push(Buffer.concat([frame(0x2, Buffer.from('part'), { fin: false }), second]));
    const o = out();
    assert.equal(o.payload.toString(), 'part');
    assert.deepEqual([...(o.handedBack ?? Buffer.alloc(0)).subarray(0, 2)], [0x02, 0x80], 'FIN clear, binary, masked, length 0');
    assert.ok(o.handedBack?.subarray(6).equals(second));
  });

  test('a message over the limit goes back as a fragment claiming limit + 1 bytes (ws answers 1009), before any of its payload', () => {
    const { reader, out } = collect(1000);
    reader.push(Buffer.concat([frame(0x2, Buffer.alloc(600, 1), { fin: false }), frame(0x0, Buffer.alloc(600, 2))]));
    const o = out();
    assert.equal(o.payload.length, 600, 'the first fragment was within the limit');
    const claim = o.handedBack as Buffer;
    assert.equal(claim[0], 0x02);
    assert.equal(claim[1], 0x80 | 127);
    assert.equal(claim.readBigUInt64BE(2), 1001n);
  });

  test('a control frame that is fragmented or too long is not taken', () => {
    for (const bad of [frame(0x9, Buffer.from('x'), { fin: false }), frame(0x9, Buffer.alloc(126))]) {
      const { reader, out } = collect();
      reader.push(bad);
      assert.ok(out().handedBack?.equals(bad));
      assert.equal(out().controls.length, 0);
    }
  });

  test('handBackNow between messages gives ws the stream with nothing in front', () => {
    const { reader, out } = collect();
    reader.push(frame(0x2, Buffer.from('a')));
    reader.handBackNow();
    assert.equal(out().handedBack?.length, 0);
    assert.ok(reader.done);
    reader.push(frame(0x2, Buffer.from('ignored')));
    assert.equal(out().payload.toString(), 'a', 'nothing is read once handed back');
  });
});
