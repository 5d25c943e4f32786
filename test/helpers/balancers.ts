/**
 * Real nginx and HAProxy in front of several Porthole proxy nodes, round-robin, with the WebSocket
 * settings and the token-free access log formats docs/multi-node.md recommends. Foreground
 * processes, killed by stop().
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitForPort } from './net.js';
import { runTempDir, spawnOwned } from './run.js';

export interface Balancer {
  readonly name: 'nginx' | 'haproxy';
  readonly url: string;
  /** The access log so far (nginx: its file; HAProxy: what it logged to stdout). */
  accessLog(): string;
  stop(): Promise<void>;
}

const NGINX_PROXY_SETTINGS = `proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_next_upstream error timeout;`;

export function nginxConfig(listenPort: number, backends: readonly number[], dir: string): string {
  return `daemon off;
pid ${dir}/nginx.pid;
worker_processes 1;
error_log ${dir}/error.log;
events { worker_connections 512; }
http {
  # The request path without its query string: console URLs carry the token there.
  log_format porthole_notoken '$remote_addr - [$time_local] "$request_method $uri $server_protocol" $status $body_bytes_sent $request_time';
  access_log ${dir}/access.log porthole_notoken;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream porthole { ${backends.map((p) => `server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join(' ')} }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://porthole;
      ${NGINX_PROXY_SETTINGS}
    }
    # The same nodes under a prefix, as a dashboard would serve them (/console/ → /).
    location /console/ {
      proxy_pass http://porthole/;
      ${NGINX_PROXY_SETTINGS}
    }
  }
}
`;
}

export function haproxyConfig(listenPort: number, backends: readonly number[]): string {
  return `global
  maxconn 512
  log stdout format raw local0
defaults
  mode http
  log global
  # %HP is the path without the query string (%r and %HU would log the token).
  log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %HM %HP %HV"
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  retries 3
  option redispatch
frontend porthole
  bind 127.0.0.1:${listenPort}
  default_backend nodes
backend nodes
  balance roundrobin
${backends.map((p, i) => `  server node${i + 1} 127.0.0.1:${p} check inter 500ms fall 1 rise 2`).join('\n')}
`;
}

export async function startBalancer(name: 'nginx' | 'haproxy', backends: readonly number[]): Promise<Balancer> {
  const dir = runTempDir(name);
  const port = await freePort();
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, name === 'nginx' ? nginxConfig(port, backends, dir) : haproxyConfig(port, backends));
  const child = name === 'nginx'
    ? spawnOwned('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawnOwned('haproxy', ['-db', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr?.resume();
  let stdoutLog = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdoutLog += d; });
  await waitForPort(port, child, name);
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    accessLog: () => (name === 'nginx' ? (existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8') : '') : stdoutLog),
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
