/**
 * A caller of Nova's RPC, as oslo.messaging's rabbit driver speaks it (Zed, oslo.messaging 14):
 * a `call` is a JSON envelope `{"oslo.version": "2.0", "oslo.message": "<JSON>"}` published to the
 * topic exchange `nova` (`[DEFAULT] control_exchange`) with routing key `<topic>.<server>`; the
 * message carries `method`, `args`, `version`, `_msg_id`, `_reply_q`, `_unique_id` and the request
 * context flattened into `_context_*` keys. The server answers on the default exchange with
 * routing key = our reply queue: `{"result", "failure", "ending", "_msg_id"}`, same envelope.
 *
 * Written here rather than taken from a library because no Node library speaks oslo.messaging;
 * the AMQP itself is amqplib's. The pure parts (URL, envelope, reply) are exported for tests.
 */
import { randomUUID } from 'node:crypto';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { PortholeError } from '../errors.js';

/** One broker of a `transport_url` (oslo: comma-separated `user:pass@host:port`, one vhost). */
export interface AmqpBroker {
  readonly url: string;
  /** For logs: no password. */
  readonly display: string;
}

/**
 * Nova's `[DEFAULT] transport_url` → the brokers to try, in order. Pure.
 * `rabbit://u:p@h1:5672,u:p@h2:5672/vhost` (oslo's multi-host form); `amqp://` is accepted too.
 * @throws PortholeError PH_ERR_CONFIG_INVALID naming what is wrong.
 */
export function parseTransportUrl(transportUrl: string, tls: boolean): AmqpBroker[] {
  const m = /^(rabbit|amqp|kombu\+amqp):\/\/([^/?#]*)(\/[^?#]*)?(\?.*)?$/.exec(transportUrl.trim());
  if (m === null) {
    throw new PortholeError('PH_ERR_CONFIG_INVALID',
      `[DEFAULT] transport_url = ${redactUrl(transportUrl)}: validate_console_port needs a RabbitMQ URL (rabbit://user:password@host:5672/); ` +
      'set [porthole] nova_validate_console_port = false to do without it');
  }
  const vhostPath = m[3] ?? '/';
  // oslo: "/" or "" is the default vhost "/"; "/name" is vhost "name".
  const vhost = vhostPath === '/' || vhostPath === '' ? '' : vhostPath;
  const scheme = tls ? 'amqps' : 'amqp';
  const hosts = (m[2] ?? '').split(',').filter((h) => h !== '');
  if (hosts.length === 0) throw new PortholeError('PH_ERR_CONFIG_INVALID', '[DEFAULT] transport_url names no RabbitMQ host');
  return hosts.map((h) => {
    const at = h.lastIndexOf('@');
    const hostPort = at === -1 ? h : h.slice(at + 1);
    const withPort = /:\d+$/.test(hostPort) || /^\[.*\]:\d+$/.test(hostPort) ? hostPort : `${hostPort}:${tls ? 5671 : 5672}`;
    const cred = at === -1 ? 'guest:guest@' : `${h.slice(0, at)}@`;
    return { url: `${scheme}://${cred}${withPort}${vhost}?heartbeat=30`, display: `${scheme}://${withPort}${vhost || '/'}` };
  });
}

/** A URL with its password replaced, for messages. Pure. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/|,)([^:@/,]*):[^@/,]*@/g, '$1$2:***@');
}

export interface RpcCall {
  readonly method: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly version: string;
  /** Request context fields (oslo flattens them into `_context_<key>`). */
  readonly context: Readonly<Record<string, unknown>>;
}

/** The AMQP body of an oslo.messaging call. Pure apart from the ids passed in. */
export function encodeCall(call: RpcCall, ids: { msgId: string; replyQueue: string; uniqueId: string }): Buffer {
  const msg: Record<string, unknown> = {
    method: call.method, args: call.args, version: call.version,
    _msg_id: ids.msgId, _reply_q: ids.replyQueue, _timeout: null, _unique_id: ids.uniqueId,
  };
  for (const [k, v] of Object.entries(call.context)) msg[`_context_${k}`] = v;
  return Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(msg) }));
}

