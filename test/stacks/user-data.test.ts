// The user-data and boot program of hosts booted the AWS way, rendered and then run for real
// with bash and python3 against a scratch root: `aws`, `curl`, `systemctl`, `dpkg`, `apt-get`
// and `ansible-playbook` are stubs that serve a fixture releases bucket and record what they
// were asked (ansible-playbook keeps a copy of the inventory and variables it was given).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAM_SECRET_FIRST_VERSION, configParameterName, lifecycleHostVars, streamSecretName } from '../../stacks/contract';
import { renderBootScript, renderBootUnit, renderUserData, shellQuote, withoutComments, type UserDataOptions } from '../../stacks/user-data';

let tmp: string;
let stubs: string;

const STUBS: Record<string, string> = {
  // aws [--endpoint-url URL] s3 cp s3://BUCKET/KEY DEST | ssm get-parameter ... | ec2 associate-address ...
  aws: `#!/bin/bash
echo "aws $*" >> "$CALLS"
if [ "$1" = --endpoint-url ]; then shift 2; fi
case "$1 $2" in
  "s3 cp")
    [ -z "$S3_DENY" ] || { echo "fatal error: An error occurred (403) when calling the HeadObject operation: Forbidden" >&2; exit 1; }
    key=$(printf '%s' "$3" | sed -E 's#^s3://[^/]+/##')
    [ -f "$BUCKET_DIR/$key" ] || { echo "fatal error: An error occurred (404) when calling the HeadObject operation: Key \\"$key\\" does not exist" >&2; exit 1; }
    if [ "$4" = - ]; then cat "$BUCKET_DIR/$key"; else cp "$BUCKET_DIR/$key" "$4"; fi ;;
  "ssm get-parameter")
    case "$4" in
      */tls.pem) [ -n "$TLS_VALUE" ] || exit 254; printf '%s\\n' "$TLS_VALUE" ;;
      *) [ -n "$SSM_MISSING" ] && { echo "An error occurred (ParameterNotFound) when calling the GetParameter operation" >&2; exit 254; }; printf '%s\\n' "$SSM_VALUE" ;;
    esac ;;
  "ec2 associate-address") echo '{"AssociationId": "eipassoc-1"}' ;;
  "autoscaling set-instance-health") ;;
  # A secret as files in $SECRET_DIR: current, previous (absent: no such version).
  "secretsmanager get-secret-value")
    [ -z "$SECRET_DENY" ] || { echo "An error occurred (AccessDeniedException) when calling the GetSecretValue operation: not authorized" >&2; exit 254; }
    stage=current; case "$*" in *"--version-stage AWSPREVIOUS"*) stage=previous ;; esac
    [ -f "$SECRET_DIR/$stage" ] || { echo "An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: Secrets Manager can't find the specified secret value for staging label: AWSCURRENT" >&2; exit 254; }
    cat "$SECRET_DIR/$stage"; echo ;;
  "secretsmanager put-secret-value")
    file=$(printf '%s' "$*" | sed -E 's#.*--secret-string file://([^ ]+).*#\\1#')
    cp "$file" "$SECRET_DIR/put-seen"
    # Another host's value under the same request token got there first.
    [ ! -f "$SECRET_DIR/current" ] || { echo "An error occurred (ResourceExistsException) when calling the PutSecretValue operation: You can't modify an existing version" >&2; exit 254; }
    cp "$file" "$SECRET_DIR/current" ;;
  *) echo "aws stub: unexpected $*" >&2; exit 2 ;;
esac
`,
  curl: `#!/bin/bash
echo "curl $*" >> "$CALLS"
out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in -o) out=$2; shift 2 ;; -X|-H|-m) shift 2 ;; -*) shift ;; *) url=$1; shift ;; esac
done
case "$url" in
  */latest/api/token) body=imds-token ;;
  */meta-data/instance-id) body=i-0123456789abcdef0 ;;
  */meta-data/local-ipv4) body=10.40.128.7 ;;
  *truststore.pki.rds.amazonaws.com*) body="-----BEGIN CERTIFICATE-----" ;;
  *amazon-ssm-agent.deb) body=deb ;;
  *) echo "curl stub: unexpected $url" >&2; exit 22 ;;
esac
if [ -n "$out" ]; then printf '%s' "$body" > "$out"; else printf '%s' "$body"; fi
`,
  systemctl: `#!/bin/bash
echo "systemctl $*" >> "$CALLS"
[ "$1" = is-enabled ] && exit 1
exit 0
`,
  // DPKG_LOCKED: a counter file; dpkg finds its lock held (apt-daily at first boot) twice.
  dpkg: `#!/bin/bash
echo "dpkg $*" >> "$CALLS"
if [ -n "$DPKG_LOCKED" ]; then
  n=$(cat "$DPKG_LOCKED" 2>/dev/null || echo 0)
  if [ "$n" -lt 2 ]; then echo $((n + 1)) > "$DPKG_LOCKED"; echo "dpkg: error: dpkg frontend lock was locked by another process with pid 712" >&2; exit 2; fi
fi
`,
  // Accounts and ownership belong to the host, not to the machine running the tests.
  getent: '#!/bin/bash\necho "getent $*" >> "$CALLS"\nexit 2\n',
  useradd: '#!/bin/bash\necho "useradd $*" >> "$CALLS"\n',
  chown: '#!/bin/bash\necho "chown $*" >> "$CALLS"\n',
  chgrp: '#!/bin/bash\necho "chgrp $*" >> "$CALLS"\n',
  'apt-get': '#!/bin/bash\necho "apt-get $*" >> "$CALLS"\n',
  // Runs where the boot program put the release's Ansible content; keeps what it was given.
  'ansible-playbook': `#!/bin/bash
echo "ansible-playbook $*" >> "$CALLS"
echo "cwd=$PWD config=$ANSIBLE_CONFIG" >> "$CALLS"
[ -f playbooks/host.yml ] || { echo "no playbooks/host.yml in $PWD" >&2; exit 9; }
cp "$2" "$CAPTURE/inventory.json"; cp "\${4#@}" "$CAPTURE/vars.json"
exit "\${ANSIBLE_EXIT:-0}"
`,
};

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-user-data-'));
  stubs = path.join(tmp, 'bin');
  fs.mkdirSync(stubs);
  for (const [name, body] of Object.entries(STUBS)) fs.writeFileSync(path.join(stubs, name), body, { mode: 0o755 });
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/**
 * A releases bucket on disk laid out as cli/src/release/bundle.ts builds it: the bundle wraps
 * everything in cadfleet-<version>/, and <bundle>.SHA256SUMS sits beside it.
 */
