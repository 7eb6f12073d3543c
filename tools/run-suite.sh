#!/bin/sh
# run-suite.sh: run test binaries in groups and print one closing line.
#
#   run-suite.sh GROUP BIN... [-- GROUP BIN...]...
#
# GROUP "fuzz-smoke" or "fuzz" runs each binary as a libFuzzer target for
# FUZZ_SMOKE_SECONDS (default 20) or FUZZ_SECONDS, starting from its
# committed corpus tests/fuzz/corpus/<name>/ (new inputs go to a scratch
# directory, the committed corpus is never modified); a target passes when
# it exits 0 (no finding). Any other group runs each binary as a unit-test
# program whose last line is "N passed, N failed".
set -u
total_pass=0
total_fail=0
group=""
expect_group=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
trap 'echo "run-suite: interrupted"; exit 130' INT TERM HUP

run_unit() {
    out="$scratch/out"
    "$1" >"$out" 2>&1
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "  $group $(basename "$1"): no closing line (exit $rc)"
        tail -n 20 "$out" | sed 's/^/    /'
        total_fail=$((total_fail + 1))
        return
    fi
    p=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed or sanitizer report after the summary
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    echo "  $group $(basename "$1"): $p passed, $f failed"
    if [ "$f" -ne 0 ]; then
        grep -E 'FAIL|not ok|ERROR|runtime error' "$out" | head -n 30 |
            sed 's/^/    /'
    fi
}

run_fuzz() {
    name=$(basename "$1")
    secs=${FUZZ_SMOKE_SECONDS:-20}
    [ "$group" = fuzz ] && secs=${FUZZ_SECONDS:-600}
    corpus="tests/fuzz/corpus/$name"
    work="$scratch/$name"
    mkdir -p "$work" "$corpus"
    out="$scratch/$name.log"
    "$1" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$scratch/$name-" -print_final_stats=1 \
        "$work" "$corpus" >"$out" 2>&1
    rc=$?
    execs=$(grep -E '^stat::number_of_executed_units' "$out" | awk '{print $2}')
    if [ "$rc" -eq 0 ]; then
        total_pass=$((total_pass + 1))
        echo "  $group $name: ${execs:-?} runs in ${secs}s, no findings"
    else
        total_fail=$((total_fail + 1))
        echo "  $group $name: FINDING (exit $rc)"
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$out" |
            head -n 10 | sed 's/^/    /'
        mkdir -p build/fuzz-findings
        cp "$scratch/$name-"* build/fuzz-findings/ 2>/dev/null
    fi
}

for arg in "$@"; do
    if [ "$arg" = "--" ]; then
        expect_group=1
        continue
    fi
    if [ "$expect_group" -eq 1 ]; then
        group=$arg
        expect_group=0
        continue
    fi
    case "$group" in
    fuzz | fuzz-smoke) run_fuzz "$arg" ;;
    *) run_unit "$arg" ;;
    esac
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
