#!/usr/bin/env bash
# Test hosts for ferry's cluster mode, made of Linux network namespaces on
# this one machine (docs/cluster.md, "Tests on namespace hosts").
#
# Host i is the namespace ferry-hI with one interface, eth0, holding
# 10.213.0.(10+i)/24. Its peer, the port hI-port, sits on the bridge ferrybr0
# in a namespace of its own, ferry-sw, so nothing here touches the root
# namespace's interfaces or routes: the subnet exists only inside these
# namespaces and no host has a default route. `exec` runs a command in a host
# with its own hostname (a fresh UTS namespace: UCX and Gloo decide "same
# machine" partly by hostname), an /etc/hosts naming every host
# (/etc/netns/ferry-hI/hosts, which `ip netns exec` mounts over /etc/hosts),
# and its own ferry state directory. The hosts share the file system, the
# process id space and /dev/shm with this machine.
#
#   scripts/netns-cluster.sh up N            make hosts ferry-h1..ferry-hN (removes leftovers first)
#   scripts/netns-cluster.sh down            stop every process in them and remove everything `up` made
#   scripts/netns-cluster.sh exec HOST CMD…  run CMD in HOST (h2, 2 or ferry-h2) with
#                                            FERRY_TEMP_DIR=/tmp/ferry-netns/hI and FERRY_NODE_IP set
#   scripts/netns-cluster.sh cut HOST        take HOST's switch port down (HOST is cut off)
#   scripts/netns-cluster.sh heal HOST       bring it back up
#   scripts/netns-cluster.sh shape HOST RATE limit HOST's link to RATE (tc rate, e.g. 200mbit), both
#                                            ways; TCP port 6379 (the Head's) goes first
#   scripts/netns-cluster.sh unshape HOST    remove the limit
#   scripts/netns-cluster.sh status          list the hosts that exist
#
# Needs root, iproute2 (ip; tc for shape: the kernel's htb and u32), the
# kernel's veth and bridge, and util-linux (unshare). Exit codes: 0 done; 1 usage or a failed
# step; 2 not root; 3 the kernel or the sandbox refuses `ip netns add`.
set -euo pipefail

readonly HOST_PREFIX=ferry-h
readonly SWITCH_NS=ferry-sw
readonly BRIDGE=ferrybr0
readonly SUBNET_PREFIX=10.213.0
readonly HOST_OCTET_BASE=10  # host i is ${SUBNET_PREFIX}.$((HOST_OCTET_BASE + i))
readonly MAX_HOSTS=40
readonly STATE_ROOT=/tmp/ferry-netns  # FERRY_TEMP_DIR of host i is $STATE_ROOT/hI
readonly ETC_NETNS=/etc/netns
readonly LOCK_FILE=/run/lock/ferry-netns-cluster.lock
# How long `down` gives processes in a host to exit after SIGTERM before SIGKILL.
readonly TERM_GRACE_S=${FERRY_NETNS_TERM_GRACE_S:-5}

die() {
  local code=$1
  shift
  echo "netns-cluster: $*" >&2
  exit "$code"
}

usage() {
  sed -n '/^#   scripts/p' "$0" | sed 's/^#   //' >&2
  exit 1
}

require_root() {
  if [[ $(id -u) -ne 0 ]]; then
    die 2 "must run as root (network namespaces, veth pairs and bridges need CAP_NET_ADMIN and CAP_SYS_ADMIN)"
  fi
  command -v ip >/dev/null || die 1 "'ip' (iproute2) is not installed"
}

# Serializes up/down/cut/heal/shape between concurrent callers.
take_lock() {
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  flock -w 120 9 || die 1 "another netns-cluster.sh holds $LOCK_FILE for over 120 s"
}