function bucketWith(version: string, options: { pointer?: string | null; corrupt?: boolean } = {}): string {
  const bucket = fs.mkdtempSync(path.join(tmp, 'bucket-'));
  const tree = path.join(bucket, 'build', `cadfleet-${version}`);
  fs.mkdirSync(path.join(tree, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'systemd'));
  fs.writeFileSync(path.join(tree, 'bin', 'cadfleet'), '#!/bin/sh\necho cadfleet\n', { mode: 0o755 });
  for (const role of ['api', 'worker', 'streamer', 'lb']) fs.writeFileSync(path.join(tree, 'systemd', `cadfleet-${role}.service`), `[Service]\nExecStart=/opt/cadfleet/current/bin/cadfleet ${role}\n`);
  fs.mkdirSync(path.join(tree, 'ansible', 'playbooks'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'ansible', 'playbooks', 'host.yml'), '# the release\'s own playbook\n');
  fs.writeFileSync(path.join(tree, 'ansible', 'pull.cfg'), '[defaults]\n');
  fs.mkdirSync(path.join(bucket, 'releases'));
  const name = `cadfleet-${version}-linux-x64.tar.gz`;
  const tarball = path.join(bucket, 'releases', name);
  execFileSync('tar', ['-czf', tarball, '-C', path.join(bucket, 'build'), `cadfleet-${version}`]);
  execFileSync('sh', ['-c', 'cd "$1" && sha256sum "$2" > "$2.SHA256SUMS"', 'sh', path.join(bucket, 'releases'), name]);
  if (options.corrupt) fs.appendFileSync(tarball, Buffer.from([0]));
  fs.rmSync(path.join(bucket, 'build'), { recursive: true });
  if (options.pointer !== null) fs.writeFileSync(path.join(bucket, 'releases', 'current'), options.pointer ?? `${version}\n`);
  return bucket;
}

interface Boot {
  code: number;
  output: string;
  calls: string[];
  root: string;
  /** What ansible-playbook was given, when it ran. */
  inventory?: Record<string, { hosts: Record<string, Record<string, string>> }>;
  vars?: Record<string, unknown>;
}

