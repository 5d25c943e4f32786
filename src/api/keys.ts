/** API keys: loaded from `[api] auth_keys_file`, or generated once into the state directory. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PortholeError } from '../errors.js';

/** One API key and the name it is shown under (sessions, audit, logs); never the key itself. */
export interface ApiKey {
  readonly name: string;
  readonly key: string;
}

export interface ApiKeySource {
  readonly keys: readonly string[];
  /** The same keys with their names (`name:key` lines; plain `key` lines are named key1, key2… by line). */
  readonly entries: readonly ApiKey[];
  /** File the keys came from. */
  readonly file: string;
  /** True when this call generated the key file. */
  readonly generated: boolean;
}

/** Key file lines: `name:key`, or a plain `key` (named by its position). Pure. */
export function parseKeyEntries(text: string): ApiKey[] {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  return lines.map((line, i) => {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63}):(\S+)$/.exec(line);
    return m === null ? { name: `key${i + 1}`, key: line } : { name: m[1] as string, key: m[2] as string };
  });
}

export function parseKeyFile(text: string): string[] {
  return parseKeyEntries(text).map((e) => e.key);
}

/** The name of the key presented, or undefined; constant-time over every key. */
export function matchKey(presented: string, digests: ReadonlyArray<{ readonly name: string; readonly digest: Buffer }>): string | undefined {
  const d = digestKey(presented);
  let name: string | undefined;
  for (const k of digests) if (timingSafeEqual(d, k.digest) && name === undefined) name = k.name; // no early exit
  return name;
}

export function generatedKeyPath(statePath: string): string {
  return join(statePath, 'api-key');
}

/**
 * Keys from `authKeysFile`, else from <statePath>/api-key, which is created (mode 0600) when
 * `generate` is set and it does not exist yet.
 * @throws PortholeError PH_ERR_CONFIG_INVALID when the file is unreadable or holds no key.
 */
export async function loadApiKeys(authKeysFile: string, statePath: string, generate: boolean): Promise<ApiKeySource> {
  const file = authKeysFile !== '' ? authKeysFile : generatedKeyPath(statePath);
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || authKeysFile !== '' || !generate) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new PortholeError('PH_ERR_CONFIG_INVALID', authKeysFile !== ''
        ? `cannot read API keys from [api] auth_keys_file = ${file} (${code})`
        : `cannot read the API key file ${file} (${code}): [DEFAULT] state_path = ${statePath} must be a directory porthole can write, or set [api] auth_keys_file`, { cause: err });
    }
  }
  if (text === undefined) return generateKeyFile(file, statePath);
  const entries = parseKeyEntries(text);
  if (entries.length === 0) throw new PortholeError('PH_ERR_CONFIG_INVALID', `API key file ${file} holds no key`);
  return { keys: entries.map((e) => e.key), entries, file, generated: false };
}

/**
 * Write a new key so that the file appears complete or not at all: into a temp file, then link()
 * to the final name. Two processes starting at once on a fresh state dir no longer die with
 * EEXIST or read a half-written file: the one that loses the link race reads the winner's key.
 */
async function generateKeyFile(file: string, statePath: string): Promise<ApiKeySource> {
  const key = randomBytes(32).toString('base64url');
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(statePath, { recursive: true, mode: 0o700 });
    await writeFile(temp, `${key}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(temp, 0o600);
    await link(temp, file);
    return { keys: [key], entries: [{ name: 'key1', key }], file, generated: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const entries = parseKeyEntries(await readFile(file, 'utf8'));
      if (entries.length > 0) return { keys: entries.map((e) => e.key), entries, file, generated: false };
    }
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new PortholeError('PH_ERR_CONFIG_INVALID',
      `cannot create the API key file ${file} (${code}): [DEFAULT] state_path = ${statePath} must be a directory porthole can write, or set [api] auth_keys_file`, { cause: err });
  } finally {
    await unlink(temp).catch(() => undefined); // gone already when the write failed
  }
}

/** Digest once so each comparison is fixed-length and constant-time, whatever the presented length. */
export function digestKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function keyMatches(presented: string, digests: readonly Buffer[]): boolean {
  const d = digestKey(presented);
  let ok = false;
  for (const k of digests) ok = timingSafeEqual(d, k) || ok; // no early exit: same time for every position
  return ok;
}

/** The presented key: `Authorization: Bearer KEY`, or Nova clients' `X-Auth-Token: KEY`. */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m?.[1];
  }
  const x = headers['x-auth-token'];
  return typeof x === 'string' && x !== '' ? x : undefined;
}
