/**
 * TLS from the proxy to a console server — a VNC server (VeNCrypt X509None/X509Vnc, `[vnc]
 * vencrypt_*`) or a SPICE server's tlsPort (`[spice] ca_certs`): the server's certificate must
 * chain to the configured CA and, unless turned off, name the host the proxy connected to; for
 * VeNCrypt the proxy presents `vencrypt_client_cert` when configured (QEMU's verify-peer=on).
 *
 * Nova's proxy verifies the chain but not the host name. Porthole checks it by default, so a
 * certificate stolen from one hypervisor cannot impersonate another.
 */
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';

export interface UpstreamTls {
  /** CA bundle, and the client certificate and key when mutual TLS is configured. */
  readonly secureContext: SecureContext;
  readonly verifyHostname: boolean;
  /** A client certificate is configured (for telling operators why a server hung up). */
  readonly hasClientCertificate: boolean;
}

/** Wrap an already-connected socket (the VeNCrypt preamble ran in clear text on it) in TLS. */
export function startUpstreamTls(socket: Socket, host: string, tls: UpstreamTls): TLSSocket {
  return tlsConnect({
    socket,
    // host is what checkServerIdentity compares against (IP SANs for addresses); SNI only takes names.
    host,
    ...(isIP(host) === 0 ? { servername: host } : {}),
    secureContext: tls.secureContext,
    rejectUnauthorized: true,
    checkServerIdentity: tls.verifyHostname ? checkServerIdentity : (_host: string, _cert: PeerCertificate) => undefined,
  });
}

/** An operator-facing reason for a failed TLS hop, with the fix for the usual causes. */
export function describeTlsError(err: NodeJS.ErrnoException): string {
  const base = err.code !== undefined && !err.message.includes(err.code) ? `${err.message} (${err.code})` : err.message;
  if (/CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA/.test(err.code ?? '')) {
    return `${base}; the VNC server did not accept the proxy's client certificate ([vnc] vencrypt_client_cert/vencrypt_client_key)`;
  }
  if (err.code === 'ECONNRESET') return `${base}; the VNC server reset the connection during TLS (a client certificate it does not accept is the usual cause)`;
  if (err.code === 'CERT_HAS_EXPIRED' || err.code === 'CERT_NOT_YET_VALID') return `${base}; renew the VNC server's certificate (or check the clocks)`;
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${base}; set [vnc] vencrypt_verify_hostname = false only if the certificates cannot name the address`;
  if (/VERIFY|SELF_SIGNED|ISSUER|CERT_/.test(err.code ?? '')) return `${base}; the server certificate does not chain to [vnc] vencrypt_ca_certs`;
  return base;
}
