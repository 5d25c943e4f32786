/**
 * Running virsh. libvirt has no maintained Node binding (the `libvirt` npm packages are
 * unmaintained native addons), and virsh is on every libvirt host, so Porthole shells out to it
 * with an argument array (never a shell string) and a timeout.
 */
import { execFile } from 'node:child_process';

export type VirshFailure = 'missing' | 'unreachable' | 'not-found' | 'failed';

export class VirshError extends Error {
  constructor(readonly kind: VirshFailure, message: string) {
    super(message);
    this.name = 'VirshError';
  }
}

/** Runs `virsh -c URI ARGS…` and resolves with stdout. @throws VirshError */
export type VirshRunner = (args: readonly string[]) => Promise<string>;

export const VIRSH_TIMEOUT_MS = 10_000;

/** Classify virsh's stderr (libvirt's messages are stable across releases). Pure. */
export function classifyVirshError(stderr: string): VirshFailure {
  if (/failed to get domain|Domain not found|no domain with matching/i.test(stderr)) return 'not-found';
  if (/failed to connect to the hypervisor|Failed to connect socket|no connection driver available|Connection refused/i.test(stderr)) return 'unreachable';
  return 'failed';
}

export function createVirshRunner(connectionUri: string, virshPath = 'virsh'): VirshRunner {
  return (args) =>
    new Promise((resolve, reject) => {
      execFile(virshPath, ['-q', '-c', connectionUri, ...args], { timeout: VIRSH_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (!err) {
          resolve(stdout);
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        if (e.code === 'ENOENT') {
          reject(new VirshError('missing', `${virshPath} not found: install libvirt-clients (apt-get install libvirt-clients)`));
        } else if (e.killed) {
          reject(new VirshError('unreachable', `virsh ${args[0] ?? ''} did not answer within ${VIRSH_TIMEOUT_MS} ms (is libvirtd hung?)`));
        } else {
          const text = stderr.trim().replace(/^error: /gm, '').replace(/\n+/g, '; ');
          reject(new VirshError(classifyVirshError(stderr), text || e.message));
        }
      });
    });
}
