/**
 * A console server's socket error as the reason a person is shown. Shared by every protocol. Pure.
 */
import { PortholeError } from '../errors.js';

/**
 * @param what the server as people call it, with its address: `VNC server 10.0.0.5:5901`.
 * @param connected whether the connection had been established (closed vs unreachable).
 */
export function upstreamSocketError(err: NodeJS.ErrnoException, what: string, connected: boolean): PortholeError {
  const address = what.slice(what.lastIndexOf(' ') + 1);
  if (err.code === 'EMFILE' || err.code === 'ENFILE') {
    // Not the VM's fault: "server unreachable" would send the person and the operator the wrong way.
    return new PortholeError('PH_ERR_PROXY_FD_EXHAUSTED', `cannot open a connection to ${address}: ${err.code} (the proxy's open-files limit is reached)`, { cause: err });
  }
  if (!connected) return new PortholeError('PH_ERR_UPSTREAM_UNREACHABLE', `cannot connect to ${what}: ${err.code ?? err.message}`, { cause: err });
  return new PortholeError('PH_ERR_UPSTREAM_CLOSED', `${what} connection failed: ${err.code ?? err.message}`, { cause: err });
}
