import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeTlsError } from '../../src/protocols/upstream-tls.js';

const err = (code: string, message: string) => Object.assign(new Error(message), { code });

test('TLS failures towards VNC servers are explained with the fix for the usual cause', () => {
  assert.match(describeTlsError(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate')),
    /^unable to verify the first certificate \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\); the server certificate does not chain to \[vnc\] vencrypt_ca_certs$/);
  assert.match(describeTlsError(err('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames")), /vencrypt_verify_hostname = false only if/);
  assert.match(describeTlsError(err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'alert')), /did not accept the proxy's client certificate/);
  assert.match(describeTlsError(err('CERT_HAS_EXPIRED', 'certificate has expired')), /renew the VNC server's certificate/);
  assert.equal(describeTlsError(err('EPIPE', 'write EPIPE')), 'write EPIPE');
});
