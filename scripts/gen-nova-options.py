"""Generate data/nova-options.json: every option name Nova (Debian 12 python3-nova, Zed) and the
oslo libraries it uses accept, by group, from oslo-config-generator with Nova's own namespaces
(nova's etc/nova/nova-config-generator.conf). Nova mode accepts these without using them, and
warns with a did-you-mean about anything else.

Usage (Debian 12, python3-nova installed): /usr/bin/python3 scripts/gen-nova-options.py
"""
import json
import os
import subprocess
import sys
import tempfile

# Zed's etc/nova/nova-config-generator.conf. osprofiler needs python3-osprofiler installed (Debian's
# shipped nova.conf has [profiler]); a missing namespace is skipped by the generator with a warning.
NAMESPACES = ['nova.conf', 'oslo.limit', 'oslo.log', 'oslo.messaging', 'oslo.policy', 'oslo.privsep', 'oslo.service.periodic_task',
              'oslo.service.service', 'oslo.db', 'oslo.db.concurrency', 'oslo.cache', 'oslo.middleware', 'oslo.concurrency',
              'oslo.reports', 'oslo.versionedobjects', 'keystonemiddleware.auth_token', 'osprofiler', 'os_vif']

version = subprocess.run(['dpkg-query', '-W', '-f', '${Version}', 'python3-nova'], capture_output=True, text=True).stdout
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, 'opts.json')
    args = ['oslo-config-generator', '--format', 'json', '--output-file', out]
    for ns in NAMESPACES:
        args += ['--namespace', ns]
    subprocess.run(args, check=True)  # a namespace whose package is missing (osprofiler) is skipped with a warning
    with open(out) as f:
        generated = json.load(f)

groups = {}
multi = {}
for group, spec in generated['options'].items():
    names = groups.setdefault(group, set())
    for opt in spec['opts']:
        names.add(opt['name'])
        names.add(opt['dest'])  # keystoneauth names options 'auth-url'; the INI key is the dest, auth_url
        if opt['type'] == 'multi valued':
            multi.setdefault(group, set()).add(opt['name'])
        for dep in opt.get('deprecated_opts') or []:
            groups.setdefault(dep.get('group') or group, set()).add(dep['name'])

# keystonemiddleware registers the options of its auth plugin only at run time, for the plugin named by
# [keystone_authtoken] auth_type (password in every install guide); list them as keystoneauth does.
from keystoneauth1 import loading as ks_loading  # noqa: E402
for plugin in ('password', 'v3password'):
    for opt in ks_loading.get_auth_plugin_conf_options(plugin):
        groups.setdefault('keystone_authtoken', set()).add(opt.dest)

data = {
    'generated_from': f'python3-nova {version} (Debian 12) via oslo-config-generator; namespaces: {", ".join(NAMESPACES)}',
    'groups': {g: sorted(n) for g, n in sorted(groups.items())},
    'multi_valued': {g: sorted(n) for g, n in sorted(multi.items())},
}
target = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data', 'nova-options.json')
with open(target, 'w') as f:
    json.dump(data, f, indent=1, sort_keys=False)
    f.write('\n')
print(f'{target}: {sum(len(n) for n in groups.values())} options in {len(groups)} groups', file=sys.stderr)
