/**
 * Who opened which console: named API keys (`name:key` lines; plain keys still work), `user` and
 * `project` at mint, shown in the session list (with filters) and the session's log lines — never
 * the token. Real QEMU console.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startQemuVnc } from '../helpers/qemu.js';
import { runTempDir } from '../helpers/run.js';

describe('who opened which console', () => {
  let vm: DemoVm;
  let gw: TestGateway;
  let dir: string;
  const horizonKey = randomBytes(24).toString('base64url');
  const plainKey = randomBytes(24).toString('base64url');

  before(async () => {
    vm = await startQemuVnc();
    dir = runTempDir('who');
    const keys = join(dir, 'keys');
    await writeFile(keys, `# name:key, or a plain key\nhorizon:${horizonKey}\n${plainKey}\n`, { mode: 0o600 });
    gw = await startTestGateway({ builtin: [{ ...vm.entry, name: 'vm' }], ini: `auth_keys_file = ${keys}\n` });
  });

  after(async () => {
    await gw?.close();
    await vm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the key\'s name and the caller\'s user/project are in the session list and log lines; filters; no token', async () => {
    const alice = await gw.api('POST', '/v1/consoles', { instance: 'vm', user: 'alice@example.org', project: 'p-42' }, horizonKey);
    assert.equal(alice.status, 201, JSON.stringify(alice.body));
    const plain = await gw.api('POST', '/v1/consoles', { instance: 'vm' }, plainKey);
    assert.equal(plain.status, 201, 'a plain key line still works');
    const open = async (token: string) => {
      const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
      await new Promise((resolve, reject) => { ws.once('message', resolve); ws.once('error', reject); });
      return ws;
    };
    const consoles = [await open(alice.body.token as string), await open(plain.body.token as string)];
    try {
      const all = (await gw.api('GET', '/v1/sessions')).body.sessions as Array<{ who?: Record<string, string> }>;
      assert.deepEqual(all.map((s) => s.who).sort((a, b) => String(a?.key).localeCompare(String(b?.key))),
        [{ key: 'horizon', user: 'alice@example.org', project: 'p-42' }, { key: 'key2' }]);
      assert.equal(((await gw.api('GET', '/v1/sessions?user=alice%40example.org')).body.sessions as unknown[]).length, 1);
      assert.equal(((await gw.api('GET', '/v1/sessions?key=key2')).body.sessions as unknown[]).length, 1);
      assert.equal(((await gw.api('GET', '/v1/sessions?project=other')).body.sessions as unknown[]).length, 0);
      assert.equal((await gw.api('GET', '/v1/sessions?nonsense=1')).status, 400);
      const relaying = gw.logLines.find((l) => l.includes('console session relaying') && l.includes('alice@example.org'));
      assert.ok(relaying !== undefined, 'the session\'s log lines say who');
      assert.match(relaying, /"who":\{"key":"horizon","user":"alice@example.org","project":"p-42"\}/);
      for (const token of [alice.body.token, plain.body.token] as string[]) assert.ok(!gw.logLines.some((l) => l.includes(token)), 'never the token');
      assert.ok(!gw.logLines.some((l) => l.includes(horizonKey) || l.includes(plainKey)), 'never a key');
    } finally {
      for (const c of consoles) c.close();
    }
  });
});
