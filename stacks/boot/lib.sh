# Everything the boot prints goes to its log as well as to the journal.
mkdir -p "$(dirname "$LOG_FILE")" "$STATE"
chmod 0700 "$STATE"
exec > >(tee -a "$LOG_FILE") 2>&1

# To stderr, so that a function's output captured with $(...) never swallows a log line.
log() { printf '%s cadfleet-bootstrap: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
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

# Up to RETRY_TRIES tries with a growing delay, for steps that fail for a moment (credentials, routes).
retry() {
  local attempt=1
  until "$@"; do
    if [ "$attempt" -ge "$RETRY_TRIES" ]; then return 1; fi
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