function boot(options: Partial<UserDataOptions> & Pick<UserDataOptions, 'role'>, bucket: string, root?: string, extraEnv: Record<string, string> = {}): Promise<Boot> {
  const hostRoot = root ?? fs.mkdtempSync(path.join(tmp, 'host-'));
  const capture = fs.mkdtempSync(path.join(tmp, 'capture-'));
  const script = renderBootScript({
    environment: 'staging',
    region: 'us-east-1',
    releasesBucket: 'cadfleet-staging-releases-x',
    configParameter: '/cadfleet/staging/app.env',
    root: hostRoot,
    retryDelaySeconds: 0,
    ...options,
  });
  const calls = path.join(hostRoot, 'calls.log');
  fs.writeFileSync(calls, '');
  const file = path.join(hostRoot, 'user-data.sh');
  fs.writeFileSync(file, script);
  return new Promise((resolve) => {
    // As cloud-init does: a file, no standard input (bash reads ~/.bashrc when stdin is a socket).
    const child = spawn('bash', [file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: `${stubs}:${process.env.PATH}`,
        CALLS: calls,
        BUCKET_DIR: bucket,
        CAPTURE: capture,
        SSM_VALUE: 'CADFLEET_ENV=staging\nCADFLEET_REDIS_URL=rediss://cadfleet-staging-app@master.example:6379',
        ...extraEnv,
      },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => {
      const captured = (name: string): unknown => (fs.existsSync(path.join(capture, name)) ? JSON.parse(fs.readFileSync(path.join(capture, name), 'utf8')) : undefined);
      resolve({ code: code ?? 1, output, calls: fs.readFileSync(calls, 'utf8').trim().split('\n'), root: hostRoot, inventory: captured('inventory.json') as Boot['inventory'], vars: captured('vars.json') as Boot['vars'] });
    });
  });
}

const read = (file: string): string => fs.readFileSync(file, 'utf8');


const TLS_PEM = [
  '-----BEGIN CERTIFICATE-----\nTGVhZg==\n-----END CERTIFICATE-----',
  '-----BEGIN CERTIFICATE-----\nSW50ZXJtZWRpYXRl\n-----END CERTIFICATE-----',
  '-----BEGIN PRIVATE KEY-----\nS2V5\n-----END PRIVATE KEY-----',
].join('\n');

