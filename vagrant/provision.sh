#!/usr/bin/env bash
# Provisions one VM of the lab (Vagrantfile). Usage: provision.sh node|client LAB_IP CLIENT_IP
# node:   dependencies, build, deploy/install.sh, XDP on the lab interface, lab policy, upstream.
# client: the HTTP clients the README uses.
set -euo pipefail
role=$1 lab_ip=$2 client_ip=$3
export DEBIAN_FRONTEND=noninteractive

if [[ $role == client ]]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends curl wrk
  exit 0
fi

/riskgate/scripts/install-deps
# Build outside the synced folder: `vagrant rsync` would wipe a build tree inside it.
build=/var/tmp/riskgate-build
cmake -S /riskgate -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)" --target riskgated riskgatectl
/riskgate/deploy/install.sh --build-dir "$build" --no-start

# XDP on the interface that carries the lab network (its name depends on the box and provider).
iface=$(ip -o -4 addr show | awk -v ip="$lab_ip" '{ split($4, a, "/") } a[1] == ip { print $2; exit }')
[[ -n $iface ]] || { echo "provision: no interface has $lab_ip" >&2; exit 1; }
sed -i "s/^  xdp: \[\]/  xdp: [$iface]/" /etc/riskgate/riskgate.yaml
grep -q "xdp: \[$iface\]" /etc/riskgate/riskgate.yaml || { echo "provision: could not set xdp in riskgate.yaml" >&2; exit 1; }

# The lab policy: the client as an off-node identity, a service in front of a local upstream.
sed -e "s/@LAB_IP@/$lab_ip/" -e "s/@CLIENT_IP@/$client_ip/" /riskgate/vagrant/lab-policy.yaml \
  > /etc/riskgate/policies/lab.yaml

# The upstream: a static file server on loopback, as a transient unit (gone after a reboot; re-run
# `vagrant provision` to bring the lab back).
mkdir -p /srv/lab/orders
echo "orders on $(hostname)" > /srv/lab/orders/index.html
systemctl stop rg-lab-upstream.service 2>/dev/null || true
systemd-run --unit rg-lab-upstream --property Restart=always \
  python3 -m http.server --bind 127.0.0.1 9000 --directory /srv/lab

systemctl restart riskgated.service
systemctl --no-pager --lines=10 status riskgated.service
