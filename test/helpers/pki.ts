/** A throwaway test CA and server certificate for 127.0.0.1 (openssl), like reference make-certs.sh. */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTempDir } from './run.js';

export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** Issue a fresh server key + certificate into `certFile`/`keyFile` (a renewal); `san` overrides the subjectAltName; `key` RSA 2048 (default) or ECDSA P-256. */
  issueServer(certFile: string, keyFile: string, san?: string, key?: 'rsa' | 'ec'): void;
  /** Issue a client key + certificate (extendedKeyUsage clientAuth), for mutual TLS. */
  issueClient(certFile: string, keyFile: string): void;
}

export function makeTestPki(): TestPki {
  const dir = runTempDir('pki');
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=porthole test CA', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  const issueServer = (certFile: string, keyFile: string, san?: string, key: 'rsa' | 'ec' = 'rsa') => {
    ssl('req', ...(key === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048']), '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', keyFile, '-out', 'server.csr');
    let ext = 'ext.cnf';
    if (san !== undefined) {
      ext = 'ext-custom.cnf';
      writeFileSync(join(dir, ext), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
    }
    ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', certFile);
  };
  const issueClient = (certFile: string, keyFile: string) => {
    writeFileSync(join(dir, 'client-ext.cnf'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=porthole-proxy', '-keyout', keyFile, '-out', 'client.csr');
    ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', 'client-ext.cnf', '-out', certFile);
  };
  issueServer(join(dir, 'server-cert.pem'), join(dir, 'server-key.pem'));
  return { dir, caCert: join(dir, 'ca-cert.pem'), serverCert: join(dir, 'server-cert.pem'), serverKey: join(dir, 'server-key.pem'), issueServer, issueClient };
}