describe('renderUserData', () => {
  it('renders scripts that bash parses and shellcheck passes, for every role, within EC2\'s 16 KB of user-data', () => {
    let shellcheck: string;
    try {
      shellcheck = execFileSync('sh', ['-c', 'command -v shellcheck'], { encoding: 'utf8' }).trim();
    } catch {
      throw new Error('shellcheck is not installed: apt-get install shellcheck (scripts/setup.sh installs it)');
    }
    for (const role of ['lb', 'api', 'worker', 'streamer'] as const) {
      const options = { role, environment: 'staging', region: 'us-east-1', releasesBucket: 'b', configParameter: '/p', installSsmAgent: true, elasticIpAllocationId: role === 'lb' ? 'eipalloc-1' : undefined, streamTokenSecret: 'cadfleet/staging/stream-token', hostVars: { cadfleet_provider: 'aws' } };
      for (const script of [renderUserData(options), renderBootScript(options)]) {
        execFileSync('bash', ['-n'], { input: script });
        execFileSync(shellcheck, ['--shell=bash', '--severity=style', '-'], { input: script });
      }
      expect(Buffer.byteLength(renderUserData(options)), role).toBeLessThan(16 * 1024);
    }
  });

  it("stays within EC2's 16 KB for every role with every value at its longest (the stack renders it with tokens, resolved only at apply)", () => {
    // The longest each value the stacks put in can be: a 16-character environment, the longest
    // region name, a 63-character bucket, SSM's 1,011-character parameter name, a 253-character
    // domain, the longest group name the environment makes.
    const env = 'abcdefghijklmnop';
    const sizes: Record<string, number> = {};
    for (const role of ['lb', 'api', 'worker', 'streamer'] as const) {
      const script = renderUserData({
        role,
        environment: env,
        region: 'ap-southeast-4',
        releasesBucket: `cadfleet-${env}-releases-${'0'.repeat(63 - `cadfleet-${env}-releases-`.length)}`,
        configParameter: configParameterName(env),
        installSsmAgent: true,
        elasticIpAllocationId: role === 'lb' ? 'eipalloc-0123456789abcdef0' : undefined,
        tlsCertificateParameter: role === 'lb' ? `/${'p'.repeat(1010)}` : undefined,
        streamTokenSecret: streamSecretName(env),
        hostVars: {
          cadfleet_provider: 'aws',
          cadfleet_environment: env,
          ...lifecycleHostVars(role, `cadfleet-${env}-${role}`),
          firewall_trusted_sources: ['172.31.240.0/20'],
          common_unattended_upgrades: true,
          nginx_lb_tls_self_signed: true,
          nginx_lb_server_name: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
          nginx_lb_acme_domain: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
        },
      });
      sizes[role] = Buffer.byteLength(script);
    }
    console.log(`user-data at the longest values: ${Object.entries(sizes).map(([r, n]) => `${r} ${n} bytes`).join(', ')} (EC2 takes 16,384)`);
    for (const [role, bytes] of Object.entries(sizes)) expect(bytes, role).toBeLessThan(16 * 1024);
  });

  it('never writes Terraform template syntax, so values are the only interpolations', () => {
    for (const role of ['lb', 'api', 'worker', 'streamer'] as const) {
      const script = renderUserData({ role, environment: 'staging', region: 'us-east-1', releasesBucket: 'b', elasticIpAllocationId: role === 'lb' ? 'eipalloc-1' : undefined, streamTokenSecret: 's' });
      expect(script, role).not.toContain('${');
      expect(script, role).not.toContain('%{');
    }
  });

  it('is the files of stacks/boot/ (their comment lines left out), each in the program of the roles that need it', () => {
    const dir = path.join(__dirname, '../../stacks/boot');
    const files = Object.fromEntries(fs.readdirSync(dir).filter((f) => f !== 'README.md').map((f) => [f, read(path.join(dir, f))]));
    expect(Object.keys(files).sort()).toEqual(['elastic-ip.sh', 'host-vars.py', 'lib.sh', 'main.sh', 'release.sh', 'stream-secret.sh']);
    // The Python helper goes in a quoted here-document that ends at a line "PY".
    expect(files['host-vars.py']!.split('\n')).not.toContain('PY');
    execFileSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { input: files['host-vars.py'] });
    const program = (role: 'lb' | 'api' | 'worker' | 'streamer') =>
      renderBootScript({ role, environment: 'staging', region: 'us-east-1', releasesBucket: 'b', elasticIpAllocationId: role === 'lb' ? 'eipalloc-1' : undefined, streamTokenSecret: 's' });
    const expected: Record<string, string[]> = {
      lb: ['lib.sh', 'elastic-ip.sh', 'release.sh', 'host-vars.py', 'main.sh'],
      api: ['lib.sh', 'stream-secret.sh', 'release.sh', 'host-vars.py', 'main.sh'],
      worker: ['lib.sh', 'release.sh', 'host-vars.py', 'main.sh'],
      streamer: ['lib.sh', 'stream-secret.sh', 'release.sh', 'host-vars.py', 'main.sh'],
    };
    for (const [role, names] of Object.entries(expected)) {
      const text = program(role as 'lb');
      const at = names.map((n) => text.indexOf(withoutComments(files[n]!)));
      expect(at.every((i) => i > 0), `${role}: ${names.join(', ')} at ${at.join(', ')}`).toBe(true);
      expect([...at].sort((a, b) => a - b), role).toEqual(at);
      for (const other of Object.keys(files).filter((n) => !names.includes(n))) expect(text.includes(withoutComments(files[other]!)), `${role} carries ${other}`).toBe(false);
    }
  });

  it('quotes values for the shell', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    const script = renderUserData({ role: 'api', environment: 'staging', region: 'us-east-1', releasesBucket: "x'; rm -rf /; '" });
    expect(script).toContain(`readonly RELEASES_BUCKET='x'\\''; rm -rf /; '\\'''`);
  });

  it('refuses options that would break the script', () => {
    expect(() => renderUserData({ role: 'api', environment: 'a\nb', region: 'r', releasesBucket: 'b' })).toThrow('`environment` must be one line, got "a\\nb"');
    expect(() => renderUserData({ role: 'api', environment: 'e', region: 'r', releasesBucket: 'b', root: 'relative' })).toThrow('`root` must be empty or an absolute path');
    expect(() => renderUserData({ role: 'api', environment: 'e', region: 'r', releasesBucket: 'b', restartSeconds: -1 })).toThrow('`restartSeconds` must be a whole number of seconds');
  });

  it('installs the boot program and a unit that runs it until it succeeds once, then starts it without waiting', async () => {
    const root = fs.mkdtempSync(path.join(tmp, 'cloud-init-'));
    const calls = path.join(root, 'calls.log');
    const options = { role: 'api', environment: 'staging', region: 'us-east-1', releasesBucket: 'b', root, restartSeconds: 7 } as const;
    execFileSync('bash', ['-c', renderUserData(options)], { env: { PATH: `${stubs}:${process.env.PATH}`, CALLS: calls } });
    expect(read(path.join(root, 'usr/local/sbin/cadfleet-boot'))).toBe(renderBootScript(options));
    expect(fs.statSync(path.join(root, 'usr/local/sbin/cadfleet-boot')).mode & 0o777).toBe(0o755);
    const unit = read(path.join(root, 'etc/systemd/system/cadfleet-boot.service'));
    expect(unit).toBe(renderBootUnit(options));
    for (const line of ['Type=oneshot', 'Restart=on-failure', 'RestartSec=7', 'StartLimitIntervalSec=0', 'ConditionPathExists=!/var/lib/cadfleet-boot/done', 'ExecStart=/usr/local/sbin/cadfleet-boot']) expect(unit).toContain(`${line}\n`);
    expect(read(calls).trim().split('\n')).toEqual(['systemctl daemon-reload', 'systemctl enable cadfleet-boot.service', 'systemctl start --no-block cadfleet-boot.service']);
  });
});

