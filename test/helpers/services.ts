/** Real Redis and memcached servers on free loopback ports, started and stopped by the tests. */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitForPort } from './net.js';
import { runTempDir, spawnOwned } from './run.js';

export interface RunningService {
  readonly port: number;
  readonly address: string;
  stop(): Promise<void>;
  /** Start again on the same port (after stop). */
  start(): Promise<void>;
}

async function service(what: string, command: string, args: (port: number) => string[], spawnAs?: { uid: number; gid: number }): Promise<RunningService> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const c = spawnOwned(command, args(port), { stdio: ['ignore', 'ignore', 'pipe'], ...(spawnAs ?? {}) });
    c.stderr?.resume();
    child = c;
    await waitForPort(port, c, what);
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL'); // an outage, not a graceful stop
    await exited;
  };
  await start();
  return { port, address: `127.0.0.1:${port}`, start, stop };
}

export function startRedis(): Promise<RunningService> {
  return service('redis-server', 'redis-server', (port) =>
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no']);
}

export function startMemcached(): Promise<RunningService> {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0 ? ['-u', 'root'] : [];
  return service('memcached', 'memcached', (port) => [...asRoot, '-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '64']);
}

const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface DatabaseService extends RunningService {
  /** Connection URL for [cache] connection. */
  readonly url: string;
  /** stop() and remove the data directory. */
  destroy(): Promise<void>;
}

/**
 * A throwaway PostgreSQL cluster in /tmp, run as the `postgres` user (it refuses root), trust auth
 * on 127.0.0.1 only.
 */
export async function startPostgres(): Promise<DatabaseService> {
  const dir = runTempDir('pg');
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  const asUser = typeof process.getuid === 'function' && process.getuid() === 0 ? { uid: id('-u'), gid: id('-g') } : undefined;
  if (asUser) chownSync(dir, asUser.uid, asUser.gid);
  execFileSync(`${PG_BIN}/initdb`, ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'porthole', '--no-sync'], { stdio: 'ignore', ...(asUser ?? {}) });
  const svc = await service('postgres', `${PG_BIN}/postgres`, (port) =>
    ['-D', join(dir, 'data'), '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'], asUser);
  return { ...svc, url: `postgresql://porthole@127.0.0.1:${svc.port}/postgres`, destroy: async () => { await svc.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

/** A throwaway MariaDB in /tmp; --skip-grant-tables, bound to 127.0.0.1 only. */
export async function startMariadb(): Promise<DatabaseService> {
  const dir = runTempDir('mariadb');
  execFileSync('mariadb-install-db', ['--no-defaults', `--datadir=${join(dir, 'data')}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db'], { stdio: 'ignore' });
  const svc = await service('mariadbd', '/usr/sbin/mariadbd', (port) => ['--no-defaults', `--datadir=${join(dir, 'data')}`, `--port=${port}`,
    '--bind-address=127.0.0.1', `--socket=${join(dir, 'sock')}`, `--pid-file=${join(dir, 'pid')}`, '--user=root', '--skip-grant-tables', '--skip-log-bin', '--innodb-flush-log-at-trx-commit=0']);
  const admin = `mysql://root@127.0.0.1:${svc.port}/`;
  // --skip-grant-tables: any user; create the database the store will use.
  const mysql = await import('mysql2/promise');
  const conn = await mysql.createConnection({ uri: admin });
  await conn.query('CREATE DATABASE IF NOT EXISTS porthole');
  await conn.end();
  return { ...svc, url: `mysql://root@127.0.0.1:${svc.port}/porthole`, destroy: async () => { await svc.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

/** A Redis Sentinel (redis-server --sentinel) monitoring `primary` as "mymaster". */
export async function startSentinel(primary: RunningService): Promise<RunningService & { destroy(): Promise<void> }> {
  const dir = runTempDir('sentinel');
  const { writeFileSync } = await import('node:fs');
  const svc = await service('redis-sentinel', 'redis-server', (port) => {
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(conf, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor mymaster 127.0.0.1 ${primary.port} 1\n`);
    return [conf, '--sentinel'];
  });
  return { ...svc, destroy: async () => { await svc.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

export interface RabbitMq extends RunningService {
  /** Nova's `[DEFAULT] transport_url` for it. */
  readonly transportUrl: string;
}

/**
 * A throwaway RabbitMQ node (Debian's rabbitmq-server) on loopback, with its own epmd on a free
 * port, so nothing of it outlives the test process (both are spawnOwned; the broker is started
 * with -start_epmd false). guest/guest works because the client is on loopback.
 */
export async function startRabbitmq(): Promise<RabbitMq> {
  const dir = runTempDir('rabbitmq');
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()];
  const env = {
    ...process.env, HOME: dir, ERL_EPMD_ADDRESS: '127.0.0.1', ERL_EPMD_PORT: String(epmdPort),
    RABBITMQ_NODENAME: `porthole-t-${process.pid}@localhost`, RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1', RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort), RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'), RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'), RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'), RABBITMQ_PID_FILE: join(dir, 'pid'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-start_epmd false',
    RUNNING_UNDER_SYSTEMD: '1', // the script then execs the VM: the pid we kill is the broker's
  };
  const epmd = spawnOwned('epmd', ['-address', '127.0.0.1', '-port', String(epmdPort)], { stdio: 'ignore', env });
  await waitForPort(epmdPort, epmd, 'epmd');
  let broker: ChildProcess | undefined;
  const start = async () => {
    const c = spawnOwned('/usr/lib/rabbitmq/bin/rabbitmq-server', [], { stdio: ['ignore', 'pipe', 'pipe'], env });
    c.stdout?.resume();
    c.stderr?.resume();
    broker = c;
    await waitForPort(port, c, 'rabbitmq-server', 60_000);
  };
  const stop = async () => {
    const c = broker;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port, address: `127.0.0.1:${port}`, transportUrl: `rabbit://guest:guest@127.0.0.1:${port}/`, start,
    stop: async () => {
      await stop();
    },
    // stop() is an outage; destroy() ends the node and its epmd and removes the data.
    destroy: async () => {
      await stop();
      epmd.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  } as RabbitMq & { destroy(): Promise<void> };
}

export interface Rsyslog {
  /** Its Unix socket: what `[audit] syslog_address` points at (instead of /dev/log). */
  readonly socket: string;
  /** Every message it received, one per line (`<time> <host> <tag>: <message>`). */
  readonly file: string;
  stop(): Promise<void>;
}

/** A real rsyslogd (Debian's), in the foreground, on a socket and file of its own. */
export async function startRsyslog(): Promise<Rsyslog> {
  const dir = runTempDir('rsyslog');
  const socket = join(dir, 'log');
  const file = join(dir, 'messages');
  const conf = join(dir, 'rsyslog.conf');
  writeFileSync(conf, `global(workDirectory="${dir}")\nmodule(load="imuxsock" SysSock.Use="off")\ninput(type="imuxsock" Socket="${socket}")\n` +
    `*.* action(type="omfile" file="${file}" template="RSYSLOG_FileFormat")\n`);
  const child = spawnOwned('rsyslogd', ['-n', '-f', conf, '-i', join(dir, 'pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const deadline = Date.now() + 10_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`rsyslogd did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socket, file,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
