secretsmanager() {
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
    secretsmanager put-secret-value --secret-id "$STREAM_SECRET" --client-request-token "$STREAM_SECRET_FIRST_VERSION" \
      --secret-string "file://$STATE/new-secret" >/dev/null 2>"$err" || log "another host gave it a value first ($(tail -n 1 "$err"))"
    rm -f "$STATE/new-secret"
    value=$(retry secretsmanager get-secret-value --secret-id "$STREAM_SECRET" --query SecretString --output text 2>"$err") \
      || later "cannot read the stream-token secret $STREAM_SECRET: $(tail -n 1 "$err")"
  fi
  # No previous version (never rotated) is the usual case.
  previous=$(secretsmanager get-secret-value --secret-id "$STREAM_SECRET" --version-stage AWSPREVIOUS --query SecretString --output text 2>/dev/null) || previous=''
  case "$value$previous" in *[!A-Za-z0-9_.~+/=-]*) die "the stream-token secret holds characters other than letters, digits and -_.~+/=" ;; esac
  [ "$(printf '%s' "$value" | wc -c)" -ge 32 ] || die "the stream-token secret is shorter than 32 characters"
  (umask 077 && {
    printf 'CADFLEET_STREAM_TOKEN_SECRET=%s\n' "$value"
    [ -z "$previous" ] || [ "$previous" = "$value" ] || printf 'CADFLEET_STREAM_TOKEN_SECRET_PREVIOUS=%s\n' "$previous"
  } >"$out")
  rm -f "$err"
}

