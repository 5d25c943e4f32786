import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ClientHandshake, ServerHandshake, type StepResult } from '../../src/protocols/vnc/handshake.js';
import { vncAuthResponse } from '../../src/protocols/vnc/vnc-auth.js';

const V38 = Buffer.from('RFB 003.008\n');
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };

/** Feed bytes one at a time: every step must be resumable. */
function feedBytewise(hs: { feed(b: Buffer): StepResult }, bytes: Buffer): { sent: Buffer; last: StepResult } {
  const sent: Buffer[] = [];
  let last: StepResult = { send: [], done: false };
  for (const byte of bytes) {
    last = hs.feed(Buffer.from([byte]));
    sent.push(...last.send);
  }
  return { sent: Buffer.concat(sent), last };
}

test('server side, None: version → choose 1 → result OK, byte by byte', () => {
  const hs = new ServerHandshake(['none'], undefined);
  const { sent, last } = feedBytewise(hs, Buffer.concat([V38, Buffer.from([2, 2, 1]), u32(0)]));
  assert.deepEqual(sent, Buffer.concat([V38, Buffer.from([1])]));
  assert.equal(last.done, true);
  assert.equal(hs.chosen, 'none');
});

test('server side, VNC auth: answers the challenge with the DES response', () => {
  const challenge = randomBytes(16);
  const hs = new ServerHandshake(['vnc', 'none'], 's3cret');
  const { sent, last } = feedBytewise(hs, Buffer.concat([V38, Buffer.from([1, 2]), challenge, u32(0)]));
  assert.deepEqual(sent, Buffer.concat([V38, Buffer.from([2]), vncAuthResponse('s3cret', challenge)]));
  assert.equal(last.done, true);
});

test('server side: the order of [vnc] auth_schemes decides; vnc without a known password is skipped', () => {
  const pick = (allowed: Array<'none' | 'vnc'>, pw: string | undefined) => {
    const hs = new ServerHandshake(allowed, pw);
    hs.feed(Buffer.concat([V38, Buffer.from([2, 1, 2])]));
    return hs.chosen;
  };
  assert.equal(pick(['vnc', 'none'], 'x'), 'vnc');
  assert.equal(pick(['none', 'vnc'], 'x'), 'none');
  assert.equal(pick(['vnc', 'none'], undefined), 'none');
});

test('server side: nothing allowed → PH_ERR_RFB_NO_COMMON_AUTH naming the offered types', () => {
  const hs = new ServerHandshake(['none', 'vnc'], undefined);
  assert.throws(() => hs.feed(Buffer.concat([V38, Buffer.from([2, 19, 2])])), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'PH_ERR_RFB_NO_COMMON_AUTH');
    assert.match(e.message, /offers security types \[19 VeNCrypt, 2 VNCAuth\]; allowed: none, vnc \(no VNC password is known/);
    return true;
  });
});

test('server side: refusal and failed auth carry the server\'s reason; a 4 GiB reason length is rejected', () => {
  const refused = new ServerHandshake(['none'], undefined);
  assert.throws(() => refused.feed(Buffer.concat([V38, Buffer.from([0]), u32(4), Buffer.from('busy')])), /refused the connection: busy/);
  const wrong = new ServerHandshake(['vnc'], 'x');
  assert.throws(() => wrong.feed(Buffer.concat([V38, Buffer.from([1, 2]), randomBytes(16), u32(1), u32(13), Buffer.from('Authenticati\u0000')])),
    (e: Error & { code?: string }) => e.code === 'PH_ERR_RFB_AUTH_FAILED' && /rejected the password: Authenticati\?/.test(e.message));
  const hostile = new ServerHandshake(['none'], undefined);
  assert.throws(() => hostile.feed(Buffer.concat([V38, Buffer.from([0]), u32(0xffffffff)])), /reason length 4294967295 exceeds/);
});

test('server side: not RFB, or RFB 3.3 → PH_ERR_RFB_HANDSHAKE', () => {
  assert.throws(() => new ServerHandshake(['none'], undefined).feed(Buffer.from('HTTP/1.1 200\r\n')), /did not greet with an RFB version/);
  assert.throws(() => new ServerHandshake(['none'], undefined).feed(Buffer.from('RFB 003.003\n')), /3\.8 is required/);
});

/** Server bytes up to VeNCrypt's sub-type accept: types [19], version 0.2, ack, sub-types, accept. */
const vencryptPreamble = (subtypes: number[]) => Buffer.concat([V38, Buffer.from([1, 19]), Buffer.from([0, 2]), Buffer.from([0]),
  Buffer.from([subtypes.length]), ...subtypes.map(u32), Buffer.from([1])]);

test('server side, VeNCrypt X509None: version 0.2, picks 260, asks for TLS, then reads SecurityResult', () => {
  const hs = new ServerHandshake(['vencrypt'], undefined);
  const { sent, last } = feedBytewise(hs, vencryptPreamble([260]));
  assert.deepEqual(sent, Buffer.concat([V38, Buffer.from([19]), Buffer.from([0, 2]), u32(260)]));
  assert.equal(last.startTls, true);
  assert.equal(last.done, false);
  // After TLS: the bytes are the decrypted stream.
  const end = hs.feed(u32(0));
  assert.equal(end.done, true);
  assert.equal(hs.vencryptSubtype, 260);
});

