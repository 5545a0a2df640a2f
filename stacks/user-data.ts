// User-data of every cadfleet host booted the AWS way: an instance an auto scaling group
// launches, and every host of `cadfleet local up --boot cloud-init` (the same text, other values).
//
// One configuration path: the boot program reads the environment's settings (one SSM
// parameter), downloads the release the releases bucket's pointer names, and runs that release's
// own playbook, ansible/playbooks/host.yml, on the host itself: the roles and variables that
// `cadfleet deploy` pushes to the local fleet with site.yml. What differs between environments
// are values (`hostVars`, endpoints), never a second copy of the configuration.
//
// cloud-init runs the user-data once; the user-data only installs the boot program and its
// systemd unit, which runs until it succeeds once: a host that booted before its policies, its
// settings, its route out or the first release existed keeps trying (a line in the log each
// time) and serves as soon as they do.
//
// It holds no secrets: hosts read the database password from Secrets Manager and sign in to
// Redis with IAM, at run time, with their instance role; the LB's certificate is a SecureString.
import { RELEASE_POINTER_KEY, STREAM_SECRET_FIRST_VERSION, STREAM_SECRET_ROLES, releaseBundleKey, releaseSumsKey, type HostRole } from './contract';
import { must } from './validate';

export interface UserDataOptions {
  /** The host's role: the inventory group host.yml configures it as. */
  readonly role: HostRole;
  readonly environment: string;
  readonly region: string;
  /** Bucket holding `releases/current` and the bundles. */
  readonly releasesBucket: string;
  /** SSM parameter whose value (env-file lines) is the settings every app host shares. @default no parameter */
  readonly configParameter?: string;
  /** Elastic IP allocation the host claims at boot (the load balancer). @default none */
  readonly elasticIpAllocationId?: string;
  /**
   * SSM SecureString with the LB's certificate chain and private key (PEM, one after the
   * other). A name or a Terraform token; empty at run time: host.yml makes a self-signed one.
   * @default none
   */
  readonly tlsCertificateParameter?: string;
  /**
   * Install and start the SSM agent when the image lacks it (Debian's AMIs do). A boolean or a
   * Terraform token that renders as `true`/`false`. @default false
   */
  readonly installSsmAgent?: boolean | string;
  /** Download the regional RDS CA bundle for `verify-full` TLS to PostgreSQL. @default true for api, worker and streamer */
  readonly databaseCa?: boolean;
  /**
   * Variables of host.yml that differ between environments: `cadfleet_provider`,
   * `firewall_trusted_sources`, `common_unattended_upgrades`, `nginx_lb_server_name`, ...
   * JSON values; strings may hold Terraform tokens. @default {}
   */
  readonly hostVars?: Readonly<Record<string, unknown>>;
  /**
   * Secrets Manager secret (name, ARN or Terraform token) with the stream tokens' HMAC key; read
   * by api and streamer hosts only, and given a value by the first of them that finds none.
   * @default none
   */
  readonly streamTokenSecret?: string;
  /** Endpoint of the Secrets Manager API (the local fleet's stand-in). @default AWS Secrets Manager */
  readonly secretsManagerEndpoint?: string;
  /** Endpoint of an S3-compatible server (the local fleet); path-style URLs. @default AWS S3 */
  readonly s3Endpoint?: string;
  /** Endpoint of the SSM API (the local fleet's stand-in). @default AWS SSM */
  readonly ssmEndpoint?: string;
  /** Directory prefix for every path the scripts write; only tests set it. @default "" (the real root) */
  readonly root?: string;
  /** Seconds between retries of a network step within one run (RETRY_TRIES tries, growing delay). @default 5 */
  readonly retryDelaySeconds?: number;
  /** Seconds systemd waits before it runs a failed boot again. @default 20 */
  readonly restartSeconds?: number;
  /**
   * After this many seconds of failed boots (waiting for the first release excepted), the host
   * reports itself unhealthy to its auto scaling group, which replaces it. 0: never (the local
   * fleet, which has no group). @default 1800
   */
  readonly unhealthyAfterSeconds?: number;
}

