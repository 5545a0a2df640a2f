# The load balancer keeps one Elastic IP across host replacements: a new host takes it over.
claim_elastic_ip() {
  [ -n "$ELASTIC_IP_ALLOCATION" ] || return 0
  retry aws ec2 associate-address --allocation-id "$ELASTIC_IP_ALLOCATION" --instance-id "$INSTANCE" --allow-reassociation >/dev/null \
    || later "cannot associate Elastic IP $ELASTIC_IP_ALLOCATION"
  log "associated Elastic IP $ELASTIC_IP_ALLOCATION with $INSTANCE"
}