export type RpcReply =
  | { readonly msgId: string; readonly kind: 'result'; readonly result: unknown }
  | { readonly msgId: string; readonly kind: 'failure'; readonly failureClass: string; readonly message: string }
  /** A heartbeat or a non-final part: no answer yet. */
  | { readonly msgId: string; readonly kind: 'pending' };

/** An oslo.messaging reply body → what it says; undefined when it is not one. Pure. */
export function decodeReply(body: Buffer): RpcReply | undefined {
  let envelope: unknown;
  try {
    envelope = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof envelope !== 'object' || envelope === null) return undefined;
  let msg = envelope as Record<string, unknown>;
  if (typeof msg['oslo.message'] === 'string') {
    try {
      msg = JSON.parse(msg['oslo.message']) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
  const msgId = msg['_msg_id'];
  if (typeof msgId !== 'string') return undefined;
  if (msg['failure'] !== null && msg['failure'] !== undefined) {
    let failureClass = 'RemoteError';
    let message = String(msg['failure']);
    try {
      const f = JSON.parse(String(msg['failure'])) as { class?: string; message?: string };
      failureClass = f.class ?? failureClass;
      message = f.message ?? message;
    } catch { /* keep the raw text */ }
    return { msgId, kind: 'failure', failureClass, message };
  }
  if (msg['ending'] === false || !('result' in msg)) return { msgId, kind: 'pending' };
  return { msgId, kind: 'result', result: msg['result'] };
}

export interface OsloRpcClientOptions {
  readonly brokers: readonly AmqpBroker[];
  /** `[DEFAULT] control_exchange`. */
  readonly exchange: string;
  readonly connectTimeoutMs: number;
  readonly tlsOptions?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: PortholeError) => void;
  timer: NodeJS.Timeout;
}

/**
 * One AMQP connection, opened on first use and again after it drops; one exclusive reply queue
 * on it. Calls are published `mandatory`, so a compute host that no one consumes for is known at
 * once (the broker returns the message) instead of after the whole RPC timeout.
 */
export class OsloRpcClient {
  readonly #options: OsloRpcClientOptions;
  #link: Promise<{ model: ChannelModel; channel: Channel; replyQueue: string }> | undefined;
  readonly #pending = new Map<string, Pending>();
  #closed = false;

  constructor(options: OsloRpcClientOptions) {
    this.#options = options;
  }

  /**
   * `call` to `<topic>.<server>`; resolves with the result.
   * @throws PortholeError PH_ERR_NOVA_RPC_UNAVAILABLE (broker down, no consumer, timeout) or
   *   PH_ERR_NOVA_RPC_FAILED (the server raised).
   */
  async call(topic: string, server: string, call: RpcCall, timeoutMs: number): Promise<unknown> {
    const link = await this.#connect();
    const msgId = randomUUID().replaceAll('-', '');
    const routingKey = `${topic}.${server}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(msgId);
        reject(new PortholeError('PH_ERR_NOVA_RPC_UNAVAILABLE', `no answer from ${routingKey} within ${Math.round(timeoutMs / 1000)} s ([DEFAULT] rpc_response_timeout)`));
      }, timeoutMs);
      this.#pending.set(msgId, { resolve, reject, timer });
      const body = encodeCall(call, { msgId, replyQueue: link.replyQueue, uniqueId: randomUUID().replaceAll('-', '') });
      try {
        link.channel.publish(this.#options.exchange, routingKey, body, {
          contentType: 'application/json', contentEncoding: 'utf-8', mandatory: true, messageId: msgId,
          expiration: String(timeoutMs), // like kombu: a call nobody took in time is dropped, not run late
        });
      } catch (err) { // the channel closed since #connect resolved
        this.#settle(msgId, (p) => p.reject(new PortholeError('PH_ERR_NOVA_RPC_UNAVAILABLE', `RabbitMQ: ${(err as Error).message}`)));
      }
    });
  }

  #settle(msgId: string, fn: (p: Pending) => void): void {
    const p = this.#pending.get(msgId);
    if (p === undefined) return;
    this.#pending.delete(msgId);
    clearTimeout(p.timer);
    fn(p);
  }

  #onReply(msg: ConsumeMessage | null): void {
    if (msg === null) return;
    const reply = decodeReply(msg.content);
    if (reply === undefined || reply.kind === 'pending') return;
    if (reply.kind === 'result') this.#settle(reply.msgId, (p) => p.resolve(reply.result));
    else this.#settle(reply.msgId, (p) => p.reject(new PortholeError('PH_ERR_NOVA_RPC_FAILED', `${reply.failureClass}: ${reply.message}`)));
  }

  #failAll(err: PortholeError): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, (p) => p.reject(err));
  }

  #connect(): Promise<{ model: ChannelModel; channel: Channel; replyQueue: string }> {
    if (this.#closed) return Promise.reject(new PortholeError('PH_ERR_SHUTTING_DOWN'));
    this.#link ??= this.#open().catch((err: unknown) => {
      this.#link = undefined; // next call tries again
      throw err;
    });
    return this.#link;
  }

  async #open(): Promise<{ model: ChannelModel; channel: Channel; replyQueue: string }> {
    const { connect } = await import('amqplib');
    const failures: string[] = [];
    for (const broker of this.#options.brokers) {
      let model: ChannelModel;
      try {
        model = await connect(broker.url, { timeout: this.#options.connectTimeoutMs, ...this.#options.tlsOptions });
      } catch (err) {
        failures.push(`${broker.display}: ${(err as Error).message}`);
        continue;
      }
      const lost = (why: string) => {
        this.#link = undefined;
        this.#failAll(new PortholeError('PH_ERR_NOVA_RPC_UNAVAILABLE', `RabbitMQ ${broker.display}: ${why}`));
      };
      let why = 'connection closed';
      model.on('error', (err: Error) => { why = err.message; }); // 'close' follows
      model.on('close', () => lost(why));
      try {
        const channel = await model.createChannel();
        // A channel error (e.g. 404: exchange `nova` does not exist, no nova-compute ever started
        // on this broker) closes the channel; the connection goes with it and the next call reopens.
        channel.on('error', (err: Error) => { why = err.message; });
        channel.on('close', () => { lost(why); void model.close().catch(() => undefined); });
        channel.on('return', (msg: ConsumeMessage) => {
          const id = String(msg.properties.messageId);
          this.#settle(id, (p) => p.reject(new PortholeError('PH_ERR_NOVA_RPC_UNAVAILABLE',
            `no nova-compute listens on ${msg.fields.routingKey} (the broker has no queue for it: compute service down, or the instance's host is unknown to it)`)));
        });
        const replyQueue = `reply_${randomUUID().replaceAll('-', '')}`;
        await channel.assertQueue(replyQueue, { exclusive: true, autoDelete: true, durable: false });
        await channel.consume(replyQueue, (m) => this.#onReply(m), { noAck: true });
        return { model, channel, replyQueue };
      } catch (err) {
        failures.push(`${broker.display}: ${(err as Error).message}`);
        await model.close().catch(() => undefined);
      }
    }
    throw new PortholeError('PH_ERR_NOVA_RPC_UNAVAILABLE', `RabbitMQ unreachable: ${failures.join('; ')}`);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#failAll(new PortholeError('PH_ERR_SHUTTING_DOWN'));
    const link = await this.#link?.catch(() => undefined);
    this.#link = undefined;
    await link?.model.close().catch(() => undefined);
  }
}
