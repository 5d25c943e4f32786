/**
 * Real Nova (Debian 12 python3-nova, Zed) for tests: `nova-manage db sync` into an SQLite file of
 * the run, then tokens minted with Nova's own objects (test/fixtures/nova/mint.py). No broker.
 */
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runTempDir } from './run.js';

const run = promisify(execFile);
/** Debian's python3, where python3-nova lives (a pyenv python3 on PATH has no Nova). */
const PYTHON = '/usr/bin/python3';

export interface NovaToken { readonly token: string; readonly url: string; readonly instance_uuid: string; readonly port: number }

export interface TestNova {
  readonly dir: string;
  /** Nova's `[database] connection`. */
  readonly connection: string;
  readonly tokens: Record<'novnc' | 'expired' | 'serial' | 'spice' | 'deleted' | 'moving' | 'destroyed_tokens' | 'tunnel' | 'tunnel_refused', NovaToken>;
  destroy(): void;
}

/**
 * `tunnelPort`: where tokens with an internal_access_path (Nova's CONNECT tunnel) point.
 * `database`: Nova's [database] connection (SQLAlchemy URL of an existing, empty database);
 * default an SQLite file of the run. `serialPort`, `spicePort`: where the `serial` and `spice` tokens point.
 */
export async function startTestNova(vncPort: number, tunnelPort: number, novncBaseUrl: string, database?: string, serialPort = 10000, spicePort = 5930): Promise<TestNova> {
  const dir = runTempDir('nova');
  const connection = database ?? `sqlite:///${dir}/nova.sqlite`;
  const conf = join(dir, 'nova.conf');
  writeFileSync(conf, `[DEFAULT]\nhost = porthole-compute\nstate_path = ${dir}\ntransport_url = fake://\nuse_stderr = true\n` +
    `[database]\nconnection = ${connection}\n[api_database]\nconnection = sqlite:///${dir}/nova_api.sqlite\n` +
    `[vnc]\nenabled = true\nnovncproxy_base_url = ${novncBaseUrl}\n[serial_console]\nenabled = true\nbase_url = ws://127.0.0.1:6083/\n` +
    `[spice]\nenabled = true\nhtml5proxy_base_url = http://127.0.0.1:6082/spice_auto.html\n` +
    `[oslo_concurrency]\nlock_path = ${dir}/lock\n`);
  // nova-manage is in nova-common; its code is in python3-nova: run it directly.
  await run(PYTHON, ['-c', `import sys; from nova.cmd.manage import main; sys.argv = ['nova-manage', '--config-file', ${JSON.stringify(conf)}, 'db', 'sync', '--local_cell']; sys.exit(main())`],
    { timeout: 120_000 });
  const { stdout } = await run(PYTHON, [join(process.cwd(), 'test', 'fixtures', 'nova', 'mint.py'), conf, String(vncPort), String(tunnelPort), String(serialPort), String(spicePort)], { timeout: 60_000 });
  return {
    dir,
    connection,
    tokens: JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as TestNova['tokens'],
    destroy: () => rmSync(dir, { recursive: true, force: true }),
  };
}
