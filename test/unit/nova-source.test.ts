import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lookupFromNovaRow, parseNovaConnection } from '../../src/tokens/nova-source.js';
import { buildConfig, crossCheck, validateSources } from '../../src/config/load.js';

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
  };
  const valid = lookupFromNovaRow(row, 999);
  assert.equal(valid.status, 'valid');
  assert.equal(valid.status === 'valid' && valid.connectInfo.accessUrlBase, 'https://nova.example/vnc_auto.html');
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
  assert.equal(check('[porthole]\ntoken_source = nova\n[database]\nconnection = sqlite:////x\n').length, 0);
});
