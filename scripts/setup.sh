#!/usr/bin/env bash
# Installs what cadfleet needs on a Debian or Ubuntu machine: system packages from apt, then the
# npm packages (npm ci also builds dist/). Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project uses, and why.
PACKAGES=(
  assimp-testmodels # real sample models (IFC, OBJ, PLY, FBX, DAE, glTF, 3DS, OFF) for tests and the demo
  occt-draw         # native OpenCASCADE: the baseline of `npm run bench -- convert` and `-- scale`
  g++               # builds the converter's native B-rep engine (app/native, scripts/build-native.mjs)
  libocct-data-exchange-dev       # ... against OpenCASCADE 7.6: STEP, IGES, XDE and the glTF writer
  libocct-modeling-algorithms-dev # ... meshing (BRepMesh)
  libocct-ocaf-dev                # ... the XDE document
  libocct-visualization-dev       # ... whose headers the glTF writer includes
  time              # GNU time: peak memory in `npm run bench -- scale`
  ca-certificates
  curl              # tests reach the fleet's load balancer as an outside client; terraform's download
  unzip             # terraform's release zip (scripts/ensure-terraform.sh)
  gnupg             # ... whose SHA256SUMS signature is checked against HashiCorp's key
  gpgv
  postgresql        # the service's state (tests and `npm run demo` start private instances)
  redis-server      # the service's queue and node registry
  systemd-container # systemd-nspawn: the local fleet's hosts
  debootstrap       # builds the local fleet's base image
  iproute2          # the local fleet's bridge, namespaces and veths
  openssh-client    # reaching the hosts
  openssl           # the local fleet's CA and certificates
  ansible           # the playbooks (ansible-core 2.14 with community.postgresql, amazon.aws)
  ansible-lint
  python3-boto3     # the amazon.aws.aws_ec2 inventory lists the hosts of an AWS environment
  awscli            # the one-time steps of docs/aws.md (cadfleet doctor --env <aws env> checks the rest)
  postgresql-client # tests check the data host's PostgreSQL as the app reaches it
  redis-tools       # ... and its Redis
  shellcheck        # lints the boot script the stacks render (test/stacks) and the workflows (test/workflows)
  zsh               # test/cli runs the zsh completion script
  chromium          # the viewer test (playwright-core drives it headless)
  pebble            # Let's Encrypt's test ACME server: the LB's certificate by ACME, in the fleet suite
  nginx             # test/ansible/nginx-lb-errors and nginx-lb-reload, and bench lb-local, run the LB's nginx.conf as a private nginx
)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root, or install sudo" >&2; exit 1; }
  SUDO=(sudo)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# terraform is not in Debian: the one on PATH if it is 1.10 or newer, else HashiCorp's pinned
# release, verified, into .cadfleet/tools/ (the script says what to do when it cannot).
bash scripts/ensure-terraform.sh

node_version=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
IFS=. read -r node_major node_minor _ <<<"$node_version"
if [ "$node_major" -lt 20 ] || { [ "$node_major" -eq 20 ] && [ "$node_minor" -lt 19 ]; }; then
  echo "setup: Node.js 22 or 24 (LTS) is required (found: $(node --version 2>/dev/null || echo none)); install it from your distribution or nodejs.org" >&2
  exit 1
fi
if [ "$node_major" -lt 22 ]; then
  # Node 20 reached end of life in April 2026. The toolkit still runs on it (CI on a machine
  # that has only Node 20), so npm's EBADENGINE warnings below are expected there, and true.
  echo "setup: Node.js $node_version is past end of life: npm will warn that cadfleet, and the app's cookie and content-disposition, want Node 22 or newer; the toolkit runs on 20, the app's tests run on the release's Node 24 (npm run test:node24); install Node 22 or 24 to drop the warnings" >&2
fi

# `npm ci`: exactly the lock file, which it never rewrites. The lock lists every platform's
# optional binaries (msgpackr-extract's for macOS and Windows too), as `npm install` writes it
# anywhere, so a checkout stays clean after setup. Install scripts: package.json's allowScripts
# (README, "Install scripts").
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci (from package-lock.json)"
  npm ci --no-audit --no-fund
fi

# What an AWS environment also needs on this machine and Debian does not carry (the Session
# Manager plugin, AWS's own package): named, with the next step, not installed.
if ! command -v session-manager-plugin >/dev/null 2>&1; then
  echo "setup: for AWS environments, install the AWS CLI's Session Manager plugin too (docs.aws.amazon.com: session-manager-working-with-install-plugin; not in Debian); cadfleet doctor --env <aws env> checks every prerequisite"
fi
