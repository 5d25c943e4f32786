/**
 * Three Porthole nodes behind real nginx and HAProxy, one shared Redis, a real QEMU VNC server;
 * then the split-store scenario that `porthole doctor --peers` must name.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { startBalancer } from '../helpers/balancers.js';
import { launchChromium } from '../helpers/browser.js';
import { runCli } from '../helpers/cli.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startQemuVnc } from '../helpers/qemu.js';
import { startRedis, type RunningService } from '../helpers/services.js';
import { openConsole } from '../helpers/ws-client.js';

const portOf = (g: TestGateway) => Number(new URL(g.proxyUrl).port);

async function threeNodes(ini: string, vm: DemoVm, baseUrl?: string): Promise<TestGateway[]> {
  const nodes: TestGateway[] = [];
  for (let i = 0; i < 3; i++) {
    nodes.push(await startTestGateway({ ini: `${ini}${baseUrl ? `[vnc]\nnovncproxy_base_url = ${baseUrl}\n` : ''}`, builtin: [vm.entry] }));
  }
  return nodes;
}

describe('several nodes behind a load balancer', () => {
  let vm: DemoVm;
  let redis: RunningService;

  before(async () => {
    vm = await startQemuVnc();
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
    await vm?.stop();
  });

  for (const balancer of ['nginx', 'haproxy'] as const) {
    test(`${balancer}: 100 consoles through 3 nodes on one Redis; a node dies mid-run; revoke on node 2 applies everywhere`, async () => {
      const nodes = await threeNodes(`[cache]\nbackend = redis\nredis_server = ${redis.address}\n`, vm);
      const lb = await startBalancer(balancer, nodes.map(portOf));
      try {
        const [n1, n2, n3] = nodes as [TestGateway, TestGateway, TestGateway];
        const token = (await n1.mint('demo')).body.token as string;
        const ws = `${lb.url.replace('http:', 'ws:')}/websockify?token=${token}`;
        let ok = 0;
        const failures: string[] = [];
        for (let i = 0; i < 100; i++) {
          if (i === 50) await n3.close(); // a node dies; the balancer must route around it
          const out = await openConsole(ws, { origin: lb.url, wantBytes: 12, timeoutMs: 5000 });
          if (out.received.subarray(0, 12).toString() === 'RFB 003.008\n') ok++;
          else failures.push(`#${i}: ${out.closeCode ?? out.httpStatus} ${out.closeReason ?? ''}`);
        }
        assert.equal(ok, 100, failures.slice(0, 5).join('; '));
        for (const n of [n1, n2]) {
          assert.ok(n.logLines.some((l) => l.includes('console session relaying')), 'round-robin reached every live node');
        }
        const revoke = await n2.api('DELETE', '/v1/instances/demo/consoles');
        assert.equal(revoke.status, 200);
        for (let i = 0; i < 4; i++) {
          const out = await openConsole(ws, { origin: lb.url });
          assert.equal(out.closeCode, 4004, `attempt ${i}: ${out.closeCode} ${out.closeReason}`);
        }
        const healthy = await runCli(['doctor', '--config-file', n1.configFile, '--peers', `${n1.proxyUrl},${n2.proxyUrl}`]);
        assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
        assert.equal((healthy.stdout.match(/PH_DOCTOR_PEER_OK/g) ?? []).length, 2);
      } finally {
        await lb.stop();
        for (const n of nodes) await n.close();
      }
    });
  }

  test('Chromium through nginx and HAProxy: the console works, and the documented access log formats never record the token', async () => {
    const nodes = await threeNodes(`[cache]\nbackend = redis\nredis_server = ${redis.address}\n`, vm);
    const browser = await launchChromium();
    try {
      for (const balancer of ['nginx', 'haproxy'] as const) {
        const lb = await startBalancer(balancer, nodes.map(portOf));
        try {
          const token = ((await nodes[0]?.mint('demo'))?.body.token ?? '') as string;
          const context = await browser.newContext();
          const tab = await context.newPage();
          await tab.goto(`${lb.url}/vnc_lite.html?token=${token}`);
          await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
          await context.close(); // ends the WebSocket: HAProxy logs a tunnel when it ends
          let log = '';
          const deadline = Date.now() + 5000;
          while (!/\/websockify\/c\//.test(log = lb.accessLog()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
          for (const line of [/GET \/vnc_lite\.html/, /POST \/console-session/, /GET \/websockify\/c\/[\w-]+/]) assert.match(log, line, `${balancer} log:\n${log}`);
          assert.ok(!log.includes(token), `${balancer} access log contains the token:\n${log}`);
          if (balancer === 'nginx') {
            // Served under a prefix: the cookie must be stored for the path the browser sees.
            const prefixed = await browser.newContext();
            const page = await prefixed.newPage();
            const sockets: string[] = [];
            page.on('websocket', (ws) => sockets.push(ws.url()));
            await page.goto(`${lb.url}/console/vnc_lite.html?token=${((await nodes[1]?.mint('demo'))?.body.token ?? '') as string}`);
            await page.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
            const cookie = (await prefixed.cookies()).find((c) => c.name === 'porthole_console');
            assert.match(cookie?.path ?? '', /^\/console\/websockify\/c\//);
            assert.deepEqual(sockets.map((u) => new URL(u).pathname), [cookie?.path], 'one WebSocket, at the cookie\'s path, without a token fallback');
            await prefixed.close();
          }
        } finally {
          await lb.stop();
        }
      }
    } finally {
      await browser.close();
      for (const n of nodes) await n.close();
    }
  });

  test('split stores: doctor --peers names the nodes that do not share the store; the browser is told why', async () => {
    const nodes = await threeNodes('', vm);
    const lb = await startBalancer('nginx', nodes.map(portOf));
    try {
      const [n1, n2, n3] = nodes as [TestGateway, TestGateway, TestGateway];
      const res = await runCli(['doctor', '--json', '--config-file', n1.configFile, '--peers', nodes.map((n) => n.proxyUrl).join(',')]);
      assert.equal(res.code, 1);
      const report = JSON.parse(res.stdout) as { findings: Array<{ code: string; message: string }> };
      const peers = report.findings.filter((f) => f.code.startsWith('PH_DOCTOR_PEER'));
      assert.deepEqual(peers.map((f) => f.code), ['PH_DOCTOR_PEER_OK', 'PH_DOCTOR_PEER_STORE_SPLIT', 'PH_DOCTOR_PEER_STORE_SPLIT']);
      assert.ok(peers[1]?.message.startsWith(n2.proxyUrl) && peers[2]?.message.startsWith(n3.proxyUrl), 'the split nodes are named');

      const token = (await n1.mint('demo')).body.token as string;
      const codes = new Set<number | undefined>();
      for (let i = 0; i < 6; i++) {
        const out = await openConsole(`${lb.url.replace('http:', 'ws:')}/websockify?token=${token}`, { origin: lb.url, wantBytes: 12 });
        codes.add(out.received.length >= 12 ? 0 : out.closeCode);
      }
      assert.ok(codes.has(0), 'the minting node serves the console');
      assert.ok(codes.has(4002), 'the other nodes close with 4002 and a reason, not a bare 1006');
    } finally {
      await lb.stop();
      for (const n of nodes) await n.close();
    }
  });
});