/** Single-quotes a value for the shell. Terraform tokens contain no quote and pass unchanged. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Where the boot program keeps its state; `done` in it means the host is configured. */
export const BOOT_STATE_DIR = '/var/lib/cadfleet-boot';
export const BOOT_PROGRAM = '/usr/local/sbin/cadfleet-boot';
export const BOOT_UNIT = 'cadfleet-boot.service';
export const BOOT_LOG = '/var/log/cadfleet-bootstrap.log';
/** How many times the boot program tries a network step within one run before it gives up until systemd runs it again. */
export const RETRY_TRIES = 6;

function validateOptions(o: UserDataOptions): void {
  must(!/[\n\r]/.test(o.environment), 'environment', 'be one line', o.environment);
  for (const [name, value] of [['retryDelaySeconds', o.retryDelaySeconds], ['restartSeconds', o.restartSeconds], ['unhealthyAfterSeconds', o.unhealthyAfterSeconds]] as const) {
    if (value !== undefined) must(Number.isInteger(value) && value >= 0, name, 'be a whole number of seconds', value);
  }
  if (o.root !== undefined) must(o.root === '' || (o.root.startsWith('/') && !o.root.endsWith('/')), 'root', 'be empty or an absolute path without a trailing slash', o.root);
}

/**
 * The boot program, /usr/local/sbin/cadfleet-boot. Values are single-quoted; the script itself
 * never uses `${` or `%{`, so Terraform's template syntax cannot mistake any of it for an
 * interpolation. Exit 75 means "not yet" (no release, no settings): systemd runs it again.
 */
