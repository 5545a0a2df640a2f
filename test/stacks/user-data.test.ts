// The boot script of auto-scaled hosts, rendered and then run for real with bash against a
// scratch root: `aws`, `curl`, `systemctl`, `dpkg` and `apt-get` are stubs that serve a
// fixture releases bucket and record what they were asked.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderUserData, roleEnvironment, shellQuote, type UserDataOptions } from '../../stacks/user-data';

let tmp: string;
let stubs: string;

const STUBS: Record<string, string> = {
  // aws [--endpoint-url URL] s3 cp s3://BUCKET/KEY DEST | ssm get-parameter ... | ec2 associate-address ...
  aws: `#!/bin/bash
echo "aws $*" >> "$CALLS"
if [ "$1" = --endpoint-url ]; then shift 2; fi
case "$1 $2" in
  "s3 cp")
    key=$(printf '%s' "$3" | sed -E 's#^s3://[^/]+/##')
    [ -f "$BUCKET_DIR/$key" ] || { echo "fatal error: An error occurred (404) when calling the HeadObject operation: Key \\"$key\\" does not exist" >&2; exit 1; }
    if [ "$4" = - ]; then cat "$BUCKET_DIR/$key"; else cp "$BUCKET_DIR/$key" "$4"; fi ;;
  "ssm get-parameter") printf '%s\\n' "$SSM_VALUE" ;;
  "ec2 associate-address") echo '{"AssociationId": "eipassoc-1"}' ;;
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
  dpkg: '#!/bin/bash\necho "dpkg $*" >> "$CALLS"\n',
  // Accounts and ownership belong to the host, not to the machine running the tests.
  getent: '#!/bin/bash\necho "getent $*" >> "$CALLS"\nexit 2\n',
  useradd: '#!/bin/bash\necho "useradd $*" >> "$CALLS"\n',
  chown: '#!/bin/bash\necho "chown $*" >> "$CALLS"\n',
  chgrp: '#!/bin/bash\necho "chgrp $*" >> "$CALLS"\n',
  'apt-get': '#!/bin/bash\necho "apt-get $*" >> "$CALLS"\n',
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
}

function boot(options: Partial<UserDataOptions> & Pick<UserDataOptions, 'role'>, bucket: string, root?: string): Promise<Boot> {
  const hostRoot = root ?? fs.mkdtempSync(path.join(tmp, 'host-'));
  const script = renderUserData({
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
        SSM_VALUE: 'CADFLEET_ENV=staging\nCADFLEET_REDIS_URL=rediss://cadfleet-staging-app@master.example:6379',
      },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => {
      resolve({ code: code ?? 1, output, calls: fs.readFileSync(calls, 'utf8').trim().split('\n'), root: hostRoot });
    });
  });
}

const read = (file: string): string => fs.readFileSync(file, 'utf8');

describe('renderUserData', () => {
  it('renders a script that bash parses and shellcheck passes, for every role', () => {
    let shellcheck: string;
    try {
      shellcheck = execFileSync('sh', ['-c', 'command -v shellcheck'], { encoding: 'utf8' }).trim();
    } catch {
      throw new Error('shellcheck is not installed: apt-get install shellcheck (scripts/setup.sh installs it)');
    }
    for (const role of ['lb', 'api', 'worker', 'streamer'] as const) {
      const script = renderUserData({ role, environment: 'staging', region: 'us-east-1', releasesBucket: 'b', configParameter: '/p', installSsmAgent: true, elasticIpAllocationId: role === 'lb' ? 'eipalloc-1' : undefined });
      execFileSync('bash', ['-n'], { input: script });
      execFileSync(shellcheck, ['--shell=bash', '--severity=style', '-'], { input: script });
    }
  });

  it('never writes Terraform template syntax, so values are the only interpolations', () => {
    const script = renderUserData({ role: 'worker', environment: 'staging', region: 'us-east-1', releasesBucket: 'b' });
    expect(script).not.toContain('${');
    expect(script).not.toContain('%{');
  });

  it('quotes values for the shell', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    const script = renderUserData({ role: 'api', environment: 'staging', region: 'us-east-1', releasesBucket: "x'; rm -rf /; '" });
    expect(script).toContain(`readonly RELEASES_BUCKET='x'\\''; rm -rf /; '\\'''`);
  });

  it('refuses options that would break the script', () => {
    expect(() => renderUserData({ role: 'api', environment: 'a\nb', region: 'r', releasesBucket: 'b' })).toThrow('`environment` must be one line, got "a\\nb"');
    expect(() => renderUserData({ role: 'api', environment: 'e', region: 'r', releasesBucket: 'b', root: 'relative' })).toThrow('`root` must be empty or an absolute path');
  });

  it('gives each role its port and role settings', () => {
    expect(roleEnvironment('api')).toEqual({ CADFLEET_ROLE: 'api', CADFLEET_HTTP_PORT: '8080' });
    expect(roleEnvironment('worker')).toEqual({ CADFLEET_ROLE: 'worker', CADFLEET_METRICS_PORT: '9464' });
    expect(roleEnvironment('streamer')).toEqual({ CADFLEET_ROLE: 'streamer', CADFLEET_HTTP_PORT: '8090' });
  });
});

describe('the boot script, run', () => {
  it('installs the release the pointer names, writes the settings and starts the role unit', async () => {
    const bucket = bucketWith('1.4.0');
    const result = await boot({ role: 'worker', installSsmAgent: true }, bucket);
    expect(result.code, result.output).toBe(0);
    const base = path.join(result.root, 'opt/cadfleet');
    expect(fs.readlinkSync(path.join(base, 'current'))).toBe('releases/1.4.0');
    expect(read(path.join(base, 'current/bin/cadfleet'))).toContain('echo cadfleet');
    expect(fs.readdirSync(path.join(base, 'releases'))).toEqual(['1.4.0']);
    expect(read(path.join(result.root, 'etc/systemd/system/cadfleet-worker.service'))).toContain('cadfleet worker');
    expect(read(path.join(result.root, 'etc/cadfleet/worker.env')).split('\n')).toEqual(
      expect.arrayContaining([
        'CADFLEET_ENV=staging',
        'CADFLEET_REDIS_URL=rediss://cadfleet-staging-app@master.example:6379',
        'CADFLEET_ROLE=worker',
        'CADFLEET_METRICS_PORT=9464',
        'CADFLEET_ADVERTISE_URL=http://10.40.128.7:9464',
        'CADFLEET_DATABASE_CA_FILE=/etc/cadfleet/rds-ca.pem',
      ]),
    );
    expect(result.calls).toEqual(
      expect.arrayContaining([
        'aws ssm get-parameter --name /cadfleet/staging/app.env --with-decryption --query Parameter.Value --output text',
        'aws s3 cp s3://cadfleet-staging-releases-x/releases/current -',
      ]),
    );
    expect(result.calls.some((c) => c.startsWith('aws s3 cp s3://cadfleet-staging-releases-x/releases/cadfleet-1.4.0-linux-x64.tar.gz '))).toBe(true);
    expect(result.calls.some((c) => c.startsWith('aws s3 cp s3://cadfleet-staging-releases-x/releases/cadfleet-1.4.0-linux-x64.tar.gz.SHA256SUMS '))).toBe(true);
    expect(result.calls).toContain('curl -fsS -o ' + path.join(result.root, 'etc/cadfleet/rds-ca.pem') + ' https://truststore.pki.rds.amazonaws.com/us-east-1/us-east-1-bundle.pem');
    // The SSM agent, which Debian's AMIs lack, then the role's unit.
    expect(result.calls.filter((c) => c.startsWith('dpkg -i'))).toHaveLength(1);
    const systemctl = result.calls.filter((c) => c.startsWith('systemctl'));
    expect(systemctl).toEqual(['systemctl is-enabled --quiet amazon-ssm-agent', 'systemctl enable --now amazon-ssm-agent', 'systemctl daemon-reload', 'systemctl enable --now cadfleet-worker.service']);
    expect(read(path.join(result.root, 'var/log/cadfleet-bootstrap.log'))).toContain('started cadfleet-worker.service');
    // The services' user and state folder, as the deploy's Ansible role makes them; settings readable by that group only.
    expect(result.calls).toContain('useradd --system --home-dir /var/lib/cadfleet --no-create-home --shell /usr/sbin/nologin cadfleet');
    expect(result.calls).toContain(`chown cadfleet:cadfleet ${path.join(result.root, 'var/lib/cadfleet')}`);
    expect(fs.statSync(path.join(result.root, 'etc/cadfleet/worker.env')).mode & 0o777).toBe(0o640);
    expect(result.calls.filter((c) => c.startsWith('chgrp cadfleet '))).toHaveLength(1);

    // A second boot of the same host (or a reinstall) finds the release already there.
    const again = await boot({ role: 'worker' }, bucket, result.root);
    expect(again.code, again.output).toBe(0);
    expect(again.output).toContain('release 1.4.0 is already installed');
    expect(again.calls.some((c) => c.includes('linux-x64.tar.gz'))).toBe(false);
  });

  it('boots without starting anything when no release exists yet (the first apply)', async () => {
    const result = await boot({ role: 'api' }, bucketWith('1.0.0', { pointer: null }));
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('no release pointer at s3://cadfleet-staging-releases-x/releases/current yet: nothing to install');
    expect(result.calls.filter((c) => c.startsWith('systemctl'))).toEqual([]);
    expect(fs.existsSync(path.join(result.root, 'opt/cadfleet/current'))).toBe(false);
    expect(read(path.join(result.root, 'etc/cadfleet/api.env'))).toContain('CADFLEET_HTTP_PORT=8080');
  });

  it.each(['../../../etc', '.hidden', '1.0;reboot'])('refuses a pointer that is not a version name: %s', async (pointer) => {
    const result = await boot({ role: 'api' }, bucketWith('1.0.0', { pointer: `${pointer}\n` }));
    expect(result.code).toBe(1);
    expect(result.output).toContain(`the release pointer holds '${pointer}', which is not a version name`);
    expect(fs.existsSync(path.join(result.root, 'opt/cadfleet/current'))).toBe(false);
  });

  it('refuses a bundle that does not match its SHA256SUMS', async () => {
    const result = await boot({ role: 'streamer' }, bucketWith('2.0.0', { corrupt: true }));
    expect(result.code).toBe(1);
    expect(result.output).toContain('release 2.0.0 does not match its SHA256SUMS');
    expect(fs.existsSync(path.join(result.root, 'opt/cadfleet/current'))).toBe(false);
    expect(fs.existsSync(path.join(result.root, 'opt/cadfleet/releases/2.0.0'))).toBe(false);
  });

  it('claims the Elastic IP on the load balancer, which needs no database CA or advertised port', async () => {
    const result = await boot({ role: 'lb', elasticIpAllocationId: 'eipalloc-0abc' }, bucketWith('1.0.0'));
    expect(result.code, result.output).toBe(0);
    expect(result.calls).toContain('aws ec2 associate-address --allocation-id eipalloc-0abc --instance-id i-0123456789abcdef0 --allow-reassociation');
    const env = read(path.join(result.root, 'etc/cadfleet/lb.env'));
    expect(env).toContain('CADFLEET_ROLE=lb');
    expect(env).not.toContain('CADFLEET_ADVERTISE_URL');
    expect(env).not.toContain('CADFLEET_DATABASE_CA_FILE');
    expect(result.calls).toContain('systemctl enable --now cadfleet-lb.service');
  });

  it('uses an S3-compatible endpoint when given one (the local fleet)', async () => {
    const result = await boot({ role: 'worker', s3Endpoint: 'http://10.99.0.10:4568', configParameter: undefined }, bucketWith('3.1.0'));
    expect(result.code, result.output).toBe(0);
    expect(result.calls).toContain('aws --endpoint-url http://10.99.0.10:4568 s3 cp s3://cadfleet-staging-releases-x/releases/current -');
    expect(result.calls.some((c) => c.startsWith('aws ssm'))).toBe(false);
  });

  it('reads its settings from an SSM endpoint when given one (cadfleet local scale-out), and names the node after its instance', async () => {
    const result = await boot({ role: 'streamer', s3Endpoint: 'https://10.99.0.11:9000', ssmEndpoint: 'https://10.99.0.1:41234', databaseCa: false }, bucketWith('3.2.0'));
    expect(result.code, result.output).toBe(0);
    expect(result.calls).toContain('aws --endpoint-url https://10.99.0.1:41234 ssm get-parameter --name /cadfleet/staging/app.env --with-decryption --query Parameter.Value --output text');
    expect(result.calls.some((c) => c.startsWith('aws ssm'))).toBe(false);
    expect(fs.readFileSync(path.join(result.root, 'etc/cadfleet/streamer.env'), 'utf8').split('\n')).toEqual(
      expect.arrayContaining(['CADFLEET_ROLE=streamer', 'CADFLEET_ADVERTISE_URL=http://10.40.128.7:8090', 'CADFLEET_NODE_ID=i-0123456789abcdef0']),
    );
    expect(result.calls.some((c) => c.includes('truststore.pki.rds.amazonaws.com'))).toBe(false);
  });
});
