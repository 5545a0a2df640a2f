log "boot of a $ROLE host of $ENVIRONMENT"
# The agent first: a host whose apt fails below (a mirror error, dpkg locked) is still reachable
# through Session Manager while its boot tries again.
ensure_ssm_agent
ensure_tools
INSTANCE=$(retry imds instance-id) || later "no instance id from the metadata service"
ADDRESS=$(retry imds local-ipv4) || later "no private address from the metadata service"
# The role's own steps: only the program of a host whose role has them defines them.
if declare -F claim_elastic_ip >/dev/null; then claim_elastic_ip; fi
read_settings
if declare -F read_stream_secret >/dev/null; then read_stream_secret; fi
status=0
VERSION=$(current_version) || status=$?
case "$status" in
  0) ;;
  3) WAITING=release; later "no release at s3://$RELEASES_BUCKET/$POINTER_KEY yet (cadfleet upgrade publishes the first)" ;;
  *) later "no release version to install" ;;
esac
fetch_release "$VERSION"
write_inventory_and_vars
configure
rm -rf "$STATE/release" "$STATE/vars.json" "$STATE/tls.pem" "$STATE/secrets.env"
log "done: release $VERSION, $ROLE configured"
date -u +%Y-%m-%dT%H:%M:%SZ >"$STATE/done"
