/**
 * Prometheus metrics of one gateway (prom-client, its own Registry: two gateways in one process
 * never share counters). Fed by the proxy's ConsoleEvents and read from the session registry at
 * scrape time; the relay's hot path does nothing for them (byte totals are the counters the relay
 * already keeps, summed when Prometheus asks). No token, and no instance name unless
 * `[porthole] metrics_instance_labels`, ever becomes a label value.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ConsoleEvents } from '../console/events.js';
import type { ConsoleProtocol } from '../console/types.js';
import { ERROR_CATALOGUE } from '../errors.js';
import type { SessionInfo } from '../sessions/registry.js';

export interface GatewayMetricsOptions {
  /** The open sessions, read at scrape time. */
  readonly sessions: { list(): SessionInfo[] };
  readonly version: string;
  /** Label open sessions with their instance name too (off: instance names can be customer data). */
  readonly instanceLabels?: boolean | undefined;
}

const PROTOCOLS: readonly ConsoleProtocol[] = ['vnc', 'serial', 'spice'];

/** A close or refusal as a bounded label value: a PH_ERR_* code, or `ws_<code>` for protocol closes. Pure. */
export function resultLabel(errorCode: string | undefined, closeCode: number | undefined): string {
  if (errorCode !== undefined && Object.hasOwn(ERROR_CATALOGUE, errorCode)) return errorCode;
  if (closeCode === undefined) return 'unknown';
  return Number.isInteger(closeCode) && closeCode >= 1000 && closeCode < 5000 ? `ws_${closeCode}` : 'unknown';
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly events: ConsoleEvents;
  /** Bytes of sessions already closed; open ones are added from the registry at scrape time. */
  readonly #closedBytes = new Map<string, number>();

  constructor(options: GatewayMetricsOptions) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry }); // process CPU/memory/fds, event-loop lag, GC
    // prom-client names three gauges `…_total`, which promtool's lint rejects (only counters may end
    // so); the same numbers are in nodejs_active_handles / _requests / _resources.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    new Gauge({ name: 'porthole_build_info', help: 'Porthole version (always 1).', labelNames: ['version'], registers }).set({ version: options.version }, 1);
    const closedBytes = this.#closedBytes;
    const instanceLabels = options.instanceLabels === true;
    new Gauge({
      name: 'porthole_sessions_open', help: 'Open consoles on this node (a SPICE console\'s channels count once).',
      labelNames: instanceLabels ? ['protocol', 'instance'] : ['protocol'], registers,
      collect() {
        this.reset();
        for (const p of PROTOCOLS) if (!instanceLabels) this.set({ protocol: p }, 0);
        for (const s of options.sessions.list()) {
          if (s.protocol === undefined) continue;
          const labels = instanceLabels ? { protocol: s.protocol, instance: s.instance ?? '' } : { protocol: s.protocol };
          this.inc(labels, 1);
        }
      },
    });
    new Counter({
      name: 'porthole_relay_bytes_total', help: 'Bytes relayed, by protocol and direction (to_client: VM → browser).',
      labelNames: ['protocol', 'direction'], registers,
      collect() {
        const totals = new Map(closedBytes);
        for (const s of options.sessions.list()) {
          if (s.protocol === undefined) continue;
          totals.set(`${s.protocol}|to_client`, (totals.get(`${s.protocol}|to_client`) ?? 0) + s.bytesToClient);
          totals.set(`${s.protocol}|to_server`, (totals.get(`${s.protocol}|to_server`) ?? 0) + s.bytesToServer);
        }
        this.reset();
        for (const [key, value] of totals) {
          const [protocol, direction] = key.split('|') as [string, string];
          this.inc({ protocol, direction }, value);
        }
      },
    });
    const setups = new Counter({
      name: 'porthole_session_setups_total', help: 'Console setups by result: ok, or the PH_ERR_* code that ended them before the console was reached.',
      labelNames: ['protocol', 'result'], registers,
    });
    const setupSeconds = new Histogram({
      name: 'porthole_session_setup_seconds', help: 'From the accepted upgrade to a relaying console (connect, the console\'s own handshake).',
      labelNames: ['protocol'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
    });
    const refusals = new Counter({
      name: 'porthole_refusals_total', help: 'Requests the upgrade gate refused (no session), by reason.',
      labelNames: ['stage', 'reason'], registers,
    });
    const validations = new Counter({
      name: 'porthole_token_validations_total', help: 'Token look-ups by source backend and result (valid, unknown, expired, revoked, stale, error).',
      labelNames: ['source', 'result'], registers,
    });
    const storeSeconds = new Histogram({
      name: 'porthole_token_store_seconds', help: 'Time of one token look-up in the token source.',
      labelNames: ['source'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers,
    });
    this.events = {
      sessionOpened: (e) => {
        setups.inc({ protocol: e.protocol, result: 'ok' });
        setupSeconds.observe({ protocol: e.protocol }, e.setupSeconds);
      },
      sessionClosed: (e) => {
        const protocol = e.protocol ?? 'unknown';
        if (!e.relayed) setups.inc({ protocol, result: resultLabel(e.errorCode, e.closeCode) });
        closedBytes.set(`${protocol}|to_client`, (closedBytes.get(`${protocol}|to_client`) ?? 0) + e.bytesToClient);
        closedBytes.set(`${protocol}|to_server`, (closedBytes.get(`${protocol}|to_server`) ?? 0) + e.bytesToServer);
      },
      refused: (e) => refusals.inc({ stage: e.stage, reason: resultLabel(e.code, undefined) }),
      tokenLookup: (e) => {
        validations.inc({ source: e.source, result: e.result });
        storeSeconds.observe({ source: e.source }, e.seconds);
      },
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
