import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AsciicastEvents, asciicastHeader, parseVncRecording, vncFrameLine } from '../../src/recording/formats.js';
import { recordingName, RECORDING_NAME } from '../../src/recording/recorder.js';

test('VNC frames are written as websockify --record writes them (CONSOLE-FACTS §6.1)', () => {
  assert.equal(vncFrameLine(false, 1, Buffer.from('RFB 003.008\n')).toString(), "'{1{RFB 003.008\\n',\n");
  assert.equal(vncFrameLine(true, 4, Buffer.from([1])).toString(), "'}4}\\x01',\n");
  assert.equal(vncFrameLine(false, 6, Buffer.from([0x02, 0xd0, 0x01, 0x90, 0x20, 0x18, 0x00, 0xff])).toString(), "'{6{\\x02\\xd0\\x01\\x90 \\x18\\x00\\xff',\n");
  assert.equal(vncFrameLine(false, 7, Buffer.from("it's a \\ back\tslash\r")).toString(), "'{7{it\\'s a \\\\ back\\tslash\\r',\n");
});

test('every byte value survives a write and a read back', () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const text = `var VNC_frame_data = [\n${vncFrameLine(false, 10, all).toString()}${vncFrameLine(true, 12, Buffer.from("'\\'")).toString()}'EOF'];\n`;
  const frames = parseVncRecording(text);
  assert.deepEqual(frames.map((f) => [f.fromClient, f.ms]), [[false, 10], [true, 12]]);
  assert.deepEqual(frames[0]?.bytes, all);
  assert.equal(frames[1]?.bytes.toString(), "'\\'");
});

test('asciicast v2: header, output events, a UTF-8 character split across chunks is one character', () => {
  assert.deepEqual(JSON.parse(asciicastHeader(1_796_000_000_000, 'vm')), { version: 2, width: 80, height: 24, timestamp: 1_796_000_000, title: 'vm', env: { TERM: 'xterm-256color' } });
  const events = new AsciicastEvents();
  const e = Buffer.from('é'); // 2 bytes
  assert.equal(events.line('o', 0.5, e.subarray(0, 1)), '');
  assert.equal(events.line('o', 0.6, Buffer.concat([e.subarray(1), Buffer.from('\r\n')])), '[0.6,"o","é\\r\\n"]\n');
  assert.equal(events.line('i', 1, Buffer.from('\x1b')), '[1,"i","\\u001b"]\n');
});

test('recording names: time, a safe instance name, the session, the format; only such names are served', () => {
  const name = recordingName(Date.UTC(2026, 11, 2, 9, 5, 7, 89), 'web/../1 x', 'k2x-1', 'vnc');
  assert.equal(name, '2026-12-02T09-05-07-089Z-web_.._1_x-k2x-1.vnc.js');
  assert.ok(RECORDING_NAME.test(name));
  assert.ok(!RECORDING_NAME.test('../state/api-key') && !RECORDING_NAME.test('2026-x-vm-1.vnc.js/../../etc'));
});
