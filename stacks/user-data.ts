// User-data of every cadfleet host: a plain shell script, rendered here so that it can be
// unit-tested and run outside AWS. At boot it writes the app's settings (from one SSM
// parameter), installs the release named by the releases bucket's pointer and starts the
// role's systemd unit, so a host that an auto scaling group launches serves by itself.
//
// It holds no secrets, and there is nothing secret to put in it: hosts read the database
// password from Secrets Manager and authenticate to Redis with IAM, at run time, with
// their instance role.
import { INSTALL_DIR, PORTS, RELEASE_POINTER_KEY, SERVICE_USER, STATE_DIR, envFile, releaseBundleKey, releaseSumsKey, unitName, type HostRole } from './contract';
import { must } from './validate';

export interface UserDataOptions {
  /** The host's role; picks the systemd unit `cadfleet-<role>.service`. */
  readonly role: HostRole;
  readonly environment: string;
  readonly region: string;
  /** Bucket holding `releases/current` and the bundles. */
  readonly releasesBucket: string;
  /** SSM parameter whose value (env-file lines) starts the host's env file. @default no parameter */
  readonly configParameter?: string;
  /** Elastic IP allocation the host claims at boot (the load balancer). @default none */
  readonly elasticIpAllocationId?: string;
  /**
   * Install and start the SSM agent when the image lacks it (Debian's AMIs do). A boolean or a
   * Terraform token that renders as `true`/`false`. @default false
   */
  readonly installSsmAgent?: boolean | string;
  /** Download the regional RDS CA bundle for `verify-full` TLS to PostgreSQL. @default true for api, worker and streamer */
  readonly databaseCa?: boolean;
  /** Endpoint of an S3-compatible server (the local fleet); path-style URLs. @default AWS S3 */
  readonly s3Endpoint?: string;
  /** Endpoint of the SSM API (the local fleet's stand-in, `cadfleet local scale-out`). @default AWS SSM */
  readonly ssmEndpoint?: string;
  /** Directory prefix for every path the script writes; only tests set it. @default "" (the real root) */
  readonly root?: string;
  /** Seconds between retries of a network step (6 tries, growing delay). @default 5 */
  readonly retryDelaySeconds?: number;
}

/** The port the role's service listens on and advertises; none for the load balancer. */
export function rolePort(role: HostRole): number | undefined {
  return role === 'lb' ? undefined : PORTS[role];
}

/** Settings that depend only on the role, appended after the environment's own. */
export function roleEnvironment(role: HostRole): Record<string, string> {
  switch (role) {
    case 'api':
      return { CADFLEET_ROLE: 'api', CADFLEET_HTTP_PORT: String(PORTS.api) };
    case 'worker':
      return { CADFLEET_ROLE: 'worker', CADFLEET_METRICS_PORT: String(PORTS.worker) };
    case 'streamer':
      return { CADFLEET_ROLE: 'streamer', CADFLEET_HTTP_PORT: String(PORTS.streamer) };
    case 'lb':
      return { CADFLEET_ROLE: 'lb' };
  }
}

/** Single-quotes a value for the shell. Terraform tokens contain no quote and pass unchanged. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function validateOptions(o: UserDataOptions): void {
  must(!/[\n\r]/.test(o.environment), 'environment', 'be one line', o.environment);
  if (o.retryDelaySeconds !== undefined) {
    must(Number.isInteger(o.retryDelaySeconds) && o.retryDelaySeconds >= 0, 'retryDelaySeconds', 'be a whole number of seconds', o.retryDelaySeconds);
  }
  if (o.root !== undefined) must(o.root === '' || (o.root.startsWith('/') && !o.root.endsWith('/')), 'root', 'be empty or an absolute path without a trailing slash', o.root);
}

/**
 * Renders the boot script. Values are single-quoted; the script itself never uses `${`
 * or `%{`, so Terraform's template syntax cannot mistake any of it for an interpolation.
 */