export function renderBootScript(o: UserDataOptions): string {
  validateOptions(o);
  // Only api and streamer hosts carry the secret's calls (as only the LB carries the Elastic IP's).
  const readsStreamSecret = o.streamTokenSecret !== undefined && o.streamTokenSecret !== '' && STREAM_SECRET_ROLES.includes(o.role);
  const settings: Array<[string, string]> = [
    ['ROLE', o.role],
    ['ENVIRONMENT', o.environment],
    ['REGION', o.region],
    ['RELEASES_BUCKET', o.releasesBucket],
    ['CONFIG_PARAMETER', o.configParameter ?? ''],
    ...(o.elasticIpAllocationId === undefined ? [] : ([['ELASTIC_IP_ALLOCATION', o.elasticIpAllocationId]] as Array<[string, string]>)),
    ['TLS_PARAMETER', o.role === 'lb' ? (o.tlsCertificateParameter ?? '') : ''],
    ...(readsStreamSecret ? ([['STREAM_SECRET', o.streamTokenSecret!], ['SECRETS_ENDPOINT', o.secretsManagerEndpoint ?? '']] as Array<[string, string]>) : []),
    ['INSTALL_SSM_AGENT', String(o.installSsmAgent ?? false)],
    ['DATABASE_CA', String(o.databaseCa ?? o.role !== 'lb')],
    ['S3_ENDPOINT', o.s3Endpoint ?? ''],
    ['SSM_ENDPOINT', o.ssmEndpoint ?? ''],
    ['ROOT', o.root ?? ''],
    ['RETRY_DELAY', String(o.retryDelaySeconds ?? 5)],
    ['RESTART_SECONDS', String(o.restartSeconds ?? 20)],
    ['UNHEALTHY_AFTER', String(o.unhealthyAfterSeconds ?? 1800)],
    ['HOST_VARS', JSON.stringify(o.hostVars ?? {})],
  ];
  // Only a host with an Elastic IP (the load balancer) carries the call, so the script's AWS calls
  // are exactly what its role's policy must grant (test/stacks/plan.test.ts reads them).
  const claimElasticIp = o.elasticIpAllocationId === undefined ? '' : `# The load balancer keeps one Elastic IP across host replacements: a new host takes it over.
claim_elastic_ip() {
  [ -n "$ELASTIC_IP_ALLOCATION" ] || return 0
  retry aws ec2 associate-address --allocation-id "$ELASTIC_IP_ALLOCATION" --instance-id "$INSTANCE" --allow-reassociation >/dev/null \\
    || later "cannot associate Elastic IP $ELASTIC_IP_ALLOCATION"
  log "associated Elastic IP $ELASTIC_IP_ALLOCATION with $INSTANCE"
}

`;
  const streamSecret = !readsStreamSecret ? '' : `secretsmanager() {
  if [ -n "$SECRETS_ENDPOINT" ]; then aws --endpoint-url "$SECRETS_ENDPOINT" secretsmanager "$@"; else aws secretsmanager "$@"; fi
}

# The stream tokens' HMAC key, shared by the api and every streamer: its current value signs and
# checks, the previous one (after a rotation) still checks. The stacks create the secret without a
# value; the first host to find none creates it, under a fixed request token, so that hosts
# booting at once agree on one value (Secrets Manager keeps the first and refuses the others).
read_stream_secret() {
  local out="$STATE/secrets.env" err="$STATE/secret.err" value previous
  rm -f "$out"
  if ! value=$(secretsmanager get-secret-value --secret-id "$STREAM_SECRET" --query SecretString --output text 2>"$err"); then
    grep -q ResourceNotFoundException "$err" || later "cannot read the stream-token secret $STREAM_SECRET: $(tail -n 1 "$err")"
    log "the stream-token secret $STREAM_SECRET has no value yet: creating one"
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(48), end="")' >"$STATE/new-secret")
    secretsmanager put-secret-value --secret-id "$STREAM_SECRET" --client-request-token '${STREAM_SECRET_FIRST_VERSION}' \\
      --secret-string "file://$STATE/new-secret" >/dev/null 2>"$err" || log "another host gave it a value first ($(tail -n 1 "$err"))"
    rm -f "$STATE/new-secret"
    value=$(retry secretsmanager get-secret-value --secret-id "$STREAM_SECRET" --query SecretString --output text 2>"$err") \\
      || later "cannot read the stream-token secret $STREAM_SECRET: $(tail -n 1 "$err")"
  fi
  # No previous version (never rotated) is the usual case.
  previous=$(secretsmanager get-secret-value --secret-id "$STREAM_SECRET" --version-stage AWSPREVIOUS --query SecretString --output text 2>/dev/null) || previous=''
  case "$value$previous" in *[!A-Za-z0-9_.~+/=-]*) die "the stream-token secret holds characters other than letters, digits and -_.~+/=" ;; esac
  [ "$(printf '%s' "$value" | wc -c)" -ge 32 ] || die "the stream-token secret is shorter than 32 characters"
  (umask 077 && {
    printf 'CADFLEET_STREAM_TOKEN_SECRET=%s\\n' "$value"
    [ -z "$previous" ] || [ "$previous" = "$value" ] || printf 'CADFLEET_STREAM_TOKEN_SECRET_PREVIOUS=%s\\n' "$previous"
  } >"$out")
  rm -f "$err"
}

`;
  return `#!/bin/bash
# cadfleet boot of a ${o.role} host (rendered by stacks/user-data.ts; no secrets here): reads the
# settings, installs the release s3://<releases bucket>/${RELEASE_POINTER_KEY} names and configures
# the host with that release's ansible/playbooks/host.yml. Run by ${BOOT_UNIT} until it succeeds.
set -euo pipefail
umask 022

${settings.map(([k, v]) => `readonly ${k}=${shellQuote(v)}`).join('\n')}
readonly STATE="$ROOT${BOOT_STATE_DIR}"

mkdir -p "$ROOT/var/log" "$STATE"
chmod 0700 "$STATE"
exec > >(tee -a "$ROOT${BOOT_LOG}") 2>&1

# To stderr, so that a function's output captured with $(...) never swallows a log line.
log() { printf '%s cadfleet-bootstrap: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# Something this host needs is not there yet (a fresh account's IAM, the settings, the first
# release): systemd runs the boot again after RestartSec.
later() { log "$*; trying again in $RESTART_SECONDS s"; exit 75; }

# A boot that keeps failing (not one waiting for the first release) for UNHEALTHY_AFTER seconds
# reports the instance unhealthy, and its auto scaling group replaces it: EC2's own health
# checks see a running machine, not a configured one.
INSTANCE='' WAITING=''
on_exit() {
  local status=$? now first
  [ "$status" -ne 0 ] || { rm -f "$STATE/failing-since"; return 0; }
  [ "$UNHEALTHY_AFTER" -gt 0 ] && [ -n "$INSTANCE" ] && [ "$WAITING" != release ] || return 0
  now=$(date +%s)
  [ -f "$STATE/failing-since" ] || echo "$now" >"$STATE/failing-since"
  first=$(cat "$STATE/failing-since")
  if [ $((now - first)) -ge "$UNHEALTHY_AFTER" ]; then
    log "the boot has failed for $((now - first)) s: reporting $INSTANCE unhealthy, so that its group replaces it"
    aws autoscaling set-instance-health --instance-id "$INSTANCE" --health-status Unhealthy --no-should-respect-grace-period \
      || log "could not report $INSTANCE unhealthy"
  fi
}
trap on_exit EXIT

# Up to ${RETRY_TRIES} tries with a growing delay, for steps that fail for a moment (credentials, routes).
retry() {
  local attempt=1
  until "$@"; do
    if [ "$attempt" -ge ${RETRY_TRIES} ]; then return 1; fi
    sleep $((attempt * RETRY_DELAY))
    attempt=$((attempt + 1))
  done
}

export AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"

# IMDSv2 only: launch templates require session tokens.
imds() {
  local token
  token=$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token) || return 1
  curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

s3() {
  if [ -n "$S3_ENDPOINT" ]; then aws --endpoint-url "$S3_ENDPOINT" s3 "$@"; else aws s3 "$@"; fi
}

ssm() {
  if [ -n "$SSM_ENDPOINT" ]; then aws --endpoint-url "$SSM_ENDPOINT" ssm "$@"; else aws ssm "$@"; fi
}

parameter() {
  ssm get-parameter --name "$1" --with-decryption --query Parameter.Value --output text
}

ensure_tools() {
  command -v aws >/dev/null && command -v ansible-playbook >/dev/null && return 0
  log "installing the AWS CLI and Ansible (the cadfleet host image has both)"
  retry apt-get update -qq || later "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive retry apt-get install -y -qq --no-install-recommends awscli ansible-core || later "cannot install awscli and ansible-core"
}

ensure_ssm_agent() {
  [ "$INSTALL_SSM_AGENT" = true ] || return 0
  if systemctl is-enabled --quiet amazon-ssm-agent 2>/dev/null; then return 0; fi
  log "installing the SSM agent"
  local deb
  deb=$(mktemp --suffix=.deb)
  retry curl -fsS -o "$deb" "https://s3.$REGION.amazonaws.com/amazon-ssm-$REGION/latest/debian_amd64/amazon-ssm-agent.deb" || later "cannot download the SSM agent"
  # dpkg's lock may be held at first boot (apt-daily): try again, as for the download.
  retry dpkg -i "$deb" >/dev/null || later "cannot install the SSM agent (dpkg)"
  rm -f "$deb"
  systemctl enable --now amazon-ssm-agent
}

${claimElasticIp}${streamSecret}read_settings() {
  local out="$STATE/settings.env"
  : >"$out.new"
  if [ -n "$CONFIG_PARAMETER" ]; then
    retry parameter "$CONFIG_PARAMETER" >"$out.new" || later "cannot read SSM parameter $CONFIG_PARAMETER (not there yet, or not allowed)"
  fi
  if [ "$DATABASE_CA" = true ]; then
    mkdir -p "$ROOT/etc/cadfleet"
    retry curl -fsS -o "$ROOT/etc/cadfleet/rds-ca.pem" "https://truststore.pki.rds.amazonaws.com/$REGION/$REGION-bundle.pem" || later "cannot download the RDS CA bundle"
    chmod 0644 "$ROOT/etc/cadfleet/rds-ca.pem"
    echo "CADFLEET_DATABASE_CA_FILE=/etc/cadfleet/rds-ca.pem" >>"$out.new"
  fi
  mv -f "$out.new" "$out"
  rm -f "$STATE/tls.pem"
  if [ -n "$TLS_PARAMETER" ]; then
    (umask 077 && retry parameter "$TLS_PARAMETER" >"$STATE/tls.pem") || later "cannot read the certificate parameter $TLS_PARAMETER"
  fi
}

# Prints the version the pointer names. Exit status 3: there is no pointer (yet); only S3's
# "no such key" means that: an access denied or a network error is an error to try again.
current_version() {
  local version
  if ! s3 cp "s3://$RELEASES_BUCKET/${RELEASE_POINTER_KEY}" "$STATE/pointer" --only-show-errors 2>"$STATE/pointer.err"; then
    if grep -qE '\\((404|NoSuchKey)\\)|does not exist' "$STATE/pointer.err"; then return 3; fi
    log "cannot read s3://$RELEASES_BUCKET/${RELEASE_POINTER_KEY}: $(tail -n 1 "$STATE/pointer.err")"
    return 1
  fi
  version=$(tr -d '[:space:]' <"$STATE/pointer")
  # The names cli/src/release/bundle.ts gives: a letter or digit, then letters, digits, dots, dashes.
  case "$version" in
    '' | [!0-9A-Za-z]* | *[!0-9A-Za-z.-]*) log "error: the release pointer holds '$version', which is not a version name"; return 2 ;;
  esac
  printf '%s\\n' "$version"
}

# Downloads and checks the bundle; unpacks only its Ansible content (the release role installs the rest).
fetch_release() {
  local version="$1" dir="$STATE/release"
  rm -rf "$dir"
  mkdir -p "$dir"
  BUNDLE="$dir/cadfleet-$version-linux-x64.tar.gz"
  retry s3 cp "s3://$RELEASES_BUCKET/${releaseBundleKey('$version')}" "$BUNDLE" --only-show-errors || later "cannot download ${releaseBundleKey('$version')}"
  retry s3 cp "s3://$RELEASES_BUCKET/${releaseSumsKey('$version')}" "$dir/SHA256SUMS" --only-show-errors || later "cannot download ${releaseSumsKey('$version')}"
  (cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS) || die "release $version does not match its SHA256SUMS"
  SHA256=$(cut -d ' ' -f 1 "$dir/SHA256SUMS")
  tar -xzf "$BUNDLE" -C "$dir" --no-same-owner --wildcards '*/ansible/*'
  ANSIBLE_DIR=$(find "$dir" -mindepth 2 -maxdepth 2 -type d -name ansible | head -n 1)
  [ -f "$ANSIBLE_DIR/playbooks/host.yml" ] || die "release $version has no ansible/playbooks/host.yml"
}

# host.yml's inventory (this host alone, in its role's group, named by its instance id) and
# variables: the settings, the release, this host's address, and the environment's values.
write_inventory_and_vars() {
  python3 - "$STATE" "$ROLE" "$INSTANCE" "$ADDRESS" "$VERSION" "$SHA256" "$BUNDLE" "$HOST_VARS" <<'PY'
import json, os, re, sys
state, role, instance, address, version, sha256, bundle, host_vars = sys.argv[1:9]
settings = {}
with open(os.path.join(state, 'settings.env'), encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
        line = line.rstrip('\\n')
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
    blocks = re.findall(r'-----BEGIN [A-Z ]+-----[^-]+-----END [A-Z ]+-----\\n?', open(tls, encoding='utf-8').read())
    certs = [b for b in blocks if 'CERTIFICATE' in b.split('\\n', 1)[0]]
    keys = [b for b in blocks if 'PRIVATE KEY' in b.split('\\n', 1)[0]]
    if not certs or len(keys) != 1:
        sys.exit('the certificate parameter must hold the certificate chain and one private key (PEM)')
    variables['nginx_lb_tls_cert'] = ''.join(b if b.endswith('\\n') else b + '\\n' for b in certs)
    variables['nginx_lb_tls_key'] = keys[0]
host = {'ansible_connection': 'local', 'ansible_python_interpreter': '/usr/bin/python3'}
old = os.umask(0o077)
with open(os.path.join(state, 'inventory.json'), 'w', encoding='utf-8') as f:
    json.dump({role: {'hosts': {instance: host}}}, f)
with open(os.path.join(state, 'vars.json'), 'w', encoding='utf-8') as f:
    json.dump(variables, f)
os.umask(old)
PY
}

configure() {
  log "configuring this host with release $VERSION's host.yml"
  (cd "$ANSIBLE_DIR" && ANSIBLE_CONFIG="$ANSIBLE_DIR/pull.cfg" ansible-playbook -i "$STATE/inventory.json" -e "@$STATE/vars.json" playbooks/host.yml) \\
    || die "host.yml of release $VERSION failed (its output is above)"
}

log "boot of a $ROLE host of $ENVIRONMENT"
# The agent first: a host whose apt fails below (a mirror error, dpkg locked) is still reachable
# through Session Manager while its boot tries again.
ensure_ssm_agent
ensure_tools
INSTANCE=$(retry imds instance-id) || later "no instance id from the metadata service"
ADDRESS=$(retry imds local-ipv4) || later "no private address from the metadata service"
${o.elasticIpAllocationId === undefined ? '' : 'claim_elastic_ip\n'}read_settings
${readsStreamSecret ? 'read_stream_secret\n' : ''}status=0
VERSION=$(current_version) || status=$?
case "$status" in
  0) ;;
  3) WAITING=release; later "no release at s3://$RELEASES_BUCKET/${RELEASE_POINTER_KEY} yet (cadfleet upgrade publishes the first)" ;;
  *) later "no release version to install" ;;
esac
fetch_release "$VERSION"
write_inventory_and_vars
configure
rm -rf "$STATE/release" "$STATE/vars.json" "$STATE/tls.pem" "$STATE/secrets.env"
log "done: release $VERSION, ${o.role} configured"
date -u +%Y-%m-%dT%H:%M:%SZ >"$STATE/done"
`;
}

