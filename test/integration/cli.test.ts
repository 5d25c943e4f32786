/** The `porthole` command as operators run it (the built bin/porthole.js, as child processes). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { openSerial } from '../helpers/serial-client.js';
import { freePort } from '../helpers/net.js';
import { runTempDir } from '../helpers/run.js';
import { startQemuVnc } from '../helpers/qemu.js';
import { rfbSecurityTypes } from '../helpers/ws-client.js';
import { BIN, runCli, waitForOutput } from '../helpers/cli.js';

const run = runCli;

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

  test('serve with an unwritable state_path names the option and the error, no stack trace (regression: exit 70)', async () => {
    const notADir = join(dir, 'plain-file');
    await writeFile(notADir, 'x');
    for (const backend of ['sqlite', 'memory']) { // the API key comes first either way
      const conf = join(dir, `unwritable-${backend}.conf`);
      await writeFile(conf, `[DEFAULT]\nstate_path = ${notADir}/state\n[vnc]\nnovncproxy_port = ${await freePort()}\n[api]\nport = ${await freePort()}\n[cache]\nbackend = ${backend}\n`);
      const res = await run(['serve', '--config-file', conf]);
      assert.ok(res.code === 1 || res.code === 2, `${backend}: exit ${res.code}: ${res.stderr}`);
      assert.doesNotMatch(res.stderr, /unexpected error| {4}at /, res.stderr);
      assert.match(res.stderr, /API key file .*: \[DEFAULT\] state_path = .* must be a directory porthole can write/);
    }
  });

  test('two serve processes racing on a fresh state dir both start, with the same API key (regression: EEXIST)', async () => {
    const { loadApiKeys } = await import('../../src/api/keys.js');
    for (let round = 0; round < 5; round++) {
      const state = join(dir, `race-${round}`);
      const loaded = await Promise.all(Array.from({ length: 8 }, () => loadApiKeys('', state, true)));
      assert.equal(new Set(loaded.map((l) => l.keys[0])).size, 1, 'every process got the one key on disk');
      assert.equal(loaded.filter((l) => l.generated).length, 1);
    }
  });

  test('out of file descriptors: serve warns at start, a console gets its own reason (4025), not "VNC server unreachable" (regression: 4010)', async () => {
    const { createServer } = await import('node:net');
    const { readdirSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const target = createServer((sock) => { sock.on('error', () => sock.destroy()); sock.write('RFB 003.008\n'); });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const targetPort = (target.address() as import('node:net').AddressInfo).port;
    const proxyPort = await freePort();
    const inventory = join(dir, 'fd-inventory.ini');
    await writeFile(inventory, `[fd-vm]\nhost = 127.0.0.1\nport = ${targetPort}\n`);
    const conf = join(dir, 'fd.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/fd-state\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\n` +
      `novncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n[api]\nport = ${await freePort()}\n[static]\ninventory_file = ${inventory}\n` +
      `[cache]\nbackend = memory\n[console]\nmax_sessions_per_instance = 0\n`);
    const server = spawn('prlimit', ['--nofile=400:400', process.execPath, BIN, 'serve', '--config-file', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    server.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    server.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const sockets: import('ws').WebSocket[] = [];
    try {
      const banner = await waitForOutput(server, /API: .*\n(.*WARNING.*\n)?/);
      await new Promise((r) => setTimeout(r, 200));
      assert.match(stdout, /WARNING: the open-files limit is 400, but \[console\] max_sessions = 1000 needs about 2128/, banner);
      const res = await run(['console', 'url', 'fd-vm', '--config-file', conf]);
      const token = new URL(res.stdout.trim()).searchParams.get('token') ?? '';
      const pid = server.pid as number;
      // Leave exactly one descriptor free, looked at afresh before each try: the
      // accept takes it and the connection to the VNC server is the one that
      // fails. With two or more free the count depends on sockets the server
      // closes in between (the `console url` API call); with none, libuv's
      // EMFILE trick resets the connection before anyone could answer it.
      await new Promise((r) => setTimeout(r, 300));
      const { default: WebSocket } = await import('ws');
      const codes: Array<number | string> = [];
      for (let i = 0; i < 6 && !codes.includes(4025); i++) {
        // The kernel hands out the lowest free number below the soft limit, so
        // the limit goes just under the second free number, not at count + 1.
        const used = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
        let free = 0;
        let limit = 0;
        while (free < 2) if (!used.has(limit++)) free++;
        execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit - 1}:400`]);
        codes.push(await new Promise<number | string>((resolve) => {
          const ws = new WebSocket(`ws://127.0.0.1:${proxyPort}/websockify?token=${token}`, ['binary']);
          sockets.push(ws);
          ws.once('message', () => resolve('open'));
          ws.once('close', (code) => resolve(code));
          ws.once('error', () => resolve('error'));
          setTimeout(() => resolve('timeout'), 3000);
        }));
      }
      assert.ok(codes.includes(4025), `outcomes: ${codes.join(', ')}`);
      assert.ok(!codes.includes(4010), 'never "VNC server unreachable"');
      await new Promise((r) => setTimeout(r, 100));
      assert.match(stdout + stderr, /"code":"PH_ERR_PROXY_FD_EXHAUSTED"/, 'the log names the reason');
    } finally {
      for (const ws of sockets) ws.terminate();
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
      target.close();
    }
  });

  test('nova mode: Debian\'s shipped /etc/nova/nova.conf (nova-common) loads with no warning; without a transport_url the port check says what it needs', async () => {
    const shipped = '/etc/nova/nova.conf'; // installed by scripts/test.sh (nova-common), as on a Debian controller
    const dropIn = join(dir, 'shipped.conf.d');
    await mkdir(dropIn, { recursive: true });
    // What the operator adds (debconf asks for the RabbitMQ URL; the shipped file leaves it commented out).
    await writeFile(join(dropIn, '50-porthole.conf'), '[DEFAULT]\ntransport_url = rabbit://openstack:RABBIT_PASS@192.0.2.10:5672/\n[porthole]\ntoken_source = nova\n');
    const res = await run(['config', 'check', '--config-file', shipped, '--config-dir', dropIn]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '', 'not one warning for a file Debian ships');
    await writeFile(join(dropIn, '50-porthole.conf'), '[porthole]\ntoken_source = nova\n');
    const noRpc = await run(['config', 'check', '--config-file', shipped, '--config-dir', dropIn]);
    assert.equal(noRpc.code, 2);
    assert.match(noRpc.stderr, /needs \[DEFAULT\] transport_url .*nova_validate_console_port = false/);
  });

  test('nova mode: a real 3-controller nova.conf loads as it is, with exactly the warnings it deserves (the seed\'s memcached_servers typo named)', async () => {
    const fixture = join(process.cwd(), 'test', 'fixtures', 'nova');
    const res = await run(['config', 'check', '--config-file', join(fixture, 'controller.conf'), '--config-dir', join(fixture, 'controller.conf.d')]);
    assert.equal(res.code, 0, res.stderr);
    const warnings = res.stderr.split('\n').filter((l) => l.includes('warning:'));
    assert.deepEqual(warnings.map((l) => l.replace(/^porthole: .*controller\.conf:(\d+): warning: /, '$1: ')), [
      '76: [placment]: group unknown to Nova and to Porthole, did you mean [placement]? (ignored)',
      '6: [DEFAULT] use_neutron: unknown to Nova and to Porthole (ignored)', // removed from Nova before Zed
      '67: [cache] memcached_servers: unknown to Nova and to Porthole, did you mean memcache_servers? (ignored)',
    ]);
    assert.doesNotMatch(res.stderr, /PASS|SECRET/, 'values are never echoed');
    // Without nova mode the same file is refused: Porthole's own configs never ignore an option.
    const strict = await run(['config', 'check', '--config-file', join(fixture, 'controller.conf')]);
    assert.equal(strict.code, 2);
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

  test('serve --demo boots a QEMU VM, prints working VNC and serial console URLs, and stops the VM on SIGTERM', async () => {
    const proxyPort = await freePort();
    const serialPort = await freePort();
    const conf = join(dir, 'demo.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${dir}/demo-state\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = ${proxyPort}\n` +
      `novncproxy_base_url = http://127.0.0.1:${proxyPort}/vnc_lite.html\n[api]\nport = ${await freePort()}\n[cache]\nbackend = memory\n` +
      // --demo turns serial consoles on; where they listen stays the config's.
      `[serial_console]\nserialproxy_host = 127.0.0.1\nserialproxy_port = ${serialPort}\nbase_url = ws://127.0.0.1:${serialPort}/\n`);
    const server = spawn(process.execPath, [BIN, 'serve', '--demo', '--config-file', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stderr.resume();
    let qemuPid: number | undefined;
    let vncPort = 0;
    try {
      const out = await waitForOutput(server, /WebSocket, as Nova returns it: ws:\S+token=[A-Za-z0-9_-]{32}\n/);
      const url = new URL(/(http:\/\/\S+token=[A-Za-z0-9_-]{32})\n/.exec(out)?.[1] ?? '');
      assert.match(out, new RegExp(`serial proxy: +ws://127\\.0\\.0\\.1:${serialPort}`));
      assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${proxyPort}/serial\\.html\\?token=`), 'the serial page URL');
      const serialUrl = /WebSocket, as Nova returns it: (ws:\S+)\n/.exec(out)?.[1] ?? '';
      assert.ok(serialUrl.startsWith(`ws://127.0.0.1:${serialPort}/?token=`), serialUrl);
      const serial = await openSerial(serialUrl);
      try {
        serial.type('\x1b'); // SeaBIOS's boot prompt waits 60 s after the VM started
        await serial.waitFor(/Select boot device/);
      } finally {
        await serial.close();
      }
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
