#!/bin/sh
# Managed by cadfleet (role release). Puts a release bundle in place in one step: checks its
# sha256, unpacks it beside the releases, then moves it under its name (a release folder is there
# whole or not at all), and removes the bundle. With KEEP, it then removes the releases installed
# before the KEEP most recent ones, never the one `current` points at nor this one.
# Usage: install-release.sh BUNDLE SHA256 DEST [KEEP]   (DEST: <release root>/releases/<version>)
set -eu
umask 022
bundle=$1 expected=$2 dest=$3 keep=${4:-0}
actual=$(sha256sum "$bundle" | cut -d ' ' -f 1)
if [ "$actual" != "$expected" ]; then
  echo "the release bundle's sha256 is $actual, not $expected: refusing to install it" >&2
  exit 1
fi
partial="$dest.partial"
rm -rf "$partial"
mkdir -p "$partial"
chmod 0755 "$partial"
tar -xzf "$bundle" -C "$partial" --strip-components=1
if [ ! -f "$partial/VERSION" ]; then
  echo "the release bundle has no VERSION file: refusing to install it" >&2
  rm -rf "$partial"
  exit 1
fi
rm -rf "$dest"
mv "$partial" "$dest"
rm -f "$bundle"

# Only an install can make one release too many. Release folders carry the bundle's fixed mtime
# (reproducible tars): their ctime says when each was installed.
[ "$keep" -gt 0 ] || exit 0
releases=$(dirname "$dest")
current=$(readlink -f "$(dirname "$releases")/current" || true)
ls -1dtc "$releases"/*/ | sed 's:/*$::' | grep -v '\.partial$' | tail -n +"$((keep + 1))" | while read -r old; do
  [ "$old" = "$dest" ] || [ "$old" = "$current" ] || rm -rf "$old"
done
