/**
 * Nova mode (`[porthole] token_source = nova`): tokens minted by Debian 12's real Nova code into
 * Nova's own SQLite database, validated read-only by Porthole and relayed to a real QEMU; Tempest's
 * own noVNC tests and Chromium on the URL exactly as Nova returns it. Every console's port is
 * confirmed over Nova's RPC (validate_console_port) on a real RabbitMQ, answered by Nova's own
 * oslo.messaging server stack with a stand-in compute method (test/fixtures/nova/compute_standin.py).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { showConsoleInChromium } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestNova, type TestNova } from '../helpers/nova.js';
import { freePort } from '../helpers/net.js';
import { startQemuSerial, startQemuSpice, startQemuVnc, type QemuSerialVm } from '../helpers/qemu.js';
import { linkChannel } from '../helpers/spice-client.js';
import { openSerial } from '../helpers/serial-client.js';
import { startMariadb, startPostgres, startRabbitmq, type RabbitMq } from '../helpers/services.js';
import { spawnOwned } from '../helpers/run.js';
import { openConsole } from '../helpers/ws-client.js';

const run = promisify(execFile);

describe('nova mode: tokens from Nova\'s own database', () => {
  let vm: DemoVm;
  let serialVm: QemuSerialVm;
  let spiceVm: { port: number; stop(): Promise<void> };
  let serialPort: number;
  let nova: TestNova;
  let gw: TestGateway;
  let tunnel: Server;
  const tunnelRequests: string[] = [];
  let rabbit: RabbitMq & { destroy(): Promise<void> };
  let compute: import('node:child_process').ChildProcess;
  const computeCalls: Array<Record<string, unknown>> = [];
  let portsFile: string;
  /** What the stand-in nova-compute answers: each instance's console ports now, or "raise". */
  const setComputePorts = async (ports: Record<string, number[] | 'raise'>) => {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(portsFile, JSON.stringify(ports));
  };
  const allPorts = () => {
    const ports: Record<string, number[]> = {};
    for (const t of Object.values(nova.tokens)) (ports[t.instance_uuid] ??= []).push(t.port);
    return ports;
  };

  before(async () => {
    const rabbitStarted = startRabbitmq() as Promise<RabbitMq & { destroy(): Promise<void> }>;
    vm = await startQemuVnc();
    serialVm = await startQemuSerial();
    spiceVm = await startQemuSpice();
    serialPort = await freePort();
    // A console endpoint behind Nova's internal_access_path: answers CONNECT, then is the VM's VNC.
    tunnel = createServer((client) => {
      client.once('data', (head: Buffer) => {
        const line = head.toString('latin1').split('\r\n')[0] ?? '';
        tunnelRequests.push(line);
        if (line !== 'CONNECT /console/vm1 HTTP/1.1') {
          client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
          return;
        }
        const vnc = connect({ host: '127.0.0.1', port: vm.entry.port }, () => client.write('HTTP/1.1 200 OK\r\n\r\n'));
        vnc.pipe(client).pipe(vnc);
        vnc.on('error', () => client.destroy());
        client.on('error', () => vnc.destroy());
      });
    });
    await new Promise<void>((r) => tunnel.listen(0, '127.0.0.1', r));
    // Nova records its own proxy URL in each token; only its scheme matters to Porthole.
    nova = await startTestNova(vm.entry.port, (tunnel.address() as AddressInfo).port, 'http://127.0.0.1:6080/vnc_auto.html', undefined, serialVm.serialPort, spiceVm.port);
    rabbit = await rabbitStarted;
    portsFile = join(nova.dir, 'compute-ports.json');
    await setComputePorts(allPorts());
    compute = spawnOwned('/usr/bin/python3', [join(process.cwd(), 'test', 'fixtures', 'nova', 'compute_standin.py'), rabbit.transportUrl, 'porthole-compute', portsFile],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let computeErr = '';
    compute.stderr?.on('data', (d: Buffer) => { computeErr += d.toString(); });
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      compute.stdout?.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === 'ready') resolve();
          else if (line.startsWith('{')) computeCalls.push(JSON.parse(line) as Record<string, unknown>);
        }
      });
      compute.once('exit', (code) => reject(new Error(`compute stand-in exited with ${code}: ${computeErr}`)));
    });
    gw = await startTestGateway({ ini: `[DEFAULT]\ntransport_url = ${rabbit.transportUrl}\nrpc_response_timeout = 3\n[porthole]\ntoken_source = nova\n[database]\nconnection = ${nova.connection}\n` +
      `[serial_console]\nenabled = true\nserialproxy_host = 127.0.0.1\nserialproxy_port = ${serialPort}\nbase_url = ws://127.0.0.1:6083/\n` });
  });
  after(async () => {
    await gw?.close();
    compute?.kill('SIGKILL');
    await rabbit?.destroy();
    await vm?.stop();
    await serialVm?.stop();
    await spiceVm?.stop();
    tunnel?.close();
    nova?.destroy();
  });

  /** The URL Nova returned, pointed at this test's gateway instead of Nova's default 127.0.0.1:6080. */
  const atGateway = (novaUrl: string) => novaUrl.replace('http://127.0.0.1:6080', gw.proxyUrl);
  const ws = (token: string) => `${gw.wsUrl.replace(/\/websockify$/, '/')}?token=${token}`;

  test('a token Nova minted reaches the VM; Tempest\'s test_novnc and test_novnc_bad_token pass on Nova\'s URL', async () => {
    const out = await openConsole(ws(nova.tokens.novnc.token), { origin: gw.proxyUrl, wantBytes: 12 });
    assert.equal(out.received.toString('latin1', 0, 12), 'RFB 003.008\n');
    const harness = join(process.cwd(), 'test', 'fixtures', 'tempest', 'run_novnc.py');
    const { stdout } = await run('/usr/bin/python3', [harness, '--url', atGateway(nova.tokens.novnc.url)], { timeout: 60_000 });
    assert.deepEqual(JSON.parse(stdout.trim()), { test_novnc: 'ok', test_novnc_bad_token: 'ok' });
  });

  test('Nova\'s rules: expired, unknown (tokens destroyed with the instance), instance deleted, migrating, a serial token', async () => {
    // An instance row soft-deleted while its token row survived (a delete that failed half-way, or
    // rows not yet cleaned up): Nova's proxy would relay; Porthole checks the instance row.
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(join(nova.dir, 'nova.sqlite'));
    db.prepare('UPDATE instances SET deleted = id WHERE uuid = ?').run(nova.tokens.deleted.instance_uuid);
    db.close();
    const code = async (token: string) => (await openConsole(ws(token), { origin: gw.proxyUrl })).closeCode;
    assert.equal(await code(nova.tokens.expired.token), 4003, 'expires <= now');
    assert.equal(await code(nova.tokens.destroyed_tokens.token), 4002, 'Nova deleted the instance and with it the token rows');
    assert.equal(await code(nova.tokens.deleted.token), 4004, 'the instance row is deleted');
    assert.equal(await code(nova.tokens.moving.token), 4015, 'the instance is migrating: its console moved');
    assert.equal(await code(nova.tokens.serial.token), 4006, 'a serial token on the VNC proxy (Nova relays it raw)');
    assert.equal(await code('not-a-nova-token-at-all-0000000000'), 4002);
  });

  test('Nova\'s serial tokens on the serial listener (as nova-serialproxy): Nova\'s URL reaches the guest\'s serial port; refusals as Tempest expects', async () => {
    // Nova's URL (its [serial_console] base_url), pointed at this test's serial listener.
    const url = nova.tokens.serial.url.replace('ws://127.0.0.1:6083/', `ws://127.0.0.1:${serialPort}/`);
    assert.match(url, /\?token=/);
    await serialVm.reset();
    await new Promise((r) => setTimeout(r, 1500));
    const client = await openSerial(url, { origin: gw.proxyUrl });
    try {
      client.type('\x1b');
      await client.waitFor(/Select boot device/);
    } finally {
      await client.close();
    }
    assert.ok(computeCalls.some((c) => c.console_type === 'serial' && String(c.port) === String(serialVm.serialPort)), `nova-compute was asked about the serial port: ${JSON.stringify(computeCalls.slice(-3))}`);
    const serialWs = (token: string) => `ws://127.0.0.1:${serialPort}/?token=${token}`;
    // Tempest-style client (no Origin): an empty close frame, as nova-serialproxy's websockify.
    assert.equal((await openConsole(serialWs('not-a-nova-token-at-all-0000000000'))).closeCode, 1005);
    assert.equal((await openConsole(serialWs('not-a-nova-token-at-all-0000000000'), { origin: gw.proxyUrl })).closeCode, 4002);
    assert.equal((await openConsole(serialWs(nova.tokens.novnc.token), { origin: gw.proxyUrl })).closeCode, 4006, 'a VNC token on the serial listener');
    const plain = await fetch(`http://127.0.0.1:${serialPort}/`);
    assert.equal(plain.status, 405);
    await plain.arrayBuffer();
  });

  test('porthole nova-serialproxy: Nova\'s command line and nova.conf, the serial listener only; refused without [serial_console] enabled', async () => {
    const { spawn } = await import('node:child_process');
    const { writeFile } = await import('node:fs/promises');
    const { BIN, runCli } = await import('../helpers/cli.js');
    const port = await freePort();
    const conf = join(nova.dir, 'nova-serialproxy.conf');
    const common = `[DEFAULT]\nstate_path = ${nova.dir}\ntransport_url = ${rabbit.transportUrl}\nrpc_response_timeout = 3\n[database]\nconnection = ${nova.connection}\n`;
    await writeFile(conf, `${common}[serial_console]\nserialproxy_host = 127.0.0.1\n`);
    const disabled = await runCli(['nova-serialproxy', '--config-file', conf]);
    assert.notEqual(disabled.code, 0);
    assert.match(disabled.stderr, /\[serial_console\] enabled = true/);
    await writeFile(conf, `${common}[serial_console]\nenabled = true\nserialproxy_host = 127.0.0.1\nserialproxy_port = ${port}\nbase_url = ws://127.0.0.1:6083/\n`);
    const proxy = spawn(process.execPath, [BIN, 'nova-serialproxy', `--config-file=${conf}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    proxy.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    try {
      const deadline = Date.now() + 15_000;
      while (!stdout.includes('serial proxy') && Date.now() < deadline && proxy.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      assert.match(stdout, new RegExp(`serial proxy: +ws://127\\.0\\.0\\.1:${port}`), stdout);
      assert.doesNotMatch(stdout, /API:|console proxy:/, 'neither the API nor the VNC proxy');
      await serialVm.reset();
      await new Promise((r) => setTimeout(r, 1500));
      const client = await openSerial(`ws://127.0.0.1:${port}/?token=${nova.tokens.serial.token}`);
      try {
        client.type('\x1b');
        await client.waitFor(/Select boot device/);
      } finally {
        await client.close();
      }
    } finally {
      proxy.kill('SIGTERM');
      await new Promise((r) => proxy.once('exit', r));
    }
  });

  test('porthole nova-spicehtml5proxy: Nova\'s spice-html5 tokens on the SPICE listener only, linked by the proxy, port confirmed over RPC', async () => {
    const { spawn } = await import('node:child_process');
    const { writeFile } = await import('node:fs/promises');
    const { BIN } = await import('../helpers/cli.js');
    const port = await freePort();
    const conf = join(nova.dir, 'nova-spicehtml5proxy.conf');
    await writeFile(conf, `[DEFAULT]\nstate_path = ${nova.dir}\ntransport_url = ${rabbit.transportUrl}\nrpc_response_timeout = 3\n[database]\nconnection = ${nova.connection}\n` +
      `[spice]\nenabled = true\nhtml5proxy_host = 127.0.0.1\nhtml5proxy_port = ${port}\nhtml5proxy_base_url = http://127.0.0.1:6082/spice_auto.html\n`);
    const proxy = spawn(process.execPath, [BIN, 'nova-spicehtml5proxy', `--config-file=${conf}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    proxy.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    try {
      const deadline = Date.now() + 15_000;
      while (!stdout.includes('SPICE proxy') && Date.now() < deadline && proxy.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      assert.match(stdout, new RegExp(`SPICE proxy: +http://127\\.0\\.0\\.1:${port}`), stdout);
      assert.doesNotMatch(stdout, /API:|console proxy:|serial proxy/);
      assert.match(nova.tokens.spice.url, /spice_auto\.html\?token=/);
      const page = await fetch(`http://127.0.0.1:${port}/spice_auto.html`);
      assert.equal(page.status, 200);
      await page.arrayBuffer();
      const main = await linkChannel(`ws://127.0.0.1:${port}/websockify?token=${nova.tokens.spice.token}`, 1);
      assert.equal(main.result, 0, `link result ${main.result} ${main.closeCode ?? ''} ${main.closeReason ?? ''}`);
      main.ws.close();
      assert.ok(computeCalls.some((c) => c.console_type === 'spice-html5' && String(c.port) === String(spiceVm.port)), `nova-compute was asked: ${JSON.stringify(computeCalls.slice(-3))}`);
      const vncToken = await linkChannel(`ws://127.0.0.1:${port}/websockify?token=${nova.tokens.novnc.token}`, 1, { origin: `http://127.0.0.1:${port}` });
      assert.equal(vncToken.closeCode, 4006, 'a VNC token on the SPICE listener');
    } finally {
      proxy.kill('SIGTERM');
      await new Promise((r) => proxy.once('exit', r));
    }
  });

  test('internal_access_path: CONNECT <path> first, a 200 required (as Nova); anything else is refused', async () => {
    const out = await openConsole(ws(nova.tokens.tunnel.token), { origin: gw.proxyUrl, wantBytes: 12 });
    assert.equal(out.received.toString('latin1', 0, 12), 'RFB 003.008\n');
    assert.ok(tunnelRequests.includes('CONNECT /console/vm1 HTTP/1.1'));
    const refused = await openConsole(ws(nova.tokens.tunnel_refused.token), { origin: gw.proxyUrl });
    assert.equal(refused.closeCode, 4010);
    assert.ok(gw.logLines.some((l) => l.includes('CONNECT /forbidden') && l.includes('403 Forbidden')), 'the log says what the endpoint answered');
  });

  test('porthole nova-novncproxy: Nova\'s command line and nova.conf, console proxy only; --record maps to recording, an empty one and --daemon refused; log_dir as oslo.log', async () => {
    const { spawn } = await import('node:child_process');
    const { writeFile } = await import('node:fs/promises');
    const { freePort } = await import('../helpers/net.js');
    const { BIN, runCli } = await import('../helpers/cli.js');
    const port = await freePort();
    const conf = join(nova.dir, 'nova-proxy.conf');
    const logDir = join(nova.dir, 'log');
    const { mkdir, readFile, rename } = await import('node:fs/promises');
    await mkdir(logDir);
    await writeFile(conf, `[DEFAULT]\nmy_ip = 127.0.0.1\nstate_path = ${nova.dir}\nlog_dir = ${logDir}\ntransport_url = ${rabbit.transportUrl}\n[database]\nconnection = ${nova.connection}\n` +
      `[api]\nauth_strategy = keystone\n[vnc]\nenabled = true\nnovncproxy_host = $my_ip\nnovncproxy_port = ${port}\nnovncproxy_base_url = http://127.0.0.1:${port}/vnc_auto.html\n`);
    for (const [flag, message] of [['--record=', /--record needs a file prefix/], ['--daemon', /--daemon: porthole does not fork/]] as const) {
      const refused = await runCli(['nova-novncproxy', '--config-file', conf, flag]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, message);
    }
    const proxy = spawn(process.execPath, [BIN, 'nova-novncproxy', `--config-file=${conf}`, '--web', '/usr/share/novnc', '--record', join(nova.dir, 'rec', 'session')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proxy.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    proxy.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      const deadline = Date.now() + 15_000;
      while (!stdout.includes('console URLs') && Date.now() < deadline && proxy.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      assert.match(stdout, /tokens: +Nova's database .*nova\.sqlite\), read only/, stdout + stderr);
      assert.doesNotMatch(stdout, /API:/, 'no Porthole API in nova-novncproxy mode');
      assert.match(stderr, /--web \/usr\/share\/novnc is ignored/);
      const out = await openConsole(`ws://127.0.0.1:${port}/?token=${nova.tokens.novnc.token}`, { origin: `http://127.0.0.1:${port}`, wantBytes: 12 });
      assert.equal(out.received.toString('latin1', 0, 12), 'RFB 003.008\n');
      // --record PREFIX: every console recorded into PREFIX's directory, websockify's format.
      assert.match(stderr, /--record .*recording every console into .*rec/);
      const { readdir } = await import('node:fs/promises');
      assert.ok((await readdir(join(nova.dir, 'rec'))).some((n) => n.endsWith('.vnc.js')), 'the console was recorded');
      // [DEFAULT] log_dir alone: <log_dir>/nova-novncproxy.log, as oslo.log; reopened on SIGHUP (logrotate).
      const logFile = join(logDir, 'nova-novncproxy.log');
      assert.match(stdout, new RegExp(`log: +${logFile}`));
      const bad = await openConsole(`ws://127.0.0.1:${port}/?token=00000000-0000-4000-8000-000000000000`, { origin: `http://127.0.0.1:${port}` });
      assert.equal(bad.closeCode, 4002);
      const waitFor = async (file: string, re: RegExp) => {
        const until = Date.now() + 5000;
        let text = '';
        while (Date.now() < until && !re.test(text)) {
          text = await readFile(file, 'utf8').catch(() => '');
          if (!re.test(text)) await new Promise((r) => setTimeout(r, 50));
        }
        return text;
      };
      assert.match(await waitFor(logFile, /PH_ERR_TOKEN_INVALID/), /PH_ERR_TOKEN_INVALID/);
      assert.doesNotMatch(stderr, /PH_ERR_TOKEN_INVALID/, 'the log went to the file, not standard error');
      await rename(logFile, `${logFile}.1`);
      proxy.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 200));
      await openConsole(`ws://127.0.0.1:${port}/?token=00000000-0000-4000-8000-000000000001`, { origin: `http://127.0.0.1:${port}` });
      assert.match(await waitFor(logFile, /PH_ERR_TOKEN_INVALID/), /PH_ERR_TOKEN_INVALID/, 'a new file after SIGHUP');
    } finally {
      proxy.kill('SIGTERM');
      await new Promise((r) => proxy.once('exit', r));
    }
  });

  test('the Origin scheme must match the scheme Nova recorded; the API neither mints nor revokes', async () => {
    const https = await openConsole(ws(nova.tokens.novnc.token), { origin: gw.proxyUrl.replace('http:', 'https:') });
    assert.equal(https.httpStatus, 403);
    const mint = await gw.mint('nova-vm1');
    assert.equal(mint.status, 409);
    assert.equal(mint.body.code, 'PH_ERR_TOKEN_SOURCE_READ_ONLY');
    assert.equal((await gw.api('DELETE', '/v1/instances/nova-vm1/consoles')).status, 409);
    const health = await gw.api('GET', '/healthz');
    assert.equal((health.body.store as { backend: string }).backend, 'nova');
  });

  test('Chromium opens the URL exactly as Nova returns it (vnc_auto.html?path=%3Ftoken%3D…), vnc_lite.html?path=… and legacy vnc_auto.html?token=…, and shows the VM', async () => {
    const novaUrl = atGateway(nova.tokens.novnc.url);
    assert.match(novaUrl, /\/vnc_auto\.html\?path=%3Ftoken%3D[0-9a-f-]{36}$/, 'the form Nova Zed returns');
    const token = nova.tokens.novnc.token;
    // Nova's URL, the same form with the vnc_lite.html base Nova's docs now recommend, and the legacy ?token=.
    for (const [url, shot] of [[novaUrl, 'nova-console.png'], [`${gw.proxyUrl}/vnc_lite.html?path=%3Ftoken%3D${token}`, 'nova-console-lite.png'],
      [`${gw.proxyUrl}/vnc_auto.html?token=${token}`, 'nova-console-legacy.png']] as const) {
      const seen = await showConsoleInChromium(url, shot);
      assert.ok(seen.lit >= 500, `${url}: canvas has ${seen.lit} lit pixels`);
      assert.match(seen.status, /^Connected/, url);
    }
  });

  test('validate_console_port over RabbitMQ, as nova-novncproxy: nova-compute\'s answer decides; it is asked only after every cheap check', async () => {
    const token = nova.tokens.novnc;
    const open = (t: string, origin = gw.proxyUrl) => openConsole(ws(t), { origin, wantBytes: 12 });
    computeCalls.length = 0;
    assert.equal((await open(token.token)).received.toString('latin1', 0, 12), 'RFB 003.008\n');
    assert.deepEqual(computeCalls, [{ uuid: token.instance_uuid, id: computeCalls[0]?.['id'], is_instance: true, port: String(token.port), console_type: 'novnc', is_admin: true }],
      'Nova\'s serializer got an Instance, the port as a string, an admin context');
    assert.equal(typeof computeCalls[0]?.['id'], 'number');

    // No RPC for what is refused anyway: bad Origin, unknown token, a serial token.
    computeCalls.length = 0;
    assert.equal((await open(token.token, 'http://evil.example')).httpStatus, 403);
    assert.equal((await open('00000000-0000-4000-8000-000000000000')).closeCode, 4002);
    assert.equal((await open(nova.tokens.serial.token)).closeCode, 4006);
    assert.equal(computeCalls.length, 0, 'nova-compute was not asked');

    // The instance's console moved to another port (CVE-2013-0335 class): refused, and why.
    await setComputePorts({ ...allPorts(), [token.instance_uuid]: [token.port + 1] });
    const moved = await open(token.token);
    assert.equal(moved.closeCode, 4015, `port moved: ${moved.closeCode ?? moved.httpStatus}`);
    assert.ok(gw.logLines.some((l) => l.includes('PH_ERR_TARGET_STALE') && l.includes('nova-compute on porthole-compute says port')), 'the log names nova-compute\'s answer');

    // nova-compute raises (InstanceNotFound): it could not confirm the port.
    await setComputePorts({ ...allPorts(), [token.instance_uuid]: 'raise' });
    assert.equal((await open(token.token)).closeCode, 4028);
    assert.ok(gw.logLines.some((l) => l.includes('PH_ERR_NOVA_RPC_FAILED') && l.includes('InstanceNotFound')));
    await setComputePorts(allPorts());
    assert.equal((await open(token.token)).received.toString('latin1', 0, 12), 'RFB 003.008\n', 'back to normal');

    // nova-compute down: no answer within rpc_response_timeout (3 s here) → 4027, not a hang.
    compute.kill('SIGKILL');
    await new Promise((r) => compute.once('exit', r));
    const down = await open(token.token);
    assert.equal(down.closeCode, 4027, `compute down: ${down.closeCode ?? down.httpStatus}`);
    assert.ok(down.elapsedMs < 6000, `refused after ${down.elapsedMs} ms`);

    // RabbitMQ gone: 4027 at once, naming RabbitMQ.
    await rabbit.stop();
    const noBroker = await open(token.token);
    assert.equal(noBroker.closeCode, 4027);
    assert.ok(noBroker.elapsedMs < 3000, `refused after ${noBroker.elapsedMs} ms`);
    assert.ok(gw.logLines.some((l) => l.includes('PH_ERR_NOVA_RPC_UNAVAILABLE') && l.includes('RabbitMQ')));
  });
});

describe('nova mode on MariaDB and PostgreSQL: a SELECT-only user; the database goes away and comes back', () => {
  let vm: DemoVm;
  before(async () => { vm = await startQemuVnc(); });
  after(async () => { await vm?.stop(); });

  for (const kind of ['mysql', 'postgresql'] as const) {
    test(`${kind}: Nova mints into its database; an outage gives 4013 at once, and consoles work again with no restart`, async () => {
      const db = kind === 'mysql' ? await startMariadb() : await startPostgres();
      let nova: TestNova | undefined;
      let gw: TestGateway | undefined;
      try {
        const port = new URL(db.url).port;
        let readOnly: string;
        if (kind === 'mysql') {
          const mysql = await import('mysql2/promise');
          const conn = await mysql.createConnection({ uri: `mysql://root@127.0.0.1:${port}/` });
          await conn.query('CREATE DATABASE nova');
          await conn.end();
          nova = await startTestNova(vm.entry.port, 1, 'http://127.0.0.1:6080/vnc_auto.html', `mysql+pymysql://root@127.0.0.1:${port}/nova?charset=utf8`);
          readOnly = nova.connection; // the test MariaDB runs with --skip-grant-tables: no grants to narrow
        } else {
          const { default: pg } = await import('pg');
          const admin = new pg.Client({ connectionString: db.url });
          await admin.connect();
          await admin.query('CREATE DATABASE nova');
          await admin.end();
          nova = await startTestNova(vm.entry.port, 1, 'http://127.0.0.1:6080/vnc_auto.html', `postgresql+psycopg2://porthole@127.0.0.1:${port}/nova`);
          // The console proxy's own role: SELECT on the two tables it reads, nothing else.
          const c = new pg.Client({ connectionString: `postgresql://porthole@127.0.0.1:${port}/nova` });
          await c.connect();
          await c.query('CREATE ROLE nova_console LOGIN');
          await c.query('GRANT SELECT ON console_auth_tokens, instances TO nova_console');
          await c.end();
          readOnly = `postgresql://nova_console@127.0.0.1:${port}/nova`;
        }
        // This test is about the database; the RPC port check has its own test above.
        gw = await startTestGateway({ ini: `[porthole]\ntoken_source = nova\nnova_validate_console_port = false\n[database]\nconnection = ${readOnly}\n` });
        const ws = `${gw.wsUrl}?token=${nova.tokens.novnc.token}`;
        const ok = await openConsole(ws, { origin: gw.proxyUrl, wantBytes: 12 });
        assert.equal(ok.received.toString('latin1', 0, 12), 'RFB 003.008\n');
        assert.equal((await openConsole(`${gw.wsUrl}?token=${nova.tokens.serial.token}`, { origin: gw.proxyUrl })).closeCode, 4006);

        await db.stop();
        const during = await openConsole(ws, { origin: gw.proxyUrl });
        assert.equal(during.closeCode, 4013, `during the outage: ${during.closeCode ?? during.httpStatus}`);
        assert.ok(during.elapsedMs <= 2000, `refused after ${during.elapsedMs} ms`);
        assert.equal((await gw.api('GET', '/healthz')).status, 503);

        await db.start();
        let back: string | undefined;
        const deadline = Date.now() + 10_000;
        while (back !== 'RFB 003.008\n' && Date.now() < deadline) {
          back = (await openConsole(ws, { origin: gw.proxyUrl, wantBytes: 12 })).received.toString('latin1', 0, 12);
          if (back !== 'RFB 003.008\n') await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(back, 'RFB 003.008\n', 'works again without a restart');
      } finally {
        await gw?.close();
        nova?.destroy();
        await db.destroy();
      }
    });
  }
});
