import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lookupFromNovaRow, parseNovaConnection } from '../../src/tokens/nova-source.js';
import { buildConfig, crossCheck, validateSources } from '../../src/config/load.js';
import { decodeReply, encodeCall, parseTransportUrl, redactUrl } from '../../src/nova/oslo-rpc.js';
import { instancePrimitive, validateConsolePortCall } from '../../src/nova/console-port-check.js';
import { logFilePath, openLogDestination } from '../../src/log.js';

test('Nova [database] connection: SQLAlchemy URL forms', () => {
  assert.deepEqual(parseNovaConnection('sqlite:////var/lib/nova/nova.sqlite'), { kind: 'sqlite', path: '/var/lib/nova/nova.sqlite' });
  assert.deepEqual(parseNovaConnection('sqlite:///nova.sqlite'), { kind: 'sqlite', path: 'nova.sqlite' });
  const my = parseNovaConnection('mysql+pymysql://nova:pw@db.example:3306/nova?charset=utf8');
  assert.equal(my.kind, 'mysql');
  assert.equal(my.kind === 'mysql' ? my.url.toString() : '', 'mysql://nova:pw@db.example:3306/nova');
  assert.equal(parseNovaConnection('postgresql+psycopg2://nova:pw@db/nova').kind, 'postgresql');
  assert.equal(parseNovaConnection('postgresql://nova@db/nova').kind, 'postgresql');
  assert.throws(() => parseNovaConnection('sqlite://'), /in memory cannot be shared with Nova/);
});

test('a Nova row means what Nova means: expires > now in whole seconds; instance row checked', () => {
  const row = {
    console_type: 'novnc', host: '10.0.0.5', port: 5901, internal_access_path: null, instance_uuid: 'u-1', expires: 1000,
    access_url_base: 'https://nova.example/vnc_auto.html', display_name: 'vm1', deleted: 0, vm_state: 'active', task_state: null,
    instance_id: 7, instance_host: 'compute-1', instance_node: 'compute-1.example',
  };
  const valid = lookupFromNovaRow(row, 999);
  assert.equal(valid.status, 'valid');
  assert.equal(valid.status === 'valid' && valid.connectInfo.accessUrlBase, 'https://nova.example/vnc_auto.html');
  assert.deepEqual(valid.status === 'valid' && valid.connectInfo.nova, { id: 7, host: 'compute-1', node: 'compute-1.example' }, 'what validate_console_port needs');
  assert.equal(valid.status === 'valid' && valid.connectInfo.who, undefined, 'no project column: nobody recorded');
  const withProject = lookupFromNovaRow({ ...row, project_id: 'proj-9' }, 999);
  assert.deepEqual(withProject.status === 'valid' && withProject.connectInfo.who, { project: 'proj-9' }, 'nova mode: the instance\'s project is who');
  assert.equal(lookupFromNovaRow(row, 1000).status, 'expired', 'dead from the second now == expires');
  assert.equal(lookupFromNovaRow(undefined, 0).status, 'unknown');
  assert.equal(lookupFromNovaRow({ ...row, deleted: null }, 0).status, 'revoked', 'no live instance row');
  assert.equal(lookupFromNovaRow({ ...row, task_state: 'migrating' }, 0).status, 'stale');
  assert.equal(lookupFromNovaRow({ ...row, vm_state: 'shelved_offloaded' }, 0).status, 'stale');
});

