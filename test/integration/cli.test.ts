/** The `porthole` command as operators run it (the built bin/porthole.js, as child processes). */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { freePort } from '../helpers/net.js';
import { runTempDir } from '../helpers/run.js';
import { startQemuVnc } from '../helpers/qemu.js';
import { rfbSecurityTypes } from '../helpers/ws-client.js';
import { BIN, runCli } from '../helpers/cli.js';

const run = runCli;

async function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; got:\n${out}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (pattern.test(out)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(out);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code} before ${pattern}; got:\n${out}`)); });
  });
}

/** The pid of the demo QEMU serving VNC display `display` (read from /proc, like ps). */
async function findQemuPid(display: number): Promise<number | undefined> {
  const { readdir, readFile } = await import('node:fs/promises');
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv.includes('porthole-demo') && argv.includes(`127.0.0.1:${display}`)) return Number(entry);
  }
  return undefined;
}

describe('porthole CLI', () => {
  let dir: string;
  let vm: DemoVm;

  before(async () => {
    dir = runTempDir('cli');
    vm = await startQemuVnc();
  });

  after(async () => {
    await vm?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('config check: every problem at once, with file:line and did-you-mean; exit 2', async () => {
    const conf = join(dir, 'bad.conf');
    await writeFile(conf, '[vnc]\nnovncproxy_prot = 6080\n[consoleauth]\ntoken_ttl = -5\n[cach]\nbackend = memory\n');
    const res = await run(['config', 'check', '--config-file', conf]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /invalid configuration \(3 problems\)/);
    assert.match(res.stderr, new RegExp(`${conf}:2: \\[vnc\\] novncproxy_prot: unknown option, did you mean novncproxy_port\\?`));
    assert.match(res.stderr, new RegExp(`${conf}:4: \\[consoleauth\\] token_ttl: must be from 1 to 604800, got -5`));
    assert.match(res.stderr, new RegExp(`${conf}:5: \\[cach\\]: unknown group, did you mean \\[cache\\]\\?`));
  });

  test('serve refuses to start on an unknown option (nothing listens)', async () => {
    const port = await freePort();
    const conf = join(dir, 'typo.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/typo-state\n[vnc]\nnovncproxy_port = ${port}\n[cache]\nbackend = memory\nsqlite_pth = /tmp/x\n`);
    const res = await run(['serve', '--config-file', conf]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /\[cache\] sqlite_pth: unknown option, did you mean sqlite_path\?/);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  });

  test('legacy [DEFAULT] names warn and name the new option', async () => {
    const conf = join(dir, 'legacy.conf');
    await writeFile(conf, '[DEFAULT]\nnovncproxy_port = 6099\nvncserver_proxyclient_address = 127.0.0.1\n');
    const res = await run(['config', 'check', '--config-file', conf]);
    assert.equal(res.code, 0);
    assert.match(res.stderr, /warning: \[DEFAULT\] novncproxy_port is deprecated; use \[vnc\] novncproxy_port/);
    assert.match(res.stdout, /configuration OK/);
  });

  test('serve + console url: a fresh URL reaches the VM; inventory edits apply without restart; SIGTERM exits 0', async () => {
    const proxyPort = await freePort();
    const apiPort = await freePort();
    const inventory = join(dir, 'inventory.ini');
    await writeFile(inventory, `[demo-vm]\nhost = 127.0.0.1\nport = ${vm.entry.port}\n`);
    const conf = join(dir, 'serve.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/state\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\n` +
      `novncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n[api]\nport = ${apiPort}\n[static]\ninventory_file = ${inventory}\n`);
    const server = spawn(process.execPath, [BIN, 'serve', '--config-file', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    server.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      const banner = await waitForOutput(server, /API: .*\n/);
      assert.match(banner, new RegExp(`console URLs:  http://127\\.0\\.0\\.1:${proxyPort}/vnc_lite\\.html\\?token=…`));
      assert.match(banner, /key generated into .*state\/api-key/);
      const keyMode = (await stat(join(dir, 'state', 'api-key'))).mode & 0o777;
      assert.equal(keyMode, 0o600);

      const res = await run(['console', 'url', 'demo-vm', '--config-file', conf]);
      assert.equal(res.code, 0, res.stderr);
      const url = new URL(res.stdout.trim());
      assert.equal(url.pathname, '/vnc_lite.html');
      const token = url.searchParams.get('token') ?? '';
      const { version } = await rfbSecurityTypes(`ws://127.0.0.1:${proxyPort}/websockify?token=${token}`);
      assert.equal(version, 'RFB 003.008\n');

      const missing = await run(['console', 'url', 'later-vm', '--config-file', conf]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /PH_ERR_INSTANCE_NOT_FOUND/);
      await appendFile(inventory, `[later-vm]\nhost = 127.0.0.1\nport = ${vm.entry.port}\n`);
      const added = await run(['console', 'url', 'later-vm', '--config-file', conf]);
      assert.equal(added.code, 0, added.stderr);

      assert.ok(!stderr.includes(token), 'the token is not in the server log');
    } finally {
      const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
      server.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
    assert.match(stderr, /"msg":"shutting down"/);
  });

  test('serve --demo boots a QEMU VM, prints a working console URL, and stops the VM on SIGTERM', async () => {
    const proxyPort = await freePort();
    const conf = join(dir, 'demo.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/demo-state\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\n` +
      `novncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n[api]\nport = ${await freePort()}\n[cache]\nbackend = memory\n`);
    const server = spawn(process.execPath, [BIN, 'serve', '--demo', '--config-file', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stderr.resume();
    let qemuPid: number | undefined;
    let vncPort = 0;
    try {
      const out = await waitForOutput(server, /token=[A-Za-z0-9_-]{32}\n/);
      const url = new URL(/(http:\/\/\S+token=[A-Za-z0-9_-]{32})\n/.exec(out)?.[1] ?? '');
      vncPort = Number(/demo VM: +127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
      qemuPid = await findQemuPid(vncPort - 5900);
      assert.ok(qemuPid !== undefined, 'the demo QEMU process runs');
      const { version, types } = await rfbSecurityTypes(`ws://127.0.0.1:${proxyPort}/websockify?token=${url.searchParams.get('token')}`);
      assert.equal(version, 'RFB 003.008\n');
      assert.deepEqual(types, [1]);
    } finally {
      const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
      server.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
    assert.equal(await findQemuPid(vncPort - 5900), undefined, 'the demo VM is gone after SIGTERM');
  });

  test('serve --demo without QEMU says how to install it', async () => {
    const conf = join(dir, 'noqemu.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/noqemu-state\n[cache]\nbackend = memory\n`);
    const res = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'serve', '--demo', '--config-file', conf], { env: { ...process.env, PATH: '/nonexistent' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      child.on('close', (code) => resolve({ code, stderr }));
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /PH_ERR_DEMO_UNAVAILABLE: --demo needs QEMU: qemu-system-x86_64 is not on PATH\. Install it with `apt-get install qemu-system-x86`/);
  });

  test('console url explains an unreachable API', async () => {
    const conf = join(dir, 'noapi.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/state\n[api]\nport = ${await freePort()}\n`);
    const res = await run(['console', 'url', 'x', '--config-file', conf]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /cannot reach the Porthole API at http:\/\/127\.0\.0\.1:\d+: .*is `porthole serve` running/);
  });
});
