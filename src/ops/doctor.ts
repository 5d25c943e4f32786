/**
 * `porthole doctor`: is this node's setup sound, and do its peers share its token store?
 * Findings are data ({code, severity, message, fix}); the CLI prints them and picks the exit status.
 * The peer check is the one that would have caught our source material's outage: every node must
 * report the same store fingerprint, and a canary token written through this node's store must
 * validate on every node.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { access, constants, readFile } from 'node:fs/promises';
import WebSocket from 'ws';
import type { Config } from '../config/schema.js';
import { formatProblem, type ConfigProblem } from '../config/load.js';
import { isLoopback } from '../compute/domain-xml.js';
import { ERROR_CATALOGUE } from '../errors.js';
import { storeFingerprint, type TokenStore } from '../tokens/store.js';

export interface DoctorFinding {
  readonly code: string;
  readonly severity: 'error' | 'warning' | 'ok';
  readonly message: string;
  readonly fix?: string;
}

export interface DoctorOptions {
  readonly config: Config;
  readonly warnings: readonly ConfigProblem[];
  /** The store this config points at; undefined when it could not be opened (openError says why). */
  readonly store: TokenStore | undefined;
  readonly openError?: string;
  /** Console proxy base URLs of every node, e.g. http://10.0.0.1:6080. */
  readonly peers: readonly string[];
  readonly timeoutMs?: number;
  /** For certificate expiry; defaults to the clock. */
  readonly now?: number;
}

const CANARY_INSTANCE = 'porthole-doctor-canary';