export function renderUserData(o: UserDataOptions): string {
  validateOptions(o);
  const needsDatabaseCa = o.databaseCa ?? o.role !== 'lb';
  const port = rolePort(o.role);
  const envLines = Object.entries(roleEnvironment(o.role)).map(([k, v]) => `  echo ${shellQuote(`${k}=${v}`)}`);
  const settings: Array<[string, string]> = [
    ['ROLE', o.role],
    ['ENVIRONMENT', o.environment],
    ['REGION', o.region],
    ['RELEASES_BUCKET', o.releasesBucket],
    ['CONFIG_PARAMETER', o.configParameter ?? ''],
    ['ELASTIC_IP_ALLOCATION', o.elasticIpAllocationId ?? ''],
    ['INSTALL_SSM_AGENT', String(o.installSsmAgent ?? false)],
    ['DATABASE_CA', String(needsDatabaseCa)],
    ['APP_PORT', port === undefined ? '' : String(port)],
    ['S3_ENDPOINT', o.s3Endpoint ?? ''],
    ['SSM_ENDPOINT', o.ssmEndpoint ?? ''],
    ['ROOT', o.root ?? ''],
    ['RETRY_DELAY', String(o.retryDelaySeconds ?? 5)],
  ];
  return `#!/bin/bash
# cadfleet boot script for a ${o.role} host (rendered by stacks/user-data.ts; no secrets here).
# Installs the release named by s3://<releases bucket>/${RELEASE_POINTER_KEY} and starts ${unitName(o.role)}.
set -euo pipefail
umask 022

${settings.map(([k, v]) => `readonly ${k}=${shellQuote(v)}`).join('\n')}

mkdir -p "$ROOT/var/log"
exec > >(tee -a "$ROOT/var/log/cadfleet-bootstrap.log") 2>&1

# To stderr, so that a function's output captured with $(...) never swallows a log line.
log() { printf '%s cadfleet-bootstrap: %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a command up to 6 times with a growing delay: instance credentials, NAT routes and
# IAM changes take a little while to be ready on a fresh host.
retry() {
  local attempt=1
  until "$@"; do
    if [ "$attempt" -ge 6 ]; then return 1; fi
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

ensure_aws_cli() {
  command -v aws >/dev/null && return 0
  log "installing the AWS CLI"
  retry apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive retry apt-get install -y -qq --no-install-recommends awscli || die "cannot install awscli"
}

ensure_ssm_agent() {
  [ "$INSTALL_SSM_AGENT" = true ] || return 0
  if systemctl is-enabled --quiet amazon-ssm-agent 2>/dev/null; then return 0; fi
  log "installing the SSM agent"
  local deb
  deb=$(mktemp --suffix=.deb)
  retry curl -fsS -o "$deb" "https://s3.$REGION.amazonaws.com/amazon-ssm-$REGION/latest/debian_amd64/amazon-ssm-agent.deb" || die "cannot download the SSM agent"
  dpkg -i "$deb" >/dev/null
  rm -f "$deb"
  systemctl enable --now amazon-ssm-agent
}

# The load balancer keeps one Elastic IP across host replacements: a new host takes it over.
claim_elastic_ip() {
  [ -n "$ELASTIC_IP_ALLOCATION" ] || return 0
  local instance
  instance=$(retry imds instance-id) || die "no instance id from the metadata service"
  retry aws ec2 associate-address --allocation-id "$ELASTIC_IP_ALLOCATION" --instance-id "$instance" --allow-reassociation >/dev/null \\
    || die "cannot associate Elastic IP $ELASTIC_IP_ALLOCATION"
  log "associated Elastic IP $ELASTIC_IP_ALLOCATION with $instance"
}

# The services' user and state folder, as the deploy's Ansible role makes them, so that a
# unit from the image or the bundle can start on a host no deploy has touched.
ensure_service_user() {
  if ! getent passwd ${SERVICE_USER} >/dev/null; then
    useradd --system --home-dir ${STATE_DIR} --no-create-home --shell /usr/sbin/nologin ${SERVICE_USER}
  fi
  mkdir -p "$ROOT${STATE_DIR}"
  chmod 0750 "$ROOT${STATE_DIR}"
  chown ${SERVICE_USER}:${SERVICE_USER} "$ROOT${STATE_DIR}"
}

write_settings() {
  local dir="$ROOT/etc/cadfleet" tmp address instance
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.$ROLE.env.XXXXXX")
  {
    echo "# Written at boot by the cadfleet boot script. No secrets: see docs/aws.md."
    if [ -n "$CONFIG_PARAMETER" ]; then
      retry ssm get-parameter --name "$CONFIG_PARAMETER" --with-decryption --query Parameter.Value --output text || die "cannot read SSM parameter $CONFIG_PARAMETER"
    fi
${envLines.join('\n')}
    if [ -n "$APP_PORT" ]; then
      address=$(retry imds local-ipv4) || die "no private address from the metadata service"
      echo "CADFLEET_ADVERTISE_URL=http://$address:$APP_PORT"
      # The node's name in the registry, the logs and each model's worker: the instance id,
      # which is also what the aws_ec2 inventory and cadfleet ssh call the host.
      instance=$(retry imds instance-id) || die "no instance id from the metadata service"
      echo "CADFLEET_NODE_ID=$instance"
    fi
    if [ "$DATABASE_CA" = true ]; then
      retry curl -fsS -o "$dir/rds-ca.pem" "https://truststore.pki.rds.amazonaws.com/$REGION/$REGION-bundle.pem" || die "cannot download the RDS CA bundle"
      chmod 0644 "$dir/rds-ca.pem"
      echo "CADFLEET_DATABASE_CA_FILE=/etc/cadfleet/rds-ca.pem"
    fi
  } >"$tmp"
  chmod 0640 "$tmp"
  chgrp ${SERVICE_USER} "$tmp"
  mv -f "$tmp" "$dir/$ROLE.env"
  log "wrote ${envFile(o.role)}"
}

# Prints the version the pointer names. Exit status 3: there is no pointer (yet).
current_version() {
  local version
  version=$(retry s3 cp "s3://$RELEASES_BUCKET/${RELEASE_POINTER_KEY}" -) || return 3
  version=$(printf '%s' "$version" | tr -d '[:space:]')
  # The names cli/src/release/bundle.ts gives: a letter or digit, then letters, digits, dots, dashes.
  case "$version" in
    '' | [!0-9A-Za-z]* | *[!0-9A-Za-z.-]*) log "error: the release pointer holds '$version', which is not a version name"; return 1 ;;
  esac
  printf '%s\\n' "$version"
}

install_release() {
  local version="$1" base="$ROOT${INSTALL_DIR}" incoming source bundle
  local target="$base/releases/$version"
  mkdir -p "$base/releases"
  if [ -d "$target" ]; then
    log "release $version is already installed"
  else
    log "installing release $version"
    incoming=$(mktemp -d "$base/releases/.incoming.XXXXXX")
    bundle="cadfleet-$version-linux-x64.tar.gz"
    retry s3 cp "s3://$RELEASES_BUCKET/${releaseBundleKey('$version')}" "$incoming/$bundle" --only-show-errors \\
      || die "cannot download ${releaseBundleKey('$version')}"
    retry s3 cp "s3://$RELEASES_BUCKET/${releaseSumsKey('$version')}" "$incoming/SHA256SUMS" --only-show-errors \\
      || die "cannot download ${releaseSumsKey('$version')}"
    (cd "$incoming" && sha256sum --quiet --strict -c SHA256SUMS) || die "release $version does not match its SHA256SUMS"
    mkdir "$incoming/tree"
    tar -xzf "$incoming/$bundle" -C "$incoming/tree" --no-same-owner
    source="$incoming/tree"
    # Bundles wrap everything in one top-level directory, cadfleet-<version>/.
    set -- "$incoming"/tree/*
    if [ "$#" -eq 1 ] && [ -d "$1" ]; then source="$1"; fi
    mv "$source" "$target"
    rm -rf "$incoming"
  fi
  # Swap the symlink atomically: units that start meanwhile see the old or the new release.
  ln -sfn "releases/$version" "$base/.current.new"
  mv -Tf "$base/.current.new" "$base/current"
}

start_unit() {
  local unit="cadfleet-$ROLE.service" shipped="$ROOT${INSTALL_DIR}/current/systemd/cadfleet-$ROLE.service"
  if [ ! -e "$ROOT/etc/systemd/system/$unit" ] && [ -f "$shipped" ]; then
    install -D -m 0644 "$shipped" "$ROOT/etc/systemd/system/$unit"
  fi
  systemctl daemon-reload
  systemctl enable --now "$unit" || die "cannot start $unit"
  log "started $unit"
}

log "boot of a $ROLE host of $ENVIRONMENT"
ensure_aws_cli
ensure_ssm_agent
claim_elastic_ip
ensure_service_user
write_settings
status=0
version=$(current_version) || status=$?
case "$status" in
  0)
    install_release "$version"
    start_unit
    ;;
  3)
    # The first apply creates hosts before any release exists: cadfleet deploy installs it.
    log "no release pointer at s3://$RELEASES_BUCKET/${RELEASE_POINTER_KEY} yet: nothing to install"
    ;;
  *) exit 1 ;;
esac
log "done"
`;
}