describe('the boot program, run', () => {
  it('reads the settings, installs nothing itself and hands host.yml of the release the pointer names everything it needs', async () => {
    const bucket = bucketWith('1.4.0');
    const hostVars = { cadfleet_provider: 'aws', firewall_trusted_sources: ['10.40.0.0/16'] };
    const result = await boot({ role: 'worker', installSsmAgent: true, hostVars }, bucket);
    expect(result.code, result.output).toBe(0);
    expect(result.calls).toEqual(
      expect.arrayContaining([
        'aws ssm get-parameter --name /cadfleet/staging/app.env --with-decryption --query Parameter.Value --output text',
        `aws s3 cp s3://cadfleet-staging-releases-x/releases/current ${path.join(result.root, 'var/lib/cadfleet-boot/pointer')} --only-show-errors`,
      ]),
    );
    expect(result.calls.some((c) => c.startsWith('aws s3 cp s3://cadfleet-staging-releases-x/releases/cadfleet-1.4.0-linux-x64.tar.gz '))).toBe(true);
    expect(result.calls.some((c) => c.startsWith('aws s3 cp s3://cadfleet-staging-releases-x/releases/cadfleet-1.4.0-linux-x64.tar.gz.SHA256SUMS '))).toBe(true);
    expect(result.calls).toContain('curl -fsS -o ' + path.join(result.root, 'etc/cadfleet/rds-ca.pem') + ' https://truststore.pki.rds.amazonaws.com/us-east-1/us-east-1-bundle.pem');
    // The SSM agent, which Debian's AMIs lack; no unit of the role: host.yml's roles start it.
    expect(result.calls.filter((c) => c.startsWith('dpkg -i'))).toHaveLength(1);
    expect(result.calls.filter((c) => c.startsWith('systemctl'))).toEqual(['systemctl is-enabled --quiet amazon-ssm-agent', 'systemctl enable --now amazon-ssm-agent']);
    // host.yml from the release's own Ansible content, with the pull settings beside it.
    const run = result.calls.find((c) => c.startsWith('ansible-playbook '))!;
    const state = path.join(result.root, 'var/lib/cadfleet-boot');
    expect(run).toBe(`ansible-playbook -i ${state}/inventory.json -e @${state}/vars.json playbooks/host.yml`);
    expect(result.calls).toContain(`cwd=${state}/release/cadfleet-1.4.0/ansible config=${state}/release/cadfleet-1.4.0/ansible/pull.cfg`);
    expect(result.inventory).toEqual({ worker: { hosts: { 'i-0123456789abcdef0': { ansible_connection: 'local', ansible_python_interpreter: '/usr/bin/python3' } } } });
    const sha = read(path.join(bucket, 'releases/cadfleet-1.4.0-linux-x64.tar.gz.SHA256SUMS')).split(' ')[0];
    expect(result.vars).toEqual({
      ...hostVars,
      release_version: '1.4.0',
      release_sha256: sha,
      release_tarball: `${state}/release/cadfleet-1.4.0-linux-x64.tar.gz`,
      release_tarball_on_host: true,
      cadfleet_private_address: '10.40.128.7',
      cadfleet_service_env_common: {
        CADFLEET_ENV: 'staging',
        CADFLEET_REDIS_URL: 'rediss://cadfleet-staging-app@master.example:6379',
        CADFLEET_DATABASE_CA_FILE: '/etc/cadfleet/rds-ca.pem',
      },
    });
    // Done: marked so that the unit never runs again, and nothing it fetched is left behind.
    expect(fs.existsSync(path.join(state, 'done'))).toBe(true);
    expect(fs.readdirSync(state).sort()).toEqual(['done', 'inventory.json', 'pointer', 'pointer.err', 'settings.env']);
    expect(fs.statSync(state).mode & 0o777).toBe(0o700);
    expect(read(path.join(result.root, 'var/log/cadfleet-bootstrap.log'))).toContain('done: release 1.4.0, worker configured');
  });

  it('waits for the first release (exit 75: systemd runs it again) when the pointer does not exist yet', async () => {
    const result = await boot({ role: 'api', restartSeconds: 20 }, bucketWith('1.0.0', { pointer: null }));
    expect(result.code, result.output).toBe(75);
    expect(result.output).toContain('no release at s3://cadfleet-staging-releases-x/releases/current yet (cadfleet upgrade publishes the first); trying again in 20 s');
    expect(result.calls.some((c) => c.startsWith('ansible-playbook'))).toBe(false);
    expect(fs.existsSync(path.join(result.root, 'var/lib/cadfleet-boot/done'))).toBe(false);
  });

  it('tells an S3 error from a missing pointer: access denied is logged as such, not as "no release yet"', async () => {
    const result = await boot({ role: 'api' }, bucketWith('1.0.0'), undefined, { S3_DENY: '1' });
    expect(result.code).toBe(75);
    expect(result.output).toContain('cannot read s3://cadfleet-staging-releases-x/releases/current: fatal error: An error occurred (403) when calling the HeadObject operation: Forbidden');
    expect(result.output).not.toContain('yet (cadfleet upgrade');
  });

  describe('the stream-token secret', () => {
    const SECRET = 'cadfleet/staging/stream-token';
    const secretDir = (values: { current?: string; previous?: string } = {}): string => {
      const dir = fs.mkdtempSync(path.join(tmp, 'secret-'));
      if (values.current) fs.writeFileSync(path.join(dir, 'current'), values.current);
      if (values.previous) fs.writeFileSync(path.join(dir, 'previous'), values.previous);
      return dir;
    };
    const state = (r: Boot): string => path.join(r.root, 'var/lib/cadfleet-boot');
    const env = (r: Boot): Record<string, string> => r.vars!.cadfleet_service_env_common as Record<string, string>;

    it('gives a secret with no value yet its first one, under the fixed request token, and hands it to host.yml without leaving it on disk', async () => {
      const dir = secretDir();
      const result = await boot({ role: 'api', streamTokenSecret: SECRET }, bucketWith('1.4.0'), undefined, { SECRET_DIR: dir });
      expect(result.code, result.output).toBe(0);
      const created = read(path.join(dir, 'current'));
      expect(created).toMatch(/^[A-Za-z0-9_-]{64}$/);
      expect(env(result).CADFLEET_STREAM_TOKEN_SECRET).toBe(created);
      expect(env(result).CADFLEET_STREAM_TOKEN_SECRET_PREVIOUS).toBeUndefined();
      const put = result.calls.find((c) => c.startsWith('aws secretsmanager put-secret-value'))!;
      expect(put).toBe(`aws secretsmanager put-secret-value --secret-id ${SECRET} --client-request-token ${STREAM_SECRET_FIRST_VERSION} --secret-string file://${state(result)}/new-secret`);
      // The value never is an argument, a log line or a file left behind.
      for (const text of [...result.calls, result.output, read(path.join(result.root, 'var/log/cadfleet-bootstrap.log'))]) expect(text).not.toContain(created);
      expect(fs.readdirSync(state(result)).sort()).toEqual(['done', 'inventory.json', 'pointer', 'pointer.err', 'settings.env']);
      expect(result.output).toContain(`the stream-token secret ${SECRET} has no value yet: creating one`);
    });

    it('takes the value another host put first (its own refused), and the previous one after a rotation', async () => {
      const dir = secretDir({ current: 'c'.repeat(40), previous: 'p'.repeat(40) });
      const result = await boot({ role: 'streamer', streamTokenSecret: SECRET }, bucketWith('1.4.0'), undefined, { SECRET_DIR: dir });
      expect(result.code, result.output).toBe(0);
      expect(result.calls.some((c) => c.startsWith('aws secretsmanager put-secret-value'))).toBe(false);
      expect(env(result)).toMatchObject({ CADFLEET_STREAM_TOKEN_SECRET: 'c'.repeat(40), CADFLEET_STREAM_TOKEN_SECRET_PREVIOUS: 'p'.repeat(40) });

      // Two hosts at once: this one found none, but another's put (same token) won.
      const raced = secretDir();
      const racing = path.join(tmp, 'racing-bin');
      fs.mkdirSync(racing, { recursive: true });
      // The first read finds nothing; by the put, the other host's value is there.
      fs.writeFileSync(path.join(racing, 'aws'), `#!/bin/bash
if [ "$1 $2" = "secretsmanager put-secret-value" ]; then printf '%s' "${'o'.repeat(48)}" > "$SECRET_DIR/current"; fi
exec ${path.join(stubs, 'aws')} "$@"
`, { mode: 0o755 });
      const second = await boot({ role: 'api', streamTokenSecret: SECRET }, bucketWith('1.4.0'), undefined, { SECRET_DIR: raced, PATH: `${racing}:${stubs}:${process.env.PATH}` });
      expect(second.code, second.output).toBe(0);
      expect(second.output).toContain('another host gave it a value first (An error occurred (ResourceExistsException)');
      expect(env(second).CADFLEET_STREAM_TOKEN_SECRET).toBe('o'.repeat(48));
    });

    it('is read by api and streamer hosts only', async () => {
      for (const role of ['worker', 'lb'] as const) {
        const script = renderBootScript({ role, environment: 'staging', region: 'us-east-1', releasesBucket: 'b', streamTokenSecret: SECRET });
        expect(script, role).not.toContain('secretsmanager');
        expect(script, role).not.toContain(SECRET);
      }
      const result = await boot({ role: 'worker', streamTokenSecret: SECRET }, bucketWith('1.4.0'), undefined, { SECRET_DIR: secretDir({ current: 'c'.repeat(40) }) });
      expect(result.code, result.output).toBe(0);
      expect(env(result).CADFLEET_STREAM_TOKEN_SECRET).toBeUndefined();
    });

    it('keeps trying when it may not read the secret, saying so; and refuses a value too short to sign with', async () => {
      const denied = await boot({ role: 'api', streamTokenSecret: SECRET }, bucketWith('1.4.0'), undefined, { SECRET_DIR: secretDir(), SECRET_DENY: '1' });
      expect(denied.code).toBe(75);
      expect(denied.output).toContain(`cannot read the stream-token secret ${SECRET}: An error occurred (AccessDeniedException)`);
      expect(denied.calls.some((c) => c.startsWith('aws secretsmanager put-secret-value'))).toBe(false);
      const short = await boot({ role: 'api', streamTokenSecret: SECRET }, bucketWith('1.4.0'), undefined, { SECRET_DIR: secretDir({ current: 'short' }) });
      expect(short.code).toBe(1);
      expect(short.output).toContain('error: the stream-token secret is shorter than 32 characters');
      expect(short.calls.some((c) => c.startsWith('ansible-playbook'))).toBe(false);
    });
  });

  it('installs the SSM agent before anything else, through a held dpkg lock: a host whose boot fails later is reachable meanwhile', async () => {
    const lock = path.join(fs.mkdtempSync(path.join(tmp, 'dpkg-')), 'count');
    const result = await boot({ role: 'worker', installSsmAgent: true }, bucketWith('1.0.0'), undefined, { DPKG_LOCKED: lock, SSM_MISSING: '1' });
    // Its settings are not there yet: the boot stops, to run again (exit 75)...
    expect(result.code, result.output).toBe(75);
    // ...with the agent installed (the lock held twice, then free) and running.
    expect(result.calls.filter((c) => c.startsWith('dpkg -i'))).toHaveLength(3);
    expect(result.calls).toContain('systemctl enable --now amazon-ssm-agent');
    // First of all: before the metadata service, the settings, the tools.
    const curls = result.calls.filter((c) => c.startsWith('curl'));
    expect(curls[0]).toMatch(/amazon-ssm-agent\.deb/);
    expect(result.calls.indexOf('systemctl enable --now amazon-ssm-agent')).toBeLessThan(result.calls.findIndex((c) => c.includes('/latest/api/token')));
  });

  it('keeps trying while its settings parameter does not exist', async () => {
    const result = await boot({ role: 'streamer' }, bucketWith('1.0.0'), undefined, { SSM_MISSING: '1' });
    expect(result.code).toBe(75);
    expect(result.output).toContain('cannot read SSM parameter /cadfleet/staging/app.env (not there yet, or not allowed); trying again in 20 s');
    expect(result.calls.some((c) => c.includes('linux-x64.tar.gz'))).toBe(false);
  });

  it('reports the instance unhealthy once its boot has failed for the set time, so that its group replaces it', async () => {
    const bucket = bucketWith('1.0.0');
    const report = 'aws autoscaling set-instance-health --instance-id i-0123456789abcdef0 --health-status Unhealthy --no-should-respect-grace-period';
    const first = await boot({ role: 'worker', unhealthyAfterSeconds: 600 }, bucket, undefined, { SSM_MISSING: '1' });
    expect(first.code).toBe(75);
    expect(first.calls).not.toContain(report);
    const state = path.join(first.root, 'var/lib/cadfleet-boot');
    // Failing since 700 s ago: past the limit.
    fs.writeFileSync(path.join(state, 'failing-since'), `${Math.floor(Date.now() / 1000) - 700}\n`);
    const again = await boot({ role: 'worker', unhealthyAfterSeconds: 600 }, bucket, first.root, { SSM_MISSING: '1' });
    expect(again.code).toBe(75);
    expect(again.calls).toContain(report);
    expect(again.output).toMatch(/the boot has failed for 7\d\d s: reporting i-0123456789abcdef0 unhealthy/);
    // Once it boots, the count starts again.
    const ok = await boot({ role: 'worker', unhealthyAfterSeconds: 600 }, bucket, first.root);
    expect(ok.code, ok.output).toBe(0);
    expect(fs.existsSync(path.join(state, 'failing-since'))).toBe(false);
  });

  it('does not report itself unhealthy while it waits for the first release, nor where there is no group (0)', async () => {
    for (const [options, bucket] of [[{ unhealthyAfterSeconds: 1 }, bucketWith('1.0.0', { pointer: null })], [{ unhealthyAfterSeconds: 0 }, bucketWith('1.0.0', { corrupt: true })]] as const) {
      const root = fs.mkdtempSync(path.join(tmp, 'host-'));
      fs.mkdirSync(path.join(root, 'var/lib/cadfleet-boot'), { recursive: true });
      fs.writeFileSync(path.join(root, 'var/lib/cadfleet-boot/failing-since'), '1\n');
      const result = await boot({ role: 'api', ...options }, bucket, root);
      expect(result.code).not.toBe(0);
      expect(result.calls.some((c) => c.startsWith('aws autoscaling'))).toBe(false);
    }
  });

  it.each(['../../../etc', '.hidden', '1.0;reboot'])('refuses a pointer that is not a version name: %s', async (pointer) => {
    const result = await boot({ role: 'api' }, bucketWith('1.0.0', { pointer: `${pointer}\n` }));
    expect(result.code).toBe(75);
    expect(result.output).toContain(`the release pointer holds '${pointer}', which is not a version name`);
    expect(result.calls.some((c) => c.startsWith('ansible-playbook'))).toBe(false);
  });

  it('refuses a bundle that does not match its SHA256SUMS', async () => {
    const result = await boot({ role: 'streamer' }, bucketWith('2.0.0', { corrupt: true }));
    expect(result.code).toBe(1);
    expect(result.output).toContain('release 2.0.0 does not match its SHA256SUMS');
    expect(result.calls.some((c) => c.startsWith('ansible-playbook'))).toBe(false);
  });

  it('fails (and runs again later) when host.yml fails, without marking the host done', async () => {
    const result = await boot({ role: 'worker' }, bucketWith('1.0.0'), undefined, { ANSIBLE_EXIT: '2' });
    expect(result.code).toBe(1);
    expect(result.output).toContain('host.yml of release 1.0.0 failed (its output is above)');
    expect(fs.existsSync(path.join(result.root, 'var/lib/cadfleet-boot/done'))).toBe(false);
  });

  it('on the load balancer: claims the Elastic IP, and hands host.yml the certificate chain and key from SSM', async () => {
    const result = await boot({ role: 'lb', elasticIpAllocationId: 'eipalloc-0abc', tlsCertificateParameter: '/cadfleet/staging/lb/tls.pem' }, bucketWith('1.0.0'), undefined, { TLS_VALUE: TLS_PEM });
    expect(result.code, result.output).toBe(0);
    expect(result.calls).toContain('aws ec2 associate-address --allocation-id eipalloc-0abc --instance-id i-0123456789abcdef0 --allow-reassociation');
    expect(result.calls).toContain('aws ssm get-parameter --name /cadfleet/staging/lb/tls.pem --with-decryption --query Parameter.Value --output text');
    expect(result.calls.some((c) => c.includes('truststore.pki.rds.amazonaws.com'))).toBe(false);
    expect(result.inventory).toHaveProperty('lb');
    expect(result.vars).toMatchObject({
      nginx_lb_tls_cert: '-----BEGIN CERTIFICATE-----\nTGVhZg==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nSW50ZXJtZWRpYXRl\n-----END CERTIFICATE-----\n',
      nginx_lb_tls_key: '-----BEGIN PRIVATE KEY-----\nS2V5\n-----END PRIVATE KEY-----\n',
    });
    expect((result.vars!.cadfleet_service_env_common as Record<string, string>).CADFLEET_DATABASE_CA_FILE).toBeUndefined();
    // The key is not left on disk once host.yml has put it in place.
    expect(fs.existsSync(path.join(result.root, 'var/lib/cadfleet-boot/tls.pem'))).toBe(false);
  });

  it('refuses a certificate parameter without exactly one key', async () => {
    const result = await boot({ role: 'lb', tlsCertificateParameter: '/p/tls.pem' }, bucketWith('1.0.0'), undefined, { TLS_VALUE: TLS_PEM.split('-----BEGIN PRIVATE KEY')[0]! });
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('the certificate parameter must hold the certificate chain and one private key (PEM)');
  });

  it('uses an S3-compatible endpoint and an SSM endpoint when given them (the local fleet)', async () => {
    const result = await boot({ role: 'streamer', s3Endpoint: 'https://10.99.0.11:9000', ssmEndpoint: 'https://10.99.0.1:41234', databaseCa: false }, bucketWith('3.2.0'));
    expect(result.code, result.output).toBe(0);
    expect(result.calls.some((c) => c.startsWith('aws --endpoint-url https://10.99.0.11:9000 s3 cp s3://cadfleet-staging-releases-x/releases/current '))).toBe(true);
    expect(result.calls).toContain('aws --endpoint-url https://10.99.0.1:41234 ssm get-parameter --name /cadfleet/staging/app.env --with-decryption --query Parameter.Value --output text');
    expect(result.calls.some((c) => c.startsWith('aws ssm') || c.startsWith('aws s3'))).toBe(false);
    expect(result.calls.some((c) => c.includes('truststore.pki.rds.amazonaws.com'))).toBe(false);
  });
});
