/**
 * nova-novncproxy's stale-port guard (CVE-2013-0335 class), kept in nova mode: before connecting,
 * ask the instance's nova-compute over Nova's RPC whether the token's port is still the
 * instance's console (`ComputeAPI.validate_console_port`, compute RPC 6.0). nova-compute re-reads
 * its driver's port for the console type and answers `str(port) == port`.
 *
 * Fails closed, as Nova does: no answer, no console. Unlike Nova, the person is told which part
 * failed (RabbitMQ, no compute consuming, compute error, port moved) instead of a bare 1006.
 */
import { randomUUID } from 'node:crypto';
import { PortholeError } from '../errors.js';
import type { ConnectInfo } from '../console/types.js';
import type { RpcCall } from './oslo-rpc.js';

/** What the check needs of an RPC client (OsloRpcClient, or anything that speaks to nova-compute). */
export interface RpcCaller {
  call(topic: string, server: string, call: RpcCall, timeoutMs: number): Promise<unknown>;
}

/** Nova's Instance object as oslo.versionedobjects serialises it, with the fields the compute uses. Pure. */
export function instancePrimitive(info: ConnectInfo): Record<string, unknown> {
  const nova = info.nova;
  if (nova === undefined) throw new PortholeError('PH_ERR_TOKEN_REVOKED', `instance ${info.instanceUuid ?? info.instance} has no live row in Nova's database`);
  return {
    'nova_object.name': 'Instance',
    'nova_object.namespace': 'nova',
    'nova_object.version': '2.7', // Zed's Instance; newer computes accept older minor versions
    'nova_object.data': { id: nova.id, uuid: info.instanceUuid, host: nova.host, node: nova.node },
    'nova_object.changes': [],
  };
}

/** The RPC call nova-novncproxy makes, for this token's row. Pure apart from the request id. */
export function validateConsolePortCall(info: ConnectInfo, requestId: string): RpcCall {
  return {
    method: 'validate_console_port',
    version: '6.0',
    args: { instance: instancePrimitive(info), port: String(info.port), console_type: info.consoleType },
    // nova-novncproxy runs with an admin context (context.get_admin_context()).
    context: {
      is_admin: true, read_deleted: 'no', roles: ['admin'], request_id: requestId, global_request_id: null,
      user_id: null, project_id: null, timestamp: new Date().toISOString().replace('Z', ''),
    },
  };
}

export interface ConsolePortCheckOptions {
  readonly rpc: RpcCaller;
  readonly timeoutMs: number;
  /** `[DEFAULT] compute_topic` is gone since Rocky: always `compute`. */
  readonly topic?: string;
}

/** The check, as the proxy's connect-time hook. */
export function consolePortCheck(options: ConsolePortCheckOptions): (info: ConnectInfo) => Promise<Record<string, never>> {
  return async (info) => {
    const host = info.nova?.host;
    if (host === null || host === undefined || host === '') {
      throw new PortholeError('PH_ERR_TARGET_STALE', `instance ${info.instanceUuid ?? info.instance} is on no compute host in Nova's database`);
    }
    const requestId = `req-${randomUUID()}`;
    const result = await options.rpc.call(options.topic ?? 'compute', host, validateConsolePortCall(info, requestId), options.timeoutMs);
    if (result !== true) {
      throw new PortholeError('PH_ERR_TARGET_STALE',
        `nova-compute on ${host} says port ${info.port} is no longer the ${info.consoleType} console of instance ${info.instanceUuid ?? info.instance} (${requestId})`);
    }
    return {};
  };
}