# h2 | 2 | ferry-h2 -> 2
host_index() {
  local h=$1
  h=${h#"$HOST_PREFIX"}
  h=${h#h}
  if ! [[ $h =~ ^[0-9]+$ ]] || ((10#$h < 1 || 10#$h > MAX_HOSTS)); then
    die 1 "bad host '$1' (want h1..h$MAX_HOSTS)"
  fi
  echo "$((10#$h))"
}

host_ns() { echo "${HOST_PREFIX}$1"; }
host_ip() { echo "${SUBNET_PREFIX}.$((HOST_OCTET_BASE + $1))"; }
switch_port() { echo "h$1-port"; }

ns_exists() { [[ -e /run/netns/$1 ]]; }

require_host() {
  local i=$1
  ns_exists "$(host_ns "$i")" || die 1 "host $(host_ns "$i") does not exist (run: $0 up N)"
}

# Namespaces this script made: ferry-sw and ferry-h<digits>.
our_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^(${SWITCH_NS}|${HOST_PREFIX}[0-9]+)$" || true
}

# Stops every process in namespace $1: SIGTERM, then SIGKILL after TERM_GRACE_S.
stop_processes_in() {
  local ns=$1 pids deadline
  pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
  [[ -z ${pids// /} ]] && return 0
  echo "netns-cluster: stopping processes left in $ns: $pids"
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  deadline=$((SECONDS + TERM_GRACE_S))
  while ((SECONDS < deadline)); do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
    [[ -z ${pids// /} ]] && return 0
    sleep 0.1
  done
  echo "netns-cluster: SIGKILL to processes still in $ns: $pids"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

cmd_down() {
  local ns removed=()
  for ns in $(our_namespaces); do
    stop_processes_in "$ns"
  done
  # Deleting a namespace deletes the interfaces in it; each veth goes with
  # its peer, and the bridge with ferry-sw.
  for ns in $(our_namespaces); do
    ip netns del "$ns" && removed+=("$ns")
  done
  if [[ -d $ETC_NETNS ]]; then
    local d
    for d in "$ETC_NETNS"/"${HOST_PREFIX}"*; do
      [[ -d $d ]] || continue
      rm -rf -- "$d"
    done
    rmdir "$ETC_NETNS" 2>/dev/null || true
  fi
  if ((${#removed[@]})); then
    echo "netns-cluster: removed namespaces ${removed[*]} (with their veth pairs and bridge $BRIDGE)"
  else
    echo "netns-cluster: nothing to remove"
  fi
  local left
  left=$(our_namespaces)
  [[ -z $left ]] || die 1 "namespaces still present after down: $left"
}

add_namespace() {
  local ns=$1 err
  if ! err=$(ip netns add "$ns" 2>&1); then
    cmd_down >/dev/null 2>&1 || true
    die 3 "'ip netns add $ns' failed: $err (network namespaces are not available here: a container without CAP_SYS_ADMIN, or a kernel without CONFIG_NET_NS)"
  fi
  ip -n "$ns" link set lo up
}

# Fails with exit code 3 unless this process may make (and remove) a named
# network namespace; touches nothing else.
probe_namespaces() {
  local probe="ferry-probe-$$" err
  if ! err=$(ip netns add "$probe" 2>&1); then
    die 3 "'ip netns add' failed: $err (network namespaces are not available here: a container without CAP_SYS_ADMIN, or a kernel without CONFIG_NET_NS)"
  fi
  if ! err=$(ip netns del "$probe" 2>&1); then
    die 3 "'ip netns del $probe' failed: $err"
  fi
}

cmd_up() {
  local n=${1:-}
  if ! [[ $n =~ ^[0-9]+$ ]] || ((10#$n < 1 || 10#$n > MAX_HOSTS)); then
    die 1 "up: want a host count 1..$MAX_HOSTS, got '$n'"
  fi
  n=$((10#$n))
  probe_namespaces
  cmd_down >/dev/null
  rm -rf -- "$STATE_ROOT"

  add_namespace "$SWITCH_NS"
  ip -n "$SWITCH_NS" link add "$BRIDGE" type bridge
  ip -n "$SWITCH_NS" link set "$BRIDGE" up

  local i ns port hosts_file
  for ((i = 1; i <= n; i++)); do
    ns=$(host_ns "$i")
    port=$(switch_port "$i")
    add_namespace "$ns"
    # Made inside ferry-sw with its peer created straight into the host, so
    # no interface ever appears in the root namespace.
    ip -n "$SWITCH_NS" link add "$port" type veth peer name eth0 netns "$ns"
    ip -n "$SWITCH_NS" link set "$port" master "$BRIDGE"
    ip -n "$SWITCH_NS" link set "$port" up
    ip -n "$ns" addr add "$(host_ip "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    install -d -m 0700 "$STATE_ROOT" "$STATE_ROOT/h$i"
  done

  # Every host resolves every host's name (and its own) to its subnet address.
  for ((i = 1; i <= n; i++)); do
    mkdir -p "$ETC_NETNS/$(host_ns "$i")"
    hosts_file="$ETC_NETNS/$(host_ns "$i")/hosts"
    {
      echo "127.0.0.1 localhost"
      echo "::1 localhost ip6-localhost ip6-loopback"
      local j
      for ((j = 1; j <= n; j++)); do
        echo "$(host_ip "$j") $(host_ns "$j")"
      done
    } >"$hosts_file"
  done

  echo "netns-cluster: made bridge $BRIDGE in namespace $SWITCH_NS and $n hosts on ${SUBNET_PREFIX}.0/24:"
  printf '  %-10s %-14s %-6s %-12s %s\n' host address iface "switch port" FERRY_TEMP_DIR
  for ((i = 1; i <= n; i++)); do
    printf '  %-10s %-14s %-6s %-12s %s\n' "$(host_ns "$i")" "$(host_ip "$i")" eth0 \
      "$(switch_port "$i")" "$STATE_ROOT/h$i"
  done
}

cmd_exec() {
  [[ $# -ge 2 ]] || die 1 "exec: want HOST CMD..."
  local i ns
  i=$(host_index "$1")
  shift
  ns=$(host_ns "$i")
  require_host "$i"
  command -v unshare >/dev/null || die 1 "'unshare' (util-linux) is not installed"
  install -d -m 0700 "$STATE_ROOT" "$STATE_ROOT/h$i"
  export FERRY_TEMP_DIR="$STATE_ROOT/h$i"
  export FERRY_NODE_IP
  FERRY_NODE_IP=$(host_ip "$i")
  # ip netns exec and unshare (without --fork) both exec, so CMD ends up with
  # this process's pid: a caller's timeout or kill reaches it.
  # shellcheck disable=SC2016
  exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$ns" "$@"
}

# Waits until HOST's eth0 and its switch port both report carrier (deadline 10 s).
wait_link_up() {
  local i=$1 deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    if ip -n "$(host_ns "$i")" link show eth0 | grep -q 'LOWER_UP' &&
      ip -n "$SWITCH_NS" link show "$(switch_port "$i")" | grep -q 'LOWER_UP'; then
      return 0
    fi
    sleep 0.05
  done
  die 1 "heal: $(host_ns "$i")'s link has no carrier after 10 s"
}

cmd_cut() {
  local i
  i=$(host_index "${1:-}")
  require_host "$i"
  ip -n "$SWITCH_NS" link set "$(switch_port "$i")" down
  echo "netns-cluster: cut $(host_ns "$i") off (switch port $(switch_port "$i") down in $SWITCH_NS)"
}

cmd_heal() {
  local i
  i=$(host_index "${1:-}")
  require_host "$i"
  ip -n "$SWITCH_NS" link set "$(switch_port "$i")" up
  wait_link_up "$i"
  # Neighbour entries that failed while the host was cut off would make the
  # first packets after healing fail; forget them, on every host.
  local ns
  for ns in $(our_namespaces); do
    [[ $ns == "$SWITCH_NS" ]] || ip -n "$ns" neigh flush dev eth0 2>/dev/null || true
  done
  echo "netns-cluster: healed $(host_ns "$i") (switch port $(switch_port "$i") up in $SWITCH_NS)"
}

# Limits HOST's link to RATE on both ends: eth0 (HOST -> switch) and its
# switch port (switch -> HOST). An HTB tree with two classes: TCP to or from
# PRIORITY_PORT (the Head's, so node heartbeats) goes first, in a queue of its
# own, so that a bulk transfer filling the link neither delays nor drops it;
# everything else shares the rest.
readonly PRIORITY_PORT=${FERRY_NETNS_PRIORITY_PORT:-6379}
shape_dev() {
  local ns=$1 dev=$2 rate=$3
  tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null || true
  tc -n "$ns" qdisc add dev "$dev" root handle 1: htb default 20
  tc -n "$ns" class add dev "$dev" parent 1: classid 1:1 htb rate "$rate" ceil "$rate" quantum 1514
  tc -n "$ns" class add dev "$dev" parent 1:1 classid 1:10 htb rate 1mbit ceil "$rate" prio 0 quantum 1514
  tc -n "$ns" class add dev "$dev" parent 1:1 classid 1:20 htb rate "$rate" ceil "$rate" prio 1 quantum 1514
  tc -n "$ns" filter add dev "$dev" parent 1: protocol ip prio 1 u32 \
    match ip protocol 6 0xff match ip dport "$PRIORITY_PORT" 0xffff flowid 1:10
  tc -n "$ns" filter add dev "$dev" parent 1: protocol ip prio 1 u32 \
    match ip protocol 6 0xff match ip sport "$PRIORITY_PORT" 0xffff flowid 1:10
}

cmd_shape() {
  local i rate=${2:-}
  i=$(host_index "${1:-}")
  require_host "$i"
  [[ -n $rate ]] || die 1 "shape: want HOST RATE (a tc rate such as 200mbit)"
  command -v tc >/dev/null || die 1 "'tc' (iproute2) is not installed"
  shape_dev "$(host_ns "$i")" eth0 "$rate"
  shape_dev "$SWITCH_NS" "$(switch_port "$i")" "$rate"
  echo "netns-cluster: $(host_ns "$i")'s link limited to $rate each way (TCP port $PRIORITY_PORT first)"
}

cmd_unshape() {
  local i
  i=$(host_index "${1:-}")
  require_host "$i"
  tc -n "$(host_ns "$i")" qdisc del dev eth0 root 2>/dev/null || true
  tc -n "$SWITCH_NS" qdisc del dev "$(switch_port "$i")" root 2>/dev/null || true
  echo "netns-cluster: $(host_ns "$i")'s link unlimited"
}

cmd_status() {
  local ns
  for ns in $(our_namespaces); do
    echo "$ns: $(ip -n "$ns" -br addr | tr -s ' ' | tr '\n' ';')"
  done
}

main() {
  local cmd=${1:-}
  [[ -n $cmd ]] || usage
  shift
  require_root
  case $cmd in
    up) take_lock; cmd_up "$@" ;;
    down) take_lock; cmd_down ;;
    exec) cmd_exec "$@" ;;
    cut) take_lock; cmd_cut "$@" ;;
    heal) take_lock; cmd_heal "$@" ;;
    shape) take_lock; cmd_shape "$@" ;;
    unshape) take_lock; cmd_unshape "$@" ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *) die 1 "unknown command '$cmd'" ;;
  esac
}

main "$@"
