read_settings() {
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
  if ! s3 cp "s3://$RELEASES_BUCKET/$POINTER_KEY" "$STATE/pointer" --only-show-errors 2>"$STATE/pointer.err"; then
    if grep -qE '\((404|NoSuchKey)\)|does not exist' "$STATE/pointer.err"; then return 3; fi
    log "cannot read s3://$RELEASES_BUCKET/$POINTER_KEY: $(tail -n 1 "$STATE/pointer.err")"
    return 1
  fi
  version=$(tr -d '[:space:]' <"$STATE/pointer")
  # The names cli/src/release/bundle.ts gives: a letter or digit, then letters, digits, dots, dashes.
  case "$version" in
    '' | [!0-9A-Za-z]* | *[!0-9A-Za-z.-]*) log "error: the release pointer holds '$version', which is not a version name"; return 2 ;;
  esac
  printf '%s\n' "$version"
}

# Downloads and checks the bundle; unpacks only its Ansible content (the release role installs the rest).
fetch_release() {
  local version="$1" dir="$STATE/release" key sums
  key="$BUNDLE_KEY_HEAD$version$BUNDLE_KEY_TAIL"
  sums="$key$SUMS_KEY_TAIL"
  rm -rf "$dir"
  mkdir -p "$dir"
  BUNDLE="$dir/$(basename "$key")"
  retry s3 cp "s3://$RELEASES_BUCKET/$key" "$BUNDLE" --only-show-errors || later "cannot download $key"
  retry s3 cp "s3://$RELEASES_BUCKET/$sums" "$dir/SHA256SUMS" --only-show-errors || later "cannot download $sums"
  (cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS) || die "release $version does not match its SHA256SUMS"
  SHA256=$(cut -d ' ' -f 1 "$dir/SHA256SUMS")
  tar -xzf "$BUNDLE" -C "$dir" --no-same-owner --wildcards '*/ansible/*'
  ANSIBLE_DIR=$(find "$dir" -mindepth 2 -maxdepth 2 -type d -name ansible | head -n 1)
  [ -f "$ANSIBLE_DIR/playbooks/host.yml" ] || die "release $version has no ansible/playbooks/host.yml"
}

configure() {
  log "configuring this host with release $VERSION's host.yml"
  (cd "$ANSIBLE_DIR" && ANSIBLE_CONFIG="$ANSIBLE_DIR/pull.cfg" ansible-playbook -i "$STATE/inventory.json" -e "@$STATE/vars.json" playbooks/host.yml) \
    || die "host.yml of release $VERSION failed (its output is above)"
}

