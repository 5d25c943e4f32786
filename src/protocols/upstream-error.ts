/**
 * A console server's socket error as the reason a person is shown. Shared by every protocol. Pure.
 */
import { PortholeError } from '../errors.js';

/**
 * @param kind the server as people call it: `VNC server`, `serial console`.
 * @param address `host:port` it was reached at.
 * @param connected whether the connection had been established (closed vs unreachable).
 */
export function upstreamSocketError(err: NodeJS.ErrnoException, kind: string, address: string, connected: boolean): PortholeError {
  const what = `${kind} ${address}`;
  if (err.code === 'EMFILE' || err.code === 'ENFILE') {
    // Not the VM's fault: "server unreachable" would send the person and the operator the wrong way.
    return new PortholeError('PH_ERR_PROXY_FD_EXHAUSTED', `cannot open a connection to ${address}: ${err.code} (the proxy's open-files limit is reached)`, { cause: err });
  }
  if (!connected) return new PortholeError('PH_ERR_UPSTREAM_UNREACHABLE', `cannot connect to ${what}: ${err.code ?? err.message}`, { cause: err });
  return new PortholeError('PH_ERR_UPSTREAM_CLOSED', `${what} connection failed: ${err.code ?? err.message}`, { cause: err });
}
