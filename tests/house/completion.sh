#!/usr/bin/env bash
# completions/tandem.bash against the binary: it offers exactly the subcommands `tandem --help`
# lists, and the node names of the config the command line names.
set -uo pipefail
source_dir=$1
binary=$2
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
# shellcheck source=/dev/null
source "$source_dir/completions/tandem.bash"

# Completes the words of a command line whose last word is being typed.
complete_words() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _tandem
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

listed=$("$binary" --help | sed -n '/^Subcommands:/,$p' | awk 'NR > 1 && NF {print $1}' | sort |
  tr '\n' ' ' | sed 's/ $//')
offered=$(complete_words tandem "" | tr ' ' '\n' | grep -v '^-' | sort | tr '\n' ' ' | sed 's/ $//')
[ -n "$listed" ] || fail "tandem --help listed no subcommand"
[ "$listed" = "$offered" ] || fail "subcommands: tandem --help lists '$listed', completion offers '$offered'"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/tandem.yaml" <<YAML
name: demo
nodes:
  - name: node1
    host: 127.0.0.1
    port: 5432
  - name: far_away
    host: 127.0.0.1
    port: 5433
YAML
check() {
  local want=$1
  shift
  local got
  got=$(complete_words "$@")
  [ "$got" = "$want" ] && return 0
  fail "tandem ${*:2}: want '$want', got '$got'"
  return 1
}
check "switchover" tandem sw
check "far_away node1" tandem -c "$dir/tandem.yaml" restart ""
check "far_away" tandem -c "$dir/tandem.yaml" promote f
check "far_away node1" tandem -c "$dir/tandem.yaml" switchover --to ""
check "crash" tandem local cr
check "node1" tandem -c "$dir/tandem.yaml" local start n
check "--allow-data-loss" tandem failover --al
check "--help add remove" tandem member ""
check "--data-dir" tandem member add node9 --da
check "far_away" tandem -c "$dir/tandem.yaml" member remove f
(cd "$dir" && check "far_away node1" tandem reinit "") || failures=$((failures + 1))
check "" tandem -c "$dir/missing.yaml" restart ""

if [ "$failures" -ne 0 ]; then
  echo "$failures completion checks failed"
  exit 1
fi
echo "completion: the $(wc -w <<<"$listed") subcommands and the config's node names"
