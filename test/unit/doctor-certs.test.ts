import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { certificateFinding } from '../../src/ops/doctor.js';
import { makeTestPki } from '../helpers/pki.js';

const pki = makeTestPki(); // certificates valid for 2 days from now
after(() => rmSync(pki.dir, { recursive: true, force: true }));
const DAY = 24 * 3600 * 1000;
const cert = { what: '[DEFAULT] cert', file: pki.serverCert, pem: readFileSync(pki.serverCert), keyPem: readFileSync(pki.serverKey) };

test('doctor: certificate expiry is an error when past, a warning within 30 days', () => {
  assert.equal(certificateFinding(cert, Date.now() - 40 * DAY).code, 'PH_DOCTOR_CERT_NOT_YET_VALID');
  const soon = certificateFinding(cert, Date.now());
  assert.equal(soon.code, 'PH_DOCTOR_CERT_EXPIRING');
  assert.match(soon.message, /expires in [01] days/);
  assert.equal(certificateFinding(cert, Date.now() + 3 * DAY).code, 'PH_DOCTOR_CERT_EXPIRED');
});

test('doctor: a key that does not belong to the certificate, or no certificate at all, is named', () => {
  pki.issueServer(join(pki.dir, 'other-cert.pem'), join(pki.dir, 'other-key.pem'));
  const mismatch = certificateFinding({ ...cert, keyPem: readFileSync(join(pki.dir, 'other-key.pem')) }, Date.now());
  assert.equal(mismatch.code, 'PH_DOCTOR_CERT_KEY_MISMATCH');
  assert.equal(certificateFinding({ ...cert, keyPem: Buffer.from('garbage') }, Date.now()).code, 'PH_DOCTOR_CERT_KEY_MISMATCH');
  assert.equal(certificateFinding({ what: '[vnc] vencrypt_ca_certs', file: 'x', pem: Buffer.from('not a cert') }, Date.now()).code, 'PH_DOCTOR_CERT_INVALID');
  const ca = certificateFinding({ what: '[vnc] vencrypt_ca_certs', file: pki.caCert, pem: readFileSync(pki.caCert) }, Date.now() + 60_000);
  assert.equal(ca.severity, 'warning', 'a 2-day CA is inside the 30-day window');
});