/** The unit that runs the boot program until it succeeds once; `done` keeps it from running again. */
export function renderBootUnit(o: Pick<UserDataOptions, 'restartSeconds'> = {}): string {
  return `# Written by the cadfleet user-data (stacks/user-data.ts).
[Unit]
Description=cadfleet boot: install the current release and configure this host
Wants=network-online.target
After=network-online.target
ConditionPathExists=!${BOOT_STATE_DIR}/done
# Keep trying for as long as it takes (a fresh account's IAM, the first release).
StartLimitIntervalSec=0

[Service]
Type=oneshot
ExecStart=${BOOT_PROGRAM}
Restart=on-failure
RestartSec=${o.restartSeconds ?? 20}
TimeoutStartSec=30min

[Install]
WantedBy=multi-user.target
`;
}

/**
 * The user-data cloud-init runs once: it installs the boot program and its unit, and starts the
 * unit without waiting for it (cloud-init's own boot stage is over before the host is configured).
 */
export function renderUserData(o: UserDataOptions): string {
  const program = renderBootScript(o);
  const root = o.root ?? '';
  return `#!/bin/bash
# cadfleet user-data of a ${o.role} host (stacks/user-data.ts): installs ${BOOT_PROGRAM} and
# ${BOOT_UNIT}, which configures the host until it succeeds once. No secrets here.
set -euo pipefail
readonly ROOT=${shellQuote(root)}
mkdir -p "$ROOT/usr/local/sbin" "$ROOT/etc/systemd/system"
cat >"$ROOT${BOOT_PROGRAM}" <<'CADFLEET_BOOT_PROGRAM'
${program}CADFLEET_BOOT_PROGRAM
chmod 0755 "$ROOT${BOOT_PROGRAM}"
cat >"$ROOT/etc/systemd/system/${BOOT_UNIT}" <<'CADFLEET_BOOT_UNIT'
${renderBootUnit(o)}CADFLEET_BOOT_UNIT
systemctl daemon-reload
systemctl enable ${BOOT_UNIT}
systemctl start --no-block ${BOOT_UNIT}
`;
}
