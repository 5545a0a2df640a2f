#!/usr/bin/env bash
# Makes terraform available to cadfleet. A terraform 1.10 or newer on PATH is used as it is.
# Otherwise the pinned release below is installed from HashiCorp into this checkout's
# .cadfleet/tools/terraform-<version>/ and linked as .cadfleet/tools/bin/terraform, which the
# CLI and the tests put first on their PATH. Debian has no terraform package (its licence), so
# HashiCorp's release site is the source; what it serves is checked before it is unpacked:
# SHA256SUMS must carry a good signature by HashiCorp's release key (scripts/keys/hashicorp.asc,
# fingerprint C874 011F 0AB4 0511 0D02 1055 3436 5D94 72D7 468F), and the zip must match it.
#
#   bash scripts/ensure-terraform.sh
#
# CADFLEET_TERRAFORM_RELEASES_URL points at a mirror of releases.hashicorp.com/terraform (same
# layout; what it serves is verified the same way). A machine that reaches neither can be given
# the three release files by hand in .cadfleet/tools/download/terraform-<version>/.
set -euo pipefail
cd "$(dirname "$0")/.."

# The version the stacks' plan tests run with on the machines here.
TERRAFORM_VERSION=1.11.4
MIN_MAJOR=1 MIN_MINOR=10 # the S3 backend's use_lockfile

say() { echo "ensure-terraform: $*" >&2; }

tools=$PWD/.cadfleet/tools
installed=$tools/terraform-$TERRAFORM_VERSION/terraform
link=$tools/bin/terraform

# "1.11.4" from `terraform version` of the given binary, empty when it does not run.
version_of() { "$1" version 2>/dev/null | sed -n '1s/^Terraform v\([0-9][0-9.]*\).*/\1/p'; }
recent_enough() {
  local major minor
  IFS=. read -r major minor _ <<<"$1"
  [ -n "$major" ] && { [ "$major" -gt "$MIN_MAJOR" ] || { [ "$major" -eq "$MIN_MAJOR" ] && [ "${minor:-0}" -ge "$MIN_MINOR" ]; }; }
}

if [ -x "$installed" ] && [ "$(version_of "$installed")" = "$TERRAFORM_VERSION" ]; then
  mkdir -p "$tools/bin" && ln -sfn "../terraform-$TERRAFORM_VERSION/terraform" "$link"
  say "terraform $TERRAFORM_VERSION is installed in ${installed#"$PWD"/}"
  exit 0
fi
if on_path=$(command -v terraform 2>/dev/null) && [ "$on_path" != "$link" ]; then
  found=$(version_of "$on_path")
  if recent_enough "$found"; then
    say "using terraform $found from PATH ($on_path)"
    exit 0
  fi
  say "terraform on PATH ($on_path) is ${found:-unreadable}; $MIN_MAJOR.$MIN_MINOR or newer is needed: installing $TERRAFORM_VERSION for this checkout"
fi

case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) say "no terraform build for $(uname -s)"; exit 1 ;; esac
case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) say "no terraform build for $(uname -m)"; exit 1 ;; esac

for tool in curl unzip gpg gpgv sha256sum; do
  command -v "$tool" >/dev/null || { say "$tool is needed to install terraform: apt-get install curl unzip gnupg gpgv coreutils"; exit 1; }
done

base=${CADFLEET_TERRAFORM_RELEASES_URL:-https://releases.hashicorp.com/terraform}
zip=terraform_${TERRAFORM_VERSION}_${os}_${arch}.zip
sums=terraform_${TERRAFORM_VERSION}_SHA256SUMS
sig=$sums.sig
download=$tools/download/terraform-$TERRAFORM_VERSION
mkdir -p "$download"

next_step() {
  cat >&2 <<EOF
ensure-terraform: terraform is not on PATH and could not be installed: $1
  Next step, any one of:
  - install Terraform $MIN_MAJOR.$MIN_MINOR or newer on PATH (https://developer.hashicorp.com/terraform/install), then run: bash scripts/setup.sh
  - on a machine that reaches $base, download
      $base/$TERRAFORM_VERSION/$zip
      $base/$TERRAFORM_VERSION/$sums
      $base/$TERRAFORM_VERSION/$sig
    into ${download#"$PWD"/}/ here, then run: bash scripts/ensure-terraform.sh (it verifies them the same way)
  - or point CADFLEET_TERRAFORM_RELEASES_URL at a mirror of releases.hashicorp.com/terraform and run: bash scripts/ensure-terraform.sh
EOF
  exit 1
}

for file in "$sums" "$sig" "$zip"; do
  [ -s "$download/$file" ] && continue
  say "downloading $base/$TERRAFORM_VERSION/$file"
  err=$(curl -fsSL --retry 2 --connect-timeout 15 -o "$download/$file.part" "$base/$TERRAFORM_VERSION/$file" 2>&1) || {
    rm -f "$download/$file.part"
    next_step "downloading $base/$TERRAFORM_VERSION/$file failed (${err##*$'\n'})"
  }
  mv "$download/$file.part" "$download/$file"
done

# gpgv trusts exactly the keys in the keyring it is given: HashiCorp's, nothing from ~/.gnupg.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gpg --batch --quiet --dearmor --output "$work/hashicorp.gpg" scripts/keys/hashicorp.asc
if ! gpgv --keyring "$work/hashicorp.gpg" "$download/$sig" "$download/$sums" 2>"$work/gpgv.log"; then
  sed 's/^/  /' "$work/gpgv.log" >&2
  rm -f "$download/$sums" "$download/$sig"
  say "REFUSED: $sums has no good signature by HashiCorp's release key (scripts/keys/hashicorp.asc); the downloaded files were deleted, nothing was installed"
  exit 1
fi
expected=$(awk -v f="$zip" '$2 == f { print $1 }' "$download/$sums")
actual=$(sha256sum "$download/$zip" | awk '{ print $1 }')
if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
  rm -f "$download/$zip"
  say "REFUSED: $zip has SHA-256 $actual, the signed $sums says ${expected:-nothing about it}; the zip was deleted, nothing was installed"
  exit 1
fi

unzip -q -o "$download/$zip" terraform -d "$work/unpacked"
mkdir -p "$(dirname "$installed")" "$tools/bin"
install -m 0755 "$work/unpacked/terraform" "$installed.part"
mv "$installed.part" "$installed"
ln -sfn "../terraform-$TERRAFORM_VERSION/terraform" "$link"
say "installed terraform $(version_of "$installed") (signature and checksum verified) in ${installed#"$PWD"/}"
