#!/usr/bin/env bash
# The Debian package, installed as a DBA would (apt-get install ./tandem_*.deb): its files, its
# man page and unit, and a local cluster run from the installed /usr/bin/tandem — a primary and
# a standby streaming from it. The package is removed again, whatever happens.
# Usage: tests/package/install_deb.sh BUILD_DIR (a Release build; needs root: exits 77, a skip,
# without it, and refuses to run where a tandem package is already installed)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
  echo "install_deb: installing a package needs root: skipped" >&2
  exit 77
fi
if dpkg-query -W -f='${Status}' tandem 2>/dev/null | grep -q "install ok installed"; then
  echo "install_deb: FAILED: a tandem package is already installed here; this test installs and" \
    "removes its own (left as it is)" >&2
  exit 1
fi
build=$(realpath "$1")
src=$(realpath "$(dirname "$0")/../..")
work=$(mktemp -d /tmp/tandem-deb-XXXXXX)
chmod 0755 "$work"
cluster="$work/cluster"
fail() { echo "install_deb: FAILED: $*" >&2; exit 1; }
installed=""  # set once this test has installed the package: only then does it remove it
cleanup() {
  if [ -x /usr/bin/tandem ] && [ -f "$cluster/tandem.yaml" ]; then
    /usr/bin/tandem -c "$cluster/tandem.yaml" local down >/dev/null 2>&1 || true
  fi
  if [ -n "$installed" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -qq tandem >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

deb=$("$src/scripts/make-deb" "$build" "$work")
[ -f "$deb" ] || fail "no package built"
case "$(basename "$deb")" in tandem_*_amd64.deb) ;; *) fail "unexpected name $deb" ;; esac

# What it declares and holds.
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libpq5 libmicrohttpd libyaml-cpp postgresql-15; do
  echo "$depends" | grep -q "$dep" || fail "Depends lacks $dep: $depends"
done
# The notify protocol is spoken directly: libsystemd is not loaded into every agent.
if echo "$depends" | grep -q libsystemd; then fail "Depends names libsystemd: $depends"; fi
contents=$(dpkg-deb -c "$deb")
for file in ./usr/bin/tandem ./usr/libexec/tandem/tandem-watchdog ./lib/systemd/system/tandem@.service \
  ./lib/systemd/system/tandem-repository.service \
  ./usr/share/man/man1/tandem.1.gz ./usr/share/doc/tandem/copyright \
  ./usr/share/doc/tandem/changelog.gz ./usr/share/doc/tandem/examples/haproxy.cfg \
  ./usr/share/bash-completion/completions/tandem; do
  echo "$contents" | grep -q " $file\$" || fail "the package lacks $file"
done

installed=yes
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >/dev/null ||
  fail "apt-get install $deb"
[ "$(/usr/bin/tandem --version)" = "tandem $(dpkg-deb -f "$deb" Version)" ] ||
  fail "the installed binary says $(/usr/bin/tandem --version)"
zcat /usr/share/man/man1/tandem.1.gz | grep -q '^\.TH TANDEM "1"' || fail "no man page"
zcat /usr/share/man/man1/tandem.1.gz | grep -q 'switchover' || fail "the man page lacks commands"
# Every subcommand's own options, not the top-level help alone.
for option in 'allow-data-loss' 'tandem local crash' 'api-base-port' 'gone-longer-than'; do
  zcat /usr/share/man/man1/tandem.1.gz | grep -q -- "$option" || fail "the man page lacks $option"
done
bash -c 'source /usr/share/bash-completion/completions/tandem && complete -p tandem' >/dev/null ||
  fail "the installed bash completion does not load"
(cd "$work" && cp /lib/systemd/system/tandem@.service "tandem@node1.service" &&
  systemd-analyze verify "./tandem@node1.service") || fail "the installed unit is not valid"
systemd-analyze verify /lib/systemd/system/tandem-repository.service ||
  fail "the installed repository host's unit is not valid"

# A local cluster from the installed binary: a primary and a standby streaming from it.
# Two free ports in a row (PostgreSQL's; the agents' API ports follow 2576 above).
port=$(python3 -c '
import socket
for base in range(31000, 39000, 7):
    try:
        taken = []
        for p in (base, base + 1, base + 2576, base + 2577):
            s = socket.socket(); s.bind(("127.0.0.1", p)); taken.append(s)
        print(base); break
    except OSError:
        continue')
/usr/bin/tandem local up --dir "$cluster" --standbys 1 --base-port "$port" >"$work/up.log" 2>&1 ||
  { cat "$work/up.log"; fail "tandem local up"; }
streaming=""
for _ in $(seq 1 100); do
  status=$(/usr/bin/tandem -c "$cluster/tandem.yaml" status --json 2>/dev/null || true)
  if echo "$status" | python3 -c '
import json, sys
report = json.load(sys.stdin)
roles = sorted(node.get("role", "") for node in report.get("nodes", []))
streams = [node for node in report.get("nodes", [])
           if (node.get("replication") or {}).get("state") == "streaming"]
sys.exit(0 if roles == ["primary", "standby"] and streams else 1)' 2>/dev/null; then
    streaming=yes
    break
  fi
  sleep 0.3
done
[ -n "$streaming" ] || { echo "$status"; fail "no primary with a streaming standby"; }
# Each agent's watchdog is the installed program, exec'd: not a copy of the agent.
watchdogs=0
for agent in $(pgrep -f "^/usr/bin/tandem -c $cluster/tandem.yaml agent"); do
  for child in $(pgrep -P "$agent" -x tandem-watchdog); do
    [ "$(readlink "/proc/$child/exe")" = /usr/libexec/tandem/tandem-watchdog ] ||
      fail "agent $agent's watchdog runs $(readlink "/proc/$child/exe")"
    watchdogs=$((watchdogs + 1))
  done
done
[ "$watchdogs" -eq 2 ] || fail "$watchdogs watchdogs run the installed program, not 2"
/usr/bin/tandem -c "$cluster/tandem.yaml" local down >/dev/null || fail "tandem local down"
DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -qq tandem >/dev/null || fail "apt-get remove"
installed=""
[ ! -e /usr/bin/tandem ] || fail "/usr/bin/tandem is still there after the removal"
echo "install_deb: $(basename "$deb") installed, ran a primary and a streaming standby, removed"
