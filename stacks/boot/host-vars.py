# host.yml's inventory (this host alone, in its role's group, named by its instance id) and its
# variables: the settings, the release, this host's address, and the environment's values.
# Run by the boot program (stacks/boot/main.sh) as: python3 - STATE ROLE INSTANCE ADDRESS
# VERSION SHA256 BUNDLE HOST_VARS_JSON; writes STATE/inventory.json and STATE/vars.json (0600).
import json, os, re, sys
state, role, instance, address, version, sha256, bundle, host_vars = sys.argv[1:9]
settings = {}
with open(os.path.join(state, 'settings.env'), encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
        line = line.rstrip('\n')
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        name, sep, value = line.partition('=')
        if not sep or not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', name):
            sys.exit('settings line %d is not NAME=value' % number)
        settings[name] = value
# The stream-token secret (api and streamer hosts): the same NAME=value lines, kept apart on disk.
secrets_env = os.path.join(state, 'secrets.env')
if os.path.exists(secrets_env):
    with open(secrets_env, encoding='utf-8') as f:
        for line in f.read().splitlines():
            name, _, value = line.partition('=')
            settings[name] = value
variables = json.loads(host_vars)
variables.update(release_version=version, release_sha256=sha256, release_tarball=bundle, release_tarball_on_host=True,
                 cadfleet_service_env_common=settings, cadfleet_private_address=address)
tls = os.path.join(state, 'tls.pem')
if os.path.exists(tls):
    blocks = re.findall(r'-----BEGIN [A-Z ]+-----[^-]+-----END [A-Z ]+-----\n?', open(tls, encoding='utf-8').read())
    certs = [b for b in blocks if 'CERTIFICATE' in b.split('\n', 1)[0]]
    keys = [b for b in blocks if 'PRIVATE KEY' in b.split('\n', 1)[0]]
    if not certs or len(keys) != 1:
        sys.exit('the certificate parameter must hold the certificate chain and one private key (PEM)')
    variables['nginx_lb_tls_cert'] = ''.join(b if b.endswith('\n') else b + '\n' for b in certs)
    variables['nginx_lb_tls_key'] = keys[0]
host = {'ansible_connection': 'local', 'ansible_python_interpreter': '/usr/bin/python3'}
old = os.umask(0o077)
with open(os.path.join(state, 'inventory.json'), 'w', encoding='utf-8') as f:
    json.dump({role: {'hosts': {instance: host}}}, f)
with open(os.path.join(state, 'vars.json'), 'w', encoding='utf-8') as f:
    json.dump(variables, f)
os.umask(old)