test('server side, VeNCrypt X509Vnc: preferred when the password is known; the challenge is answered inside TLS', () => {
  const challenge = randomBytes(16);
  const hs = new ServerHandshake(['vencrypt'], 'pw');
  const pre = feedBytewise(hs, vencryptPreamble([260, 261]));
  assert.deepEqual(pre.sent.subarray(-4), u32(261));
  assert.equal(pre.last.startTls, true);
  const { sent, last } = feedBytewise(hs, Buffer.concat([challenge, u32(0)]));
  assert.deepEqual(sent, vncAuthResponse('pw', challenge));
  assert.equal(last.done, true);
  const wrong = new ServerHandshake(['vencrypt'], 'pw');
  wrong.feed(vencryptPreamble([261]));
  assert.throws(() => wrong.feed(Buffer.concat([randomBytes(16), u32(1), u32(6), Buffer.from('denied')])),
    (e: Error & { code?: string }) => e.code === 'PH_ERR_RFB_AUTH_FAILED' && /rejected the password: denied/.test(e.message));
});

test('server side, VeNCrypt: anonymous TLS or plain sub-types only → 4018 naming them; a bad version or refusal → handshake error', () => {
  assert.throws(() => new ServerHandshake(['vencrypt'], 'pw').feed(vencryptPreamble([257, 258, 256])), (e: Error & { code?: string }) =>
    e.code === 'PH_ERR_RFB_NO_COMMON_AUTH' && /sub-types \[257 TLSNone, 258 TLSVnc, 256 Plain\]/.test(e.message));
  assert.throws(() => new ServerHandshake(['vencrypt'], undefined).feed(vencryptPreamble([261])), /no VNC password is known/);
  assert.throws(() => new ServerHandshake(['vencrypt'], undefined).feed(Buffer.concat([V38, Buffer.from([1, 19, 0, 1])])), /VeNCrypt 0\.1; 0\.2 is required/);
  assert.throws(() => new ServerHandshake(['vencrypt'], undefined).feed(Buffer.concat([V38, Buffer.from([1, 19, 0, 2, 1])])), /refused VeNCrypt version 0\.2/);
  assert.throws(() => new ServerHandshake(['vencrypt'], undefined).feed(Buffer.concat([V38, Buffer.from([1, 19, 0, 2, 0, 0])])), /no VeNCrypt sub-types/);
  const reject = Buffer.concat([V38, Buffer.from([1, 19, 0, 2, 0, 1]), u32(260), Buffer.from([0])]);
  assert.throws(() => new ServerHandshake(['vencrypt'], undefined).feed(reject), /rejected VeNCrypt sub-type 260 X509None/);
  // Clear text where the TLS ClientHello is due: a downgrade attempt, refused.
  assert.throws(() => new ServerHandshake(['vencrypt'], undefined).feed(Buffer.concat([vencryptPreamble([260]), u32(0)])), /clear-text bytes/);
});

test('client side: offers only None; extra bytes after the choice are handed on', () => {
  const hs = new ClientHandshake();
  assert.deepEqual(hs.start(), [V38]);
  const { sent } = feedBytewise(hs, Buffer.concat([V38]));
  assert.deepEqual(sent, Buffer.from([1, 1]));
  const end = hs.feed(Buffer.from([1, 1 /* ClientInit shared */]));
  assert.deepEqual(end.send, [Buffer.from([0, 0, 0, 0])]);
  assert.equal(end.done, true);
  assert.deepEqual(end.rest, Buffer.from([1]));
});

test('client side: a browser choosing anything but None is refused', () => {
  const hs = new ClientHandshake();
  hs.feed(V38);
  assert.throws(() => hs.feed(Buffer.from([2])), /only 1 \(None\) was offered/);
});

test('fuzz: random and truncated input never crashes, hangs or buffers without bound', () => {
  for (let i = 0; i < 3000; i++) {
    const valid = i % 2 === 0 ? Buffer.concat([V38, Buffer.from([2, 1, 2]), randomBytes(16), u32(0)]) : vencryptPreamble([260, 261]);
    const input = i % 4 === 0 ? randomBytes(Math.floor(Math.random() * 64))
      : i % 4 === 1 ? valid.subarray(0, Math.floor(Math.random() * valid.length))
      : i % 4 === 2 ? Buffer.concat([V38, Buffer.from([1, 19, 0, 2, 0]), randomBytes(Math.floor(Math.random() * 64))])
      : Buffer.concat([V38, randomBytes(Math.floor(Math.random() * 64))]);
    for (const hs of [new ServerHandshake(['vencrypt', 'vnc', 'none'], 'pw'), new ClientHandshake()]) {
      try {
        let offset = 0;
        while (offset < input.length) {
          const n = 1 + Math.floor(Math.random() * 7);
          hs.feed(input.subarray(offset, offset + n));
          offset += n;
        }
      } catch (err) {
        assert.match((err as { code?: string }).code ?? '', /^PH_ERR_RFB_/, (err as Error).stack);
      }
    }
  }
  assert.throws(() => new ClientHandshake().feed(Buffer.alloc(10_000)), /more than 8192 bytes/, 'handshake buffers are bounded');
});
