/** `porthole vncdisplay INSTANCE`: like `virsh vncdisplay`, plus the listen address and a reachability probe. */
import { connect } from 'node:net';
import type { LibvirtDriver } from '../compute/libvirt-driver.js';
import { PortholeError } from '../errors.js';

export interface VncDisplayReport {
  readonly domain: string;
  readonly uuid: string;
  readonly display: string;
  readonly port: number | undefined;
  readonly listen: string;
  readonly proxyTarget: string | undefined;
  readonly reachable: boolean;
  readonly detail: string;
}

/** Connect and read the 12-byte RFB greeting. */
export function probeRfb(host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let got = Buffer.alloc(0);
    const done = (ok: boolean, detail: string) => { clearTimeout(timer); s.destroy(); resolve({ ok, detail }); };
    const timer = setTimeout(() => done(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 12) {
        const v = got.subarray(0, 12).toString('latin1');
        done(/^RFB \d{3}\.\d{3}\n$/.test(v), /^RFB/.test(v) ? v.trim() : 'not an RFB server');
      }
    });
    s.on('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
    s.on('end', () => done(false, 'closed before the RFB greeting'));
  });
}

export async function vncDisplay(driver: LibvirtDriver, instance: string): Promise<VncDisplayReport> {
  const domain = await driver.domain(instance);
  if (domain === undefined) throw new PortholeError('PH_ERR_INSTANCE_NOT_FOUND', `no libvirt domain named ${JSON.stringify(instance)}`);
  const vnc = domain.graphics.find((g) => g.type === 'vnc');
  if (vnc === undefined) throw new PortholeError('PH_ERR_INSTANCE_NO_CONSOLE', `domain ${domain.name} has no VNC graphics`);
  if (!domain.running) throw new PortholeError('PH_ERR_INSTANCE_NOT_RUNNING', `domain ${domain.name} is shut off`);
  const listen = vnc.listens[0]?.type === 'socket' ? `unix:${vnc.listens[0].socket ?? '?'}` : vnc.listenAddress ?? '(default)';
  let target: string | undefined;
  let probe = { ok: false, detail: '' };
  try {
    const t = await driver.resolve(domain.uuid, 'vnc');
    if (t) {
      target = `${t.host}:${t.port}`;
      probe = await probeRfb(t.host, t.port, 2000);
    }
  } catch (err) {
    probe = { ok: false, detail: (err as Error).message };
  }
  return {
    domain: domain.name,
    uuid: domain.uuid,
    display: vnc.port === undefined ? '(none)' : `:${vnc.port - 5900}`,
    port: vnc.port,
    listen,
    proxyTarget: target,
    reachable: probe.ok,
    detail: probe.detail,
  };
}
