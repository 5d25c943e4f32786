/**
 * TLS from the proxy to a VNC server (VeNCrypt X509None/X509Vnc): the server's certificate must
 * chain to `[vnc] vencrypt_ca_certs` and, unless turned off, name the host the proxy connected to;
 * the proxy presents `vencrypt_client_cert` when configured (QEMU's verify-peer=on).
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