async function checkFiles(config: Config): Promise<DoctorFinding[]> {
  const out: DoctorFinding[] = [];
  const files: Array<[string, string]> = [];
  if (config.compute.driver === 'static' && config.static.inventory_file !== '') files.push(['[static] inventory_file', config.static.inventory_file]);
  if (config.api.auth_keys_file !== '') files.push(['[api] auth_keys_file', config.api.auth_keys_file]);
  for (const [what, file] of files) {
    try {
      await access(file, constants.R_OK);
    } catch (err) {
      out.push({ code: 'PH_DOCTOR_FILE_UNREADABLE', severity: 'error', message: `${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, fix: 'create the file or fix its permissions' });
    }
  }
  return out;
}

/** Renewals are due this long before expiry (certbot renews at 30 days). */
const CERT_WARN_MS = 30 * 24 * 3600 * 1000;

export interface CertificateFile {
  /** The option that names it, e.g. `[DEFAULT] cert`. */
  readonly what: string;
  readonly file: string;
  readonly pem: Buffer;
  /** The matching private key, when the option has one. */
  readonly keyPem?: Buffer;
}

/**
 * Pure: expiry (and key match) of the first certificate in a PEM file. An expired certificate
 * makes every browser (or every VNC server, for the VeNCrypt client certificate) refuse the
 * proxy; the finding comes weeks earlier.
 */
export function certificateFinding(cert: CertificateFile, now: number): DoctorFinding {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert.pem);
  } catch (err) {
    return { code: 'PH_DOCTOR_CERT_INVALID', severity: 'error', message: `${cert.what} ${cert.file}: not a PEM certificate: ${(err as Error).message}`, fix: 'point the option at a PEM certificate' };
  }
  if (cert.keyPem !== undefined) {
    let problem: string | undefined;
    try {
      if (!x509.checkPrivateKey(createPrivateKey(cert.keyPem))) problem = 'the private key does not belong to this certificate';
    } catch (err) {
      problem = `the private key cannot be read: ${(err as Error).message}`;
    }
    if (problem !== undefined) return { code: 'PH_DOCTOR_CERT_KEY_MISMATCH', severity: 'error', message: `${cert.what} ${cert.file}: ${problem}`, fix: 'install the key that was issued with the certificate' };
  }
  const until = Date.parse(x509.validTo);
  const from = Date.parse(x509.validFrom);
  const subject = x509.subject.replace(/\n/g, ', ');
  if (now >= until) return { code: 'PH_DOCTOR_CERT_EXPIRED', severity: 'error', message: `${cert.what} ${cert.file} (${subject}) expired on ${x509.validTo}`, fix: 'renew it; Porthole picks up the new file without a restart' };
  if (now < from) return { code: 'PH_DOCTOR_CERT_NOT_YET_VALID', severity: 'error', message: `${cert.what} ${cert.file} (${subject}) is valid only from ${x509.validFrom}`, fix: 'check this host\'s clock' };
  const days = Math.floor((until - now) / (24 * 3600 * 1000));
  if (until - now < CERT_WARN_MS) return { code: 'PH_DOCTOR_CERT_EXPIRING', severity: 'warning', message: `${cert.what} ${cert.file} (${subject}) expires in ${days} days (${x509.validTo})`, fix: 'renew it now; Porthole picks up the new file without a restart' };
  return { code: 'PH_DOCTOR_CERT_OK', severity: 'ok', message: `${cert.what} ${cert.file} valid for ${days} more days` };
}

async function checkCertificates(config: Config, now: number): Promise<DoctorFinding[]> {
  const { cert, key } = config.DEFAULT;
  const v = config.vnc;
  const wanted: Array<{ what: string; file: string; keyFile?: string }> = [];
  if (cert !== '') wanted.push({ what: '[DEFAULT] cert', file: cert, keyFile: key });
  if (v.auth_schemes.includes('vencrypt')) {
    if (v.vencrypt_client_cert !== '') wanted.push({ what: '[vnc] vencrypt_client_cert', file: v.vencrypt_client_cert, keyFile: v.vencrypt_client_key });
    if (v.vencrypt_ca_certs !== '') wanted.push({ what: '[vnc] vencrypt_ca_certs', file: v.vencrypt_ca_certs });
  }
  const out: DoctorFinding[] = [];
  for (const w of wanted) {
    try {
      const pem = await readFile(w.file);
      const keyPem = w.keyFile === undefined ? undefined : await readFile(w.keyFile);
      out.push(certificateFinding({ what: w.what, file: w.file, pem, ...(keyPem === undefined ? {} : { keyPem }) }, now));
    } catch (err) {
      out.push({ code: 'PH_DOCTOR_FILE_UNREADABLE', severity: 'error', message: `${w.what} ${w.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, fix: 'create the file or fix its permissions' });
    }
  }
  return out;
}

async function checkStore(store: TokenStore): Promise<DoctorFinding[]> {
  try {
    const t = await store.authorize({ instance: CANARY_INSTANCE, protocol: 'vnc', consoleType: 'novnc', host: '127.0.0.1', port: 1, accessUrlBase: 'http://doctor.invalid/' }, 1000);
    const steps: string[] = [];
    steps.push((await store.validate(t.token)).status === 'valid' ? 'read' : 'READ FAILED');
    await new Promise((r) => setTimeout(r, 1100));
    steps.push((await store.validate(t.token)).status === 'expired' ? 'expire' : 'EXPIRE FAILED');
    const ok = steps.every((s) => s === s.toLowerCase());
    return [{
      code: ok ? 'PH_DOCTOR_STORE_OK' : 'PH_DOCTOR_STORE_BROKEN',
      severity: ok ? 'ok' : 'error',
      message: `token store ${store.backend} (fingerprint ${storeFingerprint(store.identity)}): write, ${steps.join(', ')}`,
      ...(ok ? {} : { fix: 'check the store server and its clock' }),
    }];
  } catch (err) {
    return [{ code: 'PH_DOCTOR_STORE_UNAVAILABLE', severity: 'error', message: (err as Error).message, fix: 'start the store or fix [cache] settings' }];
  }
}

/** Open a WebSocket with the canary token on a peer's proxy and read the close code. */
function canaryCloseCode(peer: string, token: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const url = new URL('websockify', peer.endsWith('/') ? peer : `${peer}/`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', token);
    // With an Origin (the peer's own), a refusal carries its close code (clients without one get an empty close, as from Nova).
    const ws = new WebSocket(url, ['binary'], { origin: new URL(peer).origin });
    const timer = setTimeout(() => { ws.terminate(); resolve('no answer'); }, timeoutMs);
    ws.on('unexpected-response', (_req, res) => { clearTimeout(timer); ws.terminate(); resolve(`HTTP ${res.statusCode ?? '?'}`); });
    ws.on('error', (err) => { clearTimeout(timer); resolve(err.message); });
    ws.on('close', (code) => { clearTimeout(timer); resolve(code); });
  });
}

