#!/usr/bin/env bash
# A throwaway, real S3 server for chunkpoint's tests and benchmarks: a
# one-node Ceph cluster (1 monitor, 1 OSD, 1 RADOS Gateway) on loopback.
#
# Why Ceph RGW and not a mock: the S3 store must behave against a real
# server's semantics (conditional PUT, multipart, pagination, batch delete,
# error codes), and RGW is one of the S3 implementations chunkpoint targets.
# It starts in a second or two and keeps its data in RAM (memstore), so every
# test run starts from an empty server and leaves nothing behind.
#
#   install: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw uuid-runtime curl
#   usage:   S3_DIR=<dir> scripts/ceph-s3.sh start|stop|env|perf
#     start  start the cluster; all state lives under $S3_DIR (created, must be empty or absent)
#     stop   stop it and remove $S3_DIR (only if this script created it)
#     env    print the AWS_* variables that point chunkpoint (and the aws CLI) at it
#     perf   print the gateway's request counters (JSON), e.g. to count S3 requests per checkpoint
#   env:     S3_DIR (required), S3_PORT (7480), S3_MON_PORT (13300),
#            S3_ACCESS_KEY (testkey), S3_SECRET_KEY (testsecret)
#
# Security: cephx authentication is off and everything binds to 127.0.0.1;
# this is a test fixture, never a deployment recipe.
set -euo pipefail
D=${S3_DIR:?set S3_DIR to a directory for the server state (created; removed on stop)}
PORT=${S3_PORT:-7480}
MONPORT=${S3_MON_PORT:-13300}
ACCESS_KEY=${S3_ACCESS_KEY:-testkey}
SECRET_KEY=${S3_SECRET_KEY:-testsecret}

alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }

stop() {
  # radosgw first: it hangs on shutdown when the monitor is already gone.
  # Then the OSD and the monitor together. Only pids whose command really is a
  # Ceph daemon are signalled, so a stale pid file can never kill a stranger.
  for group in "client.rgw" "osd.0 mon.a"; do
    pids=""
    for n in $group; do
      p=$(cat "$D/$n.pid" 2>/dev/null) || continue
      case $(cat "/proc/$p/comm" 2>/dev/null) in ceph-mon|ceph-osd|radosgw) pids="$pids $p"; kill "$p" || true;; esac
    done
    for p in $pids; do
      for _ in $(seq 1 50); do alive "$p" || break; sleep 0.1; done
      kill -9 "$p" 2>/dev/null || true
    done
  done
  # Only ever delete a directory this script populated (it holds our ceph.conf).
  if [ -e "$D/ceph.conf" ]; then rm -rf "$D"; fi
}

start() {
  stop
  if [ -n "$(ls -A "$D" 2>/dev/null)" ]; then echo "$D exists and is not empty" >&2; return 1; fi
  mkdir -p "$D/mon.a" "$D/osd.0" "$D/rgw" "$D/log"
  local fsid; fsid=$(uuidgen)
  # Settings, and why:
  # - auth none + loopback: no keyrings to manage for a throwaway cluster.
  # - run_dir/admin_socket/log/pid under $D: nothing is written to /var or /etc,
  #   so it runs unprivileged and several clusters can run side by side.
  # - paxos intervals near zero: the monitor commits map changes at once
  #   instead of batching them for a second, which is most of the start time.
  # - pool size 1, no redundancy warnings, 8 PGs, no autoscaler: one OSD must
  #   be enough for every pool RGW creates, and PG count stays tiny.
  # - mon_data_avail_*: do not refuse writes on a nearly full test disk.
  # - memstore (2 GiB cap): data in RAM, fast, gone on stop.
  cat > "$D/ceph.conf" <<CONF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$MONPORT
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc secure
run_dir = $D
admin_socket = $D/\$name.asok
log_file = $D/log/\$name.log
pid_file = $D/\$name.pid
keyring = $D/keyring
paxos_propose_interval = 0.01
paxos_min_wait = 0.001
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 1
mon_data_avail_crit = 0
mon_max_pg_per_osd = 1000
client_mount_timeout = 30
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
# Loopback only: no wire for a CRC to guard, and the CRC of every byte between
# gateway and OSD was ~14% of the server's CPU, taken from the client's cores.
ms_crc_data = false
ms_crc_header = false
[mon]
mon_cluster_log_file = $D/log/cluster.\$channel.log
mon_data = $D/mon.\$id
[osd]
osd_data = $D/osd.\$id
osd_objectstore = memstore
memstore_device_bytes = 2147483648
osd_fast_shutdown_notify_mon = false
[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:$PORT
rgw_data = $D/rgw
CONF
  local C="-c $D/ceph.conf" osd_uuid; osd_uuid=$(uuidgen)
  touch "$D/keyring"
  monmaptool --create --addv a "[v2:127.0.0.1:$MONPORT]" --fsid "$fsid" "$D/monmap" >/dev/null
  ceph-mon $C --mkfs -i a --monmap "$D/monmap"
  ceph-mon $C -i a                                  # forks into background, pid in $D/mon.a.pid
  ceph $C osd new "$osd_uuid" >/dev/null
  ceph-osd $C -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$D/log/osd-stderr.log"
  ceph-osd $C -i 0 2>>"$D/log/osd-stderr.log"       # forks, pid in $D/osd.0.pid
  # The S3 user whose keys the tests use (printed by `env`).
  radosgw-admin $C user create --uid=test --display-name=test \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  radosgw $C -n client.rgw                          # forks, pid in $D/client.rgw.pid
  # Ready means the gateway answers HTTP (an anonymous bucket listing).
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && return 0; sleep 0.1; done
  echo "radosgw did not answer on 127.0.0.1:$PORT; see $D/log" >&2; return 1
}

print_env() {
  # Path-style addressing: bucket names cannot be DNS labels of 127.0.0.1.
  # RGW ignores the region, but SigV4 signs with one, so name the default.
  cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_S3_FORCE_PATH_STYLE=true
ENV
}

perf() {
  # The gateway's own counters ("rgw": {"req", "get", "put", ...}): what the
  # server actually received, whatever client or thread sent it.
  ceph -c "$D/ceph.conf" --admin-daemon "$D/client.rgw.asok" perf dump rgw
}

case "${1:-}" in
  start|stop|perf) "$1" ;;
  env) print_env ;;
  *) echo "usage: S3_DIR=<dir> $0 start|stop|env|perf" >&2; exit 2 ;;
esac
