/**
 * The checks a WebSocket upgrade passes before it may become a console session, cheapest first,
 * so that a refusal costs the caller more than it costs us:
 *   per-address failure limit → Origin host → token → console type → Origin scheme (the token's
 *   page) → session limits → driver prepare (virsh, or nova-compute over RPC) → limits again.
 * A refused request never becomes a session. Each refusal is published once on the diagnostics
 * channel `porthole:upgrade:refused` (code, stage, remote, instance when known) for metrics and audit.
 * Protocol-neutral: what a listener accepts is a dependency (`acceptsConsole`).
 */
import { channel } from 'node:diagnostics_channel';
import type { ConnectInfo } from '../console/types.js';
import { PortholeError } from '../errors.js';
import type { OriginVerdict } from './origin.js';
import type { SessionAuth } from './session.js';

export const upgradeRefusedChannel = channel('porthole:upgrade:refused');

export type GateStage = 'failure-limit' | 'origin' | 'token' | 'console-type' | 'session-limits' | 'prepare';

export interface UpgradeRefusal {
  readonly code: string;
  readonly stage: GateStage;
  readonly remote: string;
  readonly instance: string | undefined;
}

export type GateVerdict =
  | { readonly ok: true; readonly auth: SessionAuth & { ok: true } }
  /** `beforeUpgrade`: answer with an HTTP status (429, 403); otherwise accept and close with the code, so a page can show why. */
  | { readonly ok: false; readonly error: PortholeError; readonly stage: GateStage; readonly beforeUpgrade: boolean; readonly info?: ConnectInfo | undefined };

export interface UpgradeGateDeps {
  /** A slot in the per-address failed-token limiter; false when the address is over its limit. */
  acquire(remote: string): Promise<boolean>;
  release(remote: string, failedGuess: boolean): void;
  /** Origin against this host and `allowed_origins`; with a scheme, also the scheme of the token's page. */
  checkOrigin(expectedScheme: string | undefined): OriginVerdict;
  lookup(token: string | undefined): Promise<{ ok: true; connectInfo: ConnectInfo; expiresAt: number } | { ok: false; error: PortholeError }>;
  /** Whether this listener serves this kind of console; the refusal when not. */
  acceptsConsole(info: ConnectInfo): PortholeError | undefined;
  sessionLimits(info: ConnectInfo): PortholeError | undefined;
  /** The target re-check and secrets (driver prepare); the expensive step. */
  prepare(info: ConnectInfo, expiresAt: number): Promise<SessionAuth>;
}

/** Only a token the store does not know is a guess; a revoked or expired one was real (and retrying it locks nobody out). */
export const isGuess = (error: PortholeError | undefined) => error?.code === 'PH_ERR_TOKEN_INVALID';

export async function passUpgradeGate(deps: UpgradeGateDeps, token: string | undefined, remote: string): Promise<GateVerdict> {
  const refuse = (error: PortholeError, stage: GateStage, beforeUpgrade = false, info?: ConnectInfo): GateVerdict => {
    if (upgradeRefusedChannel.hasSubscribers) upgradeRefusedChannel.publish({ code: error.code, stage, remote, instance: info?.instance } satisfies UpgradeRefusal);
    return { ok: false, error, stage, beforeUpgrade, info };
  };
  if (!(await deps.acquire(remote))) {
    return refuse(new PortholeError('PH_ERR_TOO_MANY_FAILURES', 'too many failed token attempts from this address; wait a minute'), 'failure-limit', true);
  }
  let lookup: Awaited<ReturnType<UpgradeGateDeps['lookup']>> | undefined;
  try {
    const host = deps.checkOrigin(undefined);
    if (!host.ok) return refuse(new PortholeError('PH_ERR_ORIGIN_FORBIDDEN', host.reason), 'origin', true);
    lookup = await deps.lookup(token);
  } finally {
    deps.release(remote, lookup !== undefined && !lookup.ok && isGuess(lookup.error));
  }
  if (!lookup.ok) return refuse(lookup.error, 'token');
  const info = lookup.connectInfo;
  const unsupported = deps.acceptsConsole(info);
  if (unsupported !== undefined) return refuse(unsupported, 'console-type', false, info);
  const scheme = deps.checkOrigin(new URL(info.accessUrlBase).protocol);
  if (!scheme.ok) return refuse(new PortholeError('PH_ERR_ORIGIN_FORBIDDEN', scheme.reason), 'origin', true, info);
  const limited = deps.sessionLimits(info);
  if (limited !== undefined) return refuse(limited, 'session-limits', false, info);
  const prepared = await deps.prepare(info, lookup.expiresAt);
  if (!prepared.ok) return refuse(prepared.error, 'prepare', false, info);
  // prepare waited: other upgrades may have taken the last slots meanwhile.
  const limitedNow = deps.sessionLimits(info);
  if (limitedNow !== undefined) return refuse(limitedNow, 'session-limits', false, info);
  return { ok: true, auth: prepared };
}