async function checkPeers(store: TokenStore, peers: readonly string[], timeoutMs: number): Promise<DoctorFinding[]> {
  const out: DoctorFinding[] = [];
  const mine = storeFingerprint(store.identity);
  let canary: string;
  try {
    // Points at 127.0.0.1:1, where nothing listens: a peer that knows the token answers 4010.
    canary = (await store.authorize({ instance: CANARY_INSTANCE, protocol: 'vnc', consoleType: 'novnc', host: '127.0.0.1', port: 1, accessUrlBase: 'http://doctor.invalid/' }, 60_000)).token;
  } catch (err) {
    return [{ code: 'PH_DOCTOR_STORE_UNAVAILABLE', severity: 'error', message: (err as Error).message }];
  }
  for (const peer of peers) {
    let fingerprint: string | undefined;
    try {
      const res = await fetch(new URL('healthz', peer.endsWith('/') ? peer : `${peer}/`), { signal: AbortSignal.timeout(timeoutMs) });
      fingerprint = ((await res.json()) as { store?: { fingerprint?: string } }).store?.fingerprint;
    } catch (err) {
      out.push({ code: 'PH_DOCTOR_PEER_UNREACHABLE', severity: 'error', message: `${peer}: /healthz did not answer: ${(err as Error).message}`, fix: 'is the node running, and is its console proxy reachable from here?' });
      continue;
    }
    const close = await canaryCloseCode(peer, canary, timeoutMs);
    const knowsToken = close === ERROR_CATALOGUE.PH_ERR_UPSTREAM_UNREACHABLE.wsCloseCode || close === ERROR_CATALOGUE.PH_ERR_UPSTREAM_TIMEOUT.wsCloseCode;
    // The canary decides; a fingerprint is compared only where the peer shows one (the public
    // /healthz of this version shows only up/down and the version).
    if (knowsToken && (fingerprint === undefined || fingerprint === mine)) {
      out.push({ code: 'PH_DOCTOR_PEER_OK', severity: 'ok', message: `${peer}: same token store (canary token valid there)` });
    } else {
      out.push({
        code: 'PH_DOCTOR_PEER_STORE_SPLIT', severity: 'error',
        message: `${peer} does not share this node's token store: canary token ${knowsToken ? 'valid' : `refused (${close})`} there${fingerprint === undefined ? '' : `, fingerprint ${fingerprint} vs ${mine} here`}. Consoles minted on one node fail on the other with "invalid token".`,
        fix: `give that node the same [cache] backend and servers as this one (compare both nodes' /healthz on the API with a key), then restart it`,
      });
    }
  }
  await store.revokeInstance(CANARY_INSTANCE).catch(() => undefined);
  return out;
}

function checkBaseUrl(config: Config, peers: readonly string[]): DoctorFinding[] {
  const url = new URL(config.vnc.novncproxy_base_url);
  const out: DoctorFinding[] = [];
  if (peers.length > 1 && isLoopback(url.hostname.replace(/^\[|\]$/g, ''))) {
    out.push({
      code: 'PH_DOCTOR_BASE_URL_LOOPBACK', severity: 'warning',
      message: `[vnc] novncproxy_base_url ${url.origin} points at loopback in a multi-node setup: browsers elsewhere cannot open it`,
      fix: 'set it to the load balancer\'s public URL',
    });
  }
  return out;
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorFinding[]> {
  const findings: DoctorFinding[] = options.warnings.map((w) => ({ code: 'PH_DOCTOR_CONFIG_DEPRECATED', severity: 'warning', message: formatProblem(w), fix: 'rename the option as the message says' }));
  findings.push(...(await checkFiles(options.config)));
  findings.push(...(await checkCertificates(options.config, options.now ?? Date.now())));
  findings.push(...checkBaseUrl(options.config, options.peers));
  if (options.store === undefined) {
    findings.push({ code: 'PH_DOCTOR_STORE_UNAVAILABLE', severity: 'error', message: options.openError ?? 'token store not opened', fix: 'start the store or fix [cache] settings' });
    return findings;
  }
  findings.push(...(await checkStore(options.store)));
  if (options.peers.length > 1 && (options.store.backend === 'sqlite' || options.store.backend === 'memory')) {
    findings.push({
      code: 'PH_DOCTOR_PRIVATE_STORE', severity: 'error',
      message: `[cache] backend = ${options.store.backend} keeps tokens on this node only, but ${options.peers.length} nodes are listed`,
      fix: 'use a shared store on every node: backend = redis, memcached, postgresql or mysql (docs/multi-node.md)',
    });
  }
  if (options.peers.length > 0) findings.push(...(await checkPeers(options.store, options.peers, options.timeoutMs ?? 3000)));
  return findings;
}