test('[porthole] token_source = nova needs [database] connection; a connection without nova mode is refused', () => {
  const check = (text: string) => crossCheck(buildConfig(validateSources([{ file: 't.conf', text }]).values, { uid: 0, home: '/root' }));
  assert.match(check('[porthole]\ntoken_source = nova\n')[0]?.message ?? '', /needs \[database\] connection/);
  assert.match(check('[database]\nconnection = sqlite:////x\n')[0]?.message ?? '', /Nova's tokens would not be read/);
  assert.equal(check('[porthole]\ntoken_source = nova\nnova_validate_console_port = false\n[database]\nconnection = sqlite:////x\n').length, 0);
  const rpc = '[porthole]\ntoken_source = nova\n[database]\nconnection = sqlite:////x\n';
  assert.match(check(rpc)[0]?.message ?? '', /needs \[DEFAULT\] transport_url .*nova_validate_console_port = false/, 'the port check is on unless switched off');
  assert.match(check(`${rpc}[DEFAULT]\ntransport_url = fake://\n`)[0]?.message ?? '', /needs a RabbitMQ URL/);
  assert.equal(check(`${rpc}[DEFAULT]\ntransport_url = rabbit://nova:pw@10.0.0.1:5672/\n`).length, 0);
});

test('oslo.messaging transport_url: several hosts, vhost, TLS port; passwords never in the display form', () => {
  assert.deepEqual(parseTransportUrl('rabbit://nova:s3cret@10.0.0.1:5672,nova:s3cret@10.0.0.2:5672,nova:s3cret@10.0.0.3/', false), [
    { url: 'amqp://nova:s3cret@10.0.0.1:5672?heartbeat=30', display: 'amqp://10.0.0.1:5672/' },
    { url: 'amqp://nova:s3cret@10.0.0.2:5672?heartbeat=30', display: 'amqp://10.0.0.2:5672/' },
    { url: 'amqp://nova:s3cret@10.0.0.3:5672?heartbeat=30', display: 'amqp://10.0.0.3:5672/' },
  ]);
  assert.deepEqual(parseTransportUrl('rabbit://u:p@mq/openstack', true), [{ url: 'amqps://u:p@mq:5671/openstack?heartbeat=30', display: 'amqps://mq:5671/openstack' }]);
  assert.throws(() => parseTransportUrl('kafka://x', false), /needs a RabbitMQ URL/);
  assert.equal(redactUrl('rabbit://nova:s3cret@a:5672,nova:s3cret@b:5672/'), 'rabbit://nova:***@a:5672,nova:***@b:5672/');
});

test('oslo.messaging envelope: the call nova-novncproxy makes, and the replies a server sends', () => {
  const info = {
    instance: 'vm1', instanceUuid: '81e6fd6f-0000-4000-8000-000000000001', protocol: 'vnc' as const, consoleType: 'novnc' as const,
    host: '10.0.0.5', port: 5901, accessUrlBase: 'http://x/', nova: { id: 7, host: 'compute-1', node: 'n1' },
  };
  const body = encodeCall(validateConsolePortCall(info, 'req-1'), { msgId: 'm1', replyQueue: 'reply_q', uniqueId: 'u1' });
  const envelope = JSON.parse(body.toString()) as Record<string, string>;
  assert.equal(envelope['oslo.version'], '2.0');
  const msg = JSON.parse(envelope['oslo.message'] ?? '') as Record<string, unknown>;
  assert.equal(msg['method'], 'validate_console_port');
  assert.equal(msg['version'], '6.0');
  assert.equal(msg['_msg_id'], 'm1');
  assert.equal(msg['_reply_q'], 'reply_q');
  assert.equal(msg['_context_is_admin'], true);
  const args = msg['args'] as Record<string, unknown>;
  assert.equal(args['port'], '5901', 'a string, as Nova compares str(port)');
  assert.equal(args['console_type'], 'novnc');
  assert.equal((args['instance'] as Record<string, unknown>)['nova_object.name'], 'Instance');
  const reply = (m: Record<string, unknown>) => Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(m) }));
  assert.deepEqual(decodeReply(reply({ result: true, failure: null, ending: true, _msg_id: 'm1' })), { msgId: 'm1', kind: 'result', result: true });
  assert.deepEqual(decodeReply(reply({ result: null, failure: JSON.stringify({ class: 'InstanceNotFound', message: 'gone', tb: ['secret'] }), ending: true, _msg_id: 'm1' })),
    { msgId: 'm1', kind: 'failure', failureClass: 'InstanceNotFound', message: 'gone' });
  assert.equal(decodeReply(Buffer.from('not json')), undefined);
  assert.equal(decodeReply(reply({ result: true })), undefined, 'no _msg_id: not a reply');
  assert.throws(() => instancePrimitive({ ...info, nova: undefined }), (e: Error & { code?: string }) => e.code === 'PH_ERR_TOKEN_REVOKED');
});

test('[DEFAULT] log_file / log_dir as oslo.log combines them', () => {
  assert.equal(logFilePath('', '', 'nova-novncproxy'), undefined, 'neither: standard error');
  assert.equal(logFilePath('', '/var/log/nova', 'nova-novncproxy'), '/var/log/nova/nova-novncproxy.log');
  assert.equal(logFilePath('proxy.log', '/var/log/nova', 'x'), '/var/log/nova/proxy.log');
  assert.equal(logFilePath('/srv/p.log', '/var/log/nova', 'x'), '/srv/p.log', 'an absolute log_file wins, as os.path.join');
  assert.equal(logFilePath('p.log', '', 'x'), 'p.log');
  assert.throws(() => openLogDestination('/nonexistent-dir/x.log'), /cannot append to \/nonexistent-dir\/x\.log/);
});
