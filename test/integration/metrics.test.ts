/**
 * Prometheus metrics: the exposition on the API listener and on `[porthole] metrics_listen`,
 * checked by Debian's promtool, scraped by a real Prometheus (started here on loopback) whose
 * PromQL answer matches the session list; results and refusals by code; no token, no instance name.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { DemoVm } from '../../src/demo/qemu-demo.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startQemuVnc } from '../helpers/qemu.js';
import { runTempDir, spawnOwned } from '../helpers/run.js';
import { openConsole } from '../helpers/ws-client.js';

describe('Prometheus metrics', () => {
  let vm: DemoVm;
  let gw: TestGateway;
  let metricsPort: number;
  let dir: string;

  before(async () => {
    vm = await startQemuVnc();
    metricsPort = await freePort();
    const dead = await freePort(); // nothing listens: a console there fails its setup
    gw = await startTestGateway({
      builtin: [{ ...vm.entry, name: 'vm' }, { name: 'gone', host: '127.0.0.1', port: dead, protocol: 'vnc' }],
      ini: `[porthole]\nmetrics_listen = 127.0.0.1:${metricsPort}\n`,
    });
    dir = runTempDir('metrics');
  });

  after(async () => {
    await gw?.close();
    await vm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** An open VNC console (the RFB greeting arrived); close it yourself. */
  const openVnc = async (): Promise<WebSocket> => {
    const token = (await gw.mint('vm')).body.token as string;
    const ws = new WebSocket(`${gw.wsUrl}?token=${token}`, ['binary'], { origin: gw.proxyUrl });
    await new Promise((resolve, reject) => { ws.once('message', resolve); ws.once('error', reject); });
    return ws;
  };

  const value = (text: string, series: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  test('/metrics (no key) counts open consoles, setups by result, refusals by reason, token look-ups and relayed bytes; promtool accepts it; no token or instance name', async () => {
    const ws = await openVnc();
    const tokens: string[] = [];
    try {
      const foreign = await openConsole(`${gw.wsUrl}?token=x`, { origin: 'https://evil.example' });
      assert.equal(foreign.httpStatus, 403);
      assert.equal((await openConsole(`${gw.wsUrl}?token=not-a-token`, { origin: gw.proxyUrl })).closeCode, 4002);
      const gone = (await gw.mint('gone')).body.token as string;
      tokens.push(gone, (await gw.mint('vm')).body.token as string);
      assert.equal((await openConsole(`${gw.wsUrl}?token=${gone}`, { origin: gw.proxyUrl })).closeCode, 4010);
      const res = await fetch(`${gw.apiUrl}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.equal(value(text, 'porthole_sessions_open{protocol="vnc"}'), 1);
      assert.equal(value(text, 'porthole_sessions_open{protocol="serial"}'), 0);
      assert.equal(value(text, 'porthole_build_info{version="0.1.0"}'), 1);
      assert.ok((value(text, 'porthole_session_setups_total{protocol="vnc",result="ok"}') ?? 0) >= 1, text);
      assert.equal(value(text, 'porthole_session_setups_total{protocol="vnc",result="PH_ERR_UPSTREAM_UNREACHABLE"}'), 1);
      assert.equal(value(text, 'porthole_refusals_total{stage="origin",reason="PH_ERR_ORIGIN_FORBIDDEN"}'), 1);
      assert.equal(value(text, 'porthole_refusals_total{stage="token",reason="PH_ERR_TOKEN_INVALID"}'), 1);
      assert.ok((value(text, 'porthole_token_validations_total{source="sqlite",result="valid"}') ?? 0) >= 2, 'look-ups by source and result');
      assert.ok((value(text, 'porthole_token_validations_total{source="sqlite",result="unknown"}') ?? 0) >= 1);
      assert.ok((value(text, 'porthole_relay_bytes_total{protocol="vnc",direction="to_client"}') ?? 0) >= 12, 'the open console\'s bytes, read at scrape time');
      assert.match(text, /^porthole_session_setup_seconds_count\{protocol="vnc"\} [1-9]/m);
      assert.match(text, /^porthole_token_store_seconds_bucket\{le="0\.001",source="sqlite"\} /m);
      assert.match(text, /^nodejs_eventloop_lag_seconds /m);
      assert.match(text, /^process_open_fds /m);
      for (const t of tokens) assert.ok(!text.includes(t), 'no token in the metrics');
      assert.ok(!/instance="/.test(text), 'no instance label unless metrics_instance_labels');
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(check.status, 0, `promtool: ${check.stdout} ${check.stderr}`);
      const own = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(own.status, 200);
      assert.equal(value(await own.text(), 'porthole_sessions_open{protocol="vnc"}'), 1, 'the same on metrics_listen');
      assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/`)).status, 404);
    } finally {
      ws.close();
    }
  });

  test('a real Prometheus scrapes the gateway: PromQL\'s open-session count is the session list\'s', async () => {
    const promPort = await freePort();
    const config = join(dir, 'prometheus.yml');
    await writeFile(config, `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: porthole\n    static_configs:\n      - targets: ['127.0.0.1:${metricsPort}']\n`);
    const prometheus = spawnOwned('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: 'ignore' });
    const consoles = [await openVnc(), await openVnc()];
    try {
      const listed = ((await gw.api('GET', '/v1/sessions')).body.sessions as unknown[]).length;
      assert.equal(listed, 2);
      let answer: string | undefined;
      for (let i = 0; i < 100 && answer !== String(listed); i++) {
        await new Promise((r) => setTimeout(r, 200));
        const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent('sum(porthole_sessions_open{job="porthole"})')}`).catch(() => undefined);
        if (res?.ok !== true) continue;
        const body = await res.json() as { data?: { result?: Array<{ value: [number, string] }> } };
        answer = body.data?.result?.[0]?.value[1];
      }
      assert.equal(answer, String(listed), 'PromQL sum(porthole_sessions_open) = GET /v1/sessions');
    } finally {
      for (const c of consoles) c.close();
      const exited = new Promise((r) => prometheus.once('exit', r));
      prometheus.kill('SIGTERM');
      await exited;
    }
  });
});
