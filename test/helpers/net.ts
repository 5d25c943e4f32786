import { createServer, type AddressInfo } from 'node:net';

/**
 * Below Linux's ephemeral range (32768–60999 by default): a port handed out here and bound a moment
 * later cannot be taken in between by an outgoing connection's local port, which is what port 0
 * (an ephemeral port) risked when many tests run clients at the same time.
 */
const TEST_PORT_RANGE = { from: 20_000, to: 32_000 } as const;

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const bound = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(bound));
    });
  });
}

/** A TCP port that was free a moment ago on 127.0.0.1, outside the ephemeral range when possible. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const candidate = TEST_PORT_RANGE.from + Math.floor(Math.random() * (TEST_PORT_RANGE.to - TEST_PORT_RANGE.from));
    const port = await tryListen(candidate);
    if (port !== undefined) return port;
  }
  const port = await tryListen(0);
  if (port === undefined) throw new Error('no free TCP port on 127.0.0.1');
  return port;
}

/** Wait until something accepts TCP connections on 127.0.0.1:port; fail early if `child` exits. */
export async function waitForPort(port: number, child: { exitCode: number | null }, what: string, timeoutMs = 10_000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port}`);
}
