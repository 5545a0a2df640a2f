#!/bin/sh
# Runs inside the freshly bootstrapped root (chroot) of the local fleet's base image.
# Everything per host (machine-id, SSH host keys, hostname, authorized keys) is made per host
# at `cadfleet local up`, never here: every host must differ.
set -eu

# The SSH user, as on Debian's AWS images.
id admin >/dev/null 2>&1 || useradd --create-home --shell /bin/bash admin
echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-admin
chmod 0440 /etc/sudoers.d/90-admin

# Host identity is per host.
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

# Services exist on every host but run only where a role enables them.
for unit in nginx postgresql redis-server chrony; do
  systemctl disable "$unit" >/dev/null 2>&1 || true
done
systemctl enable ssh >/dev/null 2>&1

# Containers keep time from the machine; chrony cannot set the clock in one.
# Journald: keep logs small on a fleet of small hosts.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nSystemMaxUse=64M\n' > /etc/systemd/journald.conf.d/10-cadfleet.conf

sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen >/dev/null
echo 'LANG=en_US.UTF-8' > /etc/default/locale

apt-get clean
rm -rf /var/lib/apt/lists/*
