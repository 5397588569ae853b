#!/usr/bin/env bash
# No function in src/ is longer than 80 lines (issue 13), counted from the first line of its name
# to its closing brace, in the sources and the headers. Universal Ctags finds every function
# definition and where it ends (a second for the whole tree; clang-tidy's
# readability-function-size took three minutes of CI for the same answer). A canary first: a
# function of 90 lines must be reported, and the tree must yield functions, or the check proves
# nothing.
set -uo pipefail
source_dir=$1
limit=80
command -v ctags >/dev/null || {
  echo "ctags is not installed (scripts/install-deps installs universal-ctags)"
  exit 1
}
ctags --version | grep -q 'Universal Ctags' || {
  echo "ctags is not Universal Ctags (scripts/install-deps installs universal-ctags)"
  exit 1
}

# Every function definition as "LINES FILE:LINE NAME".
measure() {
  ctags --languages=C++ --kinds-c++=f --fields=+ne -o - "$@" |
    awk -F'\t' '{
      start = ""; end = ""
      for (i = 4; i <= NF; i++) {
        if ($i ~ /^line:/) start = substr($i, 6)
        if ($i ~ /^end:/) end = substr($i, 5)
      }
      if (start == "" || end == "") { print "unmeasured " $2 " " $1; next }
      print end - start + 1, $2 ":" start, $1
    }'
}

canary_dir=$(mktemp -d)
trap 'rm -rf "$canary_dir"' EXIT
{
  echo "namespace a { int Long::one(int x) {"
  for i in $(seq 1 87); do echo "  x += $i;"; done
  echo "  return x;"
  echo "} }"
  echo "int short_one() { return 1; }"
} >"$canary_dir/canary.cc"
canary_report=$(measure "$canary_dir/canary.cc")
if ! grep -q "^90 .*canary.cc:1 one$" <<<"$canary_report" ||
  ! grep -q "^1 .*canary.cc:91 short_one$" <<<"$canary_report"; then
  echo "the canary was not measured right (want 90 and 1 lines): the check does not work"
  echo "$canary_report"
  exit 1
fi

cd "$source_dir" || exit 1
report=$(measure -R src)
measured=$(grep -vc '^unmeasured' <<<"$report")
unmeasured=$(grep '^unmeasured' <<<"$report")
long=$(awk -v limit="$limit" '$1 != "unmeasured" && $1 > limit' <<<"$report" | sort -rn)
if [ -n "$unmeasured" ]; then
  echo "functions whose end ctags did not find:"
  echo "$unmeasured"
  exit 1
fi
if [ -n "$long" ]; then
  echo "functions over $limit lines (split them):"
  echo "$long"
  exit 1
fi
if [ "$measured" -lt 100 ]; then
  echo "only $measured functions found in src/: run ctags by hand to see why"
  exit 1
fi
longest=$(sort -rn <<<"$report" | head -1)
echo "no function in src/ is longer than $limit lines ($measured functions; the longest: $longest)"
