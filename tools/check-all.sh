#!/bin/sh
# check-all.sh: run every part of `make check`, keep going after a failed
# part, and print one closing line "N passed, N failed" summing the closing
# lines of all parts (a part without a closing line counts as one test:
# passed when its make target succeeded).
#
#   tools/check-all.sh MAKE-TARGET...
set -u
trap 'echo "check: interrupted"; exit 130' INT TERM HUP
make=${MAKE:-make}
logs=${CHECK_LOGS:-build/check-logs}
mkdir -p "$logs"
pass=0
fail=0
summary=""

for t in "$@"; do
    log="$logs/$t.log"
    start=$(date +%s)
    echo "== make $t (log: $log)"
    { $make --no-print-directory "$t" 2>&1; echo $? >"$log.rc"; } |
        tee "$log"
    rc=$(cat "$log.rc")
    secs=$(($(date +%s) - start))
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=${line%% passed*}
        f=${line#*passed, }
        f=${f%% failed}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1
        fi
    elif [ "$rc" -eq 0 ]; then
        p=1
        f=0
    else
        p=0
        f=1
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    summary="$summary
  $t: $p passed, $f failed (${secs}s)"
done

echo "== make check summary$summary"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
