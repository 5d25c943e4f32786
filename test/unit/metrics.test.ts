import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayMetrics, resultLabel } from '../../src/metrics/metrics.js';

test('result labels are bounded: a known PH_ERR code, ws_<close code>, or unknown', () => {
  assert.equal(resultLabel('PH_ERR_TOKEN_EXPIRED', 4003), 'PH_ERR_TOKEN_EXPIRED');
  assert.equal(resultLabel(undefined, 1006), 'ws_1006');
  assert.equal(resultLabel('PH_ERR_MADE_UP', undefined), 'unknown');
  assert.equal(resultLabel(undefined, 99999), 'unknown');
});

test('two gateways\' metrics never share counts; closed sessions\' bytes stay in the totals', async () => {
  const a = new GatewayMetrics({ sessions: { list: () => [] }, version: '1' });
  const b = new GatewayMetrics({ sessions: { list: () => [] }, version: '1' });
  a.events.sessionOpened({ id: 's1', instance: 'vm', remote: '127.0.0.1', protocol: 'vnc', setupSeconds: 0.01 });
  a.events.sessionClosed({ id: 's1', instance: 'vm', remote: '127.0.0.1', durationMs: 5, protocol: 'vnc', relayed: true, closeCode: 1000, errorCode: undefined, bytesToClient: 500, bytesToServer: 7 });
  a.events.sessionClosed({ id: 's1', instance: 'vm', remote: '127.0.0.1', durationMs: 5, protocol: 'serial', relayed: false, closeCode: 4010, errorCode: 'PH_ERR_UPSTREAM_UNREACHABLE', bytesToClient: 0, bytesToServer: 0 });
  const text = await a.metrics();
  assert.match(text, /^porthole_session_setups_total\{protocol="vnc",result="ok"\} 1$/m);
  assert.match(text, /^porthole_session_setups_total\{protocol="serial",result="PH_ERR_UPSTREAM_UNREACHABLE"\} 1$/m);
  assert.match(text, /^porthole_relay_bytes_total\{protocol="vnc",direction="to_client"\} 500$/m);
  assert.doesNotMatch(await b.metrics(), /porthole_session_setups_total\{/);
});
