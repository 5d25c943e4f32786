/**
 * Audit events: one JSON line per console event to `[audit] file` (0600) and to a real rsyslogd
 * through util-linux `logger`; who is in every line, the token never; SIGHUP reopens the file
 * (logrotate), and SIGTERM writes the close event of every open console. Real QEMU console.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { BIN, waitForOutput } from '../helpers/cli.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startQemuVnc } from '../helpers/qemu.js';
import { runTempDir } from '../helpers/run.js';
import { startRsyslog, type Rsyslog } from '../helpers/services.js';
import { openConsole, openVncConsole } from '../helpers/ws-client.js';

type Line = Record<string, unknown>;
const readLines = async (file: string): Promise<Line[]> =>
  (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Open a console and wait for the VNC server's first bytes. */

describe('audit events', () => {
  let vm: DemoVm;
  let dir: string;
  let syslog: Rsyslog;
  const key = randomBytes(24).toString('base64url');

  before(async () => {
    vm = await startQemuVnc();
    syslog = await startRsyslog();
    dir = runTempDir('audit');
    await writeFile(join(dir, 'keys'), `horizon:${key}\n`, { mode: 0o600 });
  });

  after(async () => {
    await vm?.stop();
    await syslog?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('minted, opened, refused, closed, killed, revoked: one line each, with who and never the token; the same lines in syslog', async () => {
    const file = join(dir, 'audit.jsonl');
    const gw: TestGateway = await startTestGateway({
      builtin: [{ ...vm.entry, name: 'vm' }],
      ini: `auth_keys_file = ${join(dir, 'keys')}\n[porthole]\nnode_name = node-a\n[audit]\nfile = ${file}\nsyslog = true\nsyslog_address = ${syslog.socket}\n`,
    });
    const tokens: string[] = [];
    try {
      const mint = async () => {
        const res = await gw.api('POST', '/v1/consoles', { instance: 'vm', user: 'alice', project: 'p-1' }, key);
        assert.equal(res.status, 201, JSON.stringify(res.body));
        tokens.push(res.body.token as string);
        return `${gw.wsUrl}?token=${res.body.token as string}`;
      };
      // 1: opened and closed by the viewer
      const first = await openVncConsole(await mint(), gw.proxyUrl);
      first.close(1000);
      // 2: a guessed token, refused
      const refused = await openConsole(`${gw.wsUrl}?token=${'x'.repeat(40)}`, { origin: gw.proxyUrl });
      assert.equal(refused.closeCode, 4002);
      // 3: killed by an administrator by session id
      const second = await openVncConsole(await mint(), gw.proxyUrl);
      const closedSecond = new Promise<number>((r) => second.once('close', (code) => r(code)));
      const listed = (await gw.api('GET', '/v1/sessions', undefined, key)).body;
      assert.equal(listed.node, 'node-a');
      const [session] = listed.sessions as Array<{ id: string }>;
      assert.equal((await gw.api('DELETE', `/v1/sessions/${session?.id ?? ''}`, undefined, key)).status, 204);
      assert.equal(await closedSecond, 4030);
      // 4: every console of the instance, then the tokens revoked
      const third = await openVncConsole(await mint(), gw.proxyUrl);
      const closedThird = new Promise<number>((r) => third.once('close', (code) => r(code)));
      const killed = await gw.api('DELETE', '/v1/instances/vm/sessions', undefined, key);
      assert.deepEqual(killed.body, { instance: 'vm', closed: 1 });
      assert.equal(await closedThird, 4030);
      assert.equal((await gw.api('DELETE', '/v1/instances/vm/consoles', undefined, key)).status, 200);

      const lines = await until('the last close line', async () => {
        const l = await readLines(file);
        return l.filter((e) => e.event === 'console.closed').length === 3 && l.some((e) => e.event === 'console.revoked') ? l : undefined;
      });
      const events = lines.map((l) => l.event);
      assert.deepEqual(events.filter((e) => e === 'console.minted').length, 3);
      assert.deepEqual(events.filter((e) => e === 'console.opened').length, 3);
      assert.ok(events.includes('console.refused') && events.includes('session.killed') && events.includes('console.revoked'), events.join(' '));
      const who = { key: 'horizon', user: 'alice', project: 'p-1' };
      for (const l of lines) {
        assert.equal(l.node, 'node-a');
        assert.ok(!Number.isNaN(Date.parse(String(l.time))), 'time');
        if (['console.minted', 'console.opened', 'console.closed'].includes(String(l.event))) {
          assert.deepEqual(l.who, who, `${String(l.event)} says who`);
          assert.equal(l.instance, 'vm');
          assert.equal(l.protocol, 'vnc');
        }
      }
      const closes = lines.filter((l) => l.event === 'console.closed');
      assert.deepEqual(closes.map((l) => l.close_code), [1000, 4030, 4030]);
      assert.deepEqual(closes.map((l) => l.code), [undefined, 'PH_ERR_SESSION_CLOSED_BY_ADMIN', 'PH_ERR_SESSION_CLOSED_BY_ADMIN']);
      for (const c of closes) {
        assert.ok(typeof c.session === 'string' && c.remote === '127.0.0.1' && c.relayed === true, JSON.stringify(c));
        assert.ok((c.bytes_to_client as number) >= 12 && typeof c.duration_ms === 'number', 'bytes each way and duration');
      }
      const opened = lines.filter((l) => l.event === 'console.opened');
      assert.deepEqual(opened.map((l) => l.session), closes.map((l) => l.session), 'a session\'s open and close name the same session');
      const minted = lines.find((l) => l.event === 'console.minted') as Line;
      assert.match(String(minted.token_id), /^[0-9a-f]{8}$/);
      assert.equal(minted.remote, '127.0.0.1');
      const refusal = lines.find((l) => l.event === 'console.refused') as Line;
      assert.deepEqual([refusal.stage, refusal.code, refusal.remote], ['token', 'PH_ERR_TOKEN_INVALID', '127.0.0.1']);
      const kills = lines.filter((l) => l.event === 'session.killed');
      assert.deepEqual(kills.map((k) => [k.by, k.count]), [['horizon', 1], ['horizon', 1]]);
      assert.equal(kills[0]?.session, session?.id);
      assert.deepEqual(lines.find((l) => l.event === 'console.revoked')?.by, 'horizon');

      const text = await readFile(file, 'utf8');
      for (const t of tokens) assert.ok(!text.includes(t), 'never the token');
      assert.ok(!text.includes(key), 'never the key');
      assert.equal((await stat(file)).mode & 0o777, 0o600);

      // syslog: the same lines, through a real rsyslogd
      const sysLines = await until('syslog lines', async () => {
        const got = (await readFile(syslog.file, 'utf8').catch(() => '')).split('\n').filter((l) => l.includes('porthole-audit:'));
        return got.length >= lines.length ? got : undefined;
      });
      assert.deepEqual(sysLines.map((l) => JSON.parse(l.slice(l.indexOf('porthole-audit: ') + 16)) as Line), lines);
    } finally {
      await gw.close();
    }
  });

  test('an audit file that cannot be opened stops the start with the file named', async () => {
    await assert.rejects(startTestGateway({ ini: `[audit]\nfile = ${join(dir, 'no-such-dir', 'audit.jsonl')}\n` }), /\[audit\] file .*no-such-dir.*ENOENT/);
  });

  test('porthole serve: SIGHUP reopens a rotated file; SIGTERM writes the close line of every open console', async () => {
    const proxyPort = await freePort();
    const apiPort = await freePort();
    const file = join(dir, 'serve-audit.jsonl');
    const conf = join(dir, 'serve.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/state\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\n` +
      `novncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n[api]\nport = ${apiPort}\nauth_keys_file = ${join(dir, 'keys')}\n` +
      `[console]\nshutdown_grace_period = 0\n[audit]\nfile = ${file}\n[static]\ninventory_file = ${join(dir, 'inventory.ini')}\n`);
    await writeFile(join(dir, 'inventory.ini'), `[vm]\nhost = 127.0.0.1\nport = ${vm.entry.port}\n`);
    const server = spawn(process.execPath, [BIN, 'serve', '--config-file', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    server.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
    try {
      const banner = await waitForOutput(server, /API: .*\n/);
      assert.match(banner, /audit: +.*serve-audit\.jsonl \(reopened on SIGHUP\)/);
      const mint = async () => {
        const res = await fetch(`http://127.0.0.1:${apiPort}/v1/consoles`, {
          method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ instance: 'vm' }),
        });
        return `ws://127.0.0.1:${proxyPort}/websockify?token=${((await res.json()) as { token: string }).token}`;
      };
      const origin = `http://127.0.0.1:${proxyPort}`;
      const a = await openVncConsole(await mint(), origin);
      await rename(file, `${file}.1`); // logrotate
      server.kill('SIGHUP');
      await until(`the reopened file (server log: ${stderr})`, async () => (await stat(file).catch(() => undefined)) === undefined ? undefined : true);
      const b = await openVncConsole(await mint(), origin);
      const closes = [a, b].map((ws) => new Promise<number>((r) => ws.once('close', (code) => r(code))));
      server.kill('SIGTERM');
      assert.deepEqual(await Promise.all(closes), [1001, 1001]);
      assert.equal(await exited, 0);
      const old = await readLines(`${file}.1`);
      const current = await readLines(file);
      assert.deepEqual(old.map((l) => l.event), ['console.minted', 'console.opened']);
      assert.deepEqual(current.map((l) => l.event), ['console.minted', 'console.opened', 'console.closed', 'console.closed'], 'both open consoles closed in the new file');
      assert.deepEqual(current.filter((l) => l.event === 'console.closed').map((l) => [l.close_code, l.code]), [[1001, 'PH_ERR_SHUTTING_DOWN'], [1001, 'PH_ERR_SHUTTING_DOWN']]);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
    } finally {
      if (server.exitCode === null) server.kill('SIGKILL');
      await exited;
    }
  });
});
