#!/usr/bin/env bash
# No function in src/ is longer than 80 lines (issue 13): clang-tidy's readability-function-size
# over every source of src/, with the build's compile commands. A canary first: a function of 90
# lines must be reported, or the check proves nothing.
set -uo pipefail
source_dir=$1
build_dir=$2
tidy=$(command -v clang-tidy || command -v clang-tidy-14) || {
  echo "clang-tidy is not installed (scripts/install-deps installs it)"
  exit 1
}
options='{CheckOptions: [{key: readability-function-size.LineThreshold, value: 80}]}'
checks='-*,readability-function-size'

canary=$(mktemp --suffix=.cc)
trap 'rm -f "$canary"' EXIT
{
  echo "int long_one(int x) {"
  for i in $(seq 1 90); do echo "  x += $i;"; done
  echo "  return x;"
  echo "}"
} >"$canary"
if ! "$tidy" --quiet -checks="$checks" -config="$options" "$canary" -- -std=c++20 2>/dev/null |
  grep -q "function 'long_one' exceeds"; then
  echo "the canary of 90 lines was not reported: the check does not work"
  exit 1
fi

cd "$source_dir" || exit 1
report=$(mktemp)
find src -name '*.cc' -print0 |
  xargs -0 -P "$(nproc)" -n 4 "$tidy" -p "$build_dir" --quiet -checks="$checks" \
    -config="$options" >"$report" 2>/dev/null
status=$?
warnings=$(grep 'warning:' "$report" | sort -u)
rm -f "$report"
if [ -n "$warnings" ]; then
  echo "functions over 80 lines (split them):"
  echo "$warnings"
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "clang-tidy failed on some source (exit $status): run it by hand to see why"
  exit 1
fi
echo "no function in src/ is longer than 80 lines ($(find src -name '*.cc' | wc -l) sources)"
