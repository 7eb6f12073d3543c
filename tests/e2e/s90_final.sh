# s90_final.sh: checks over the whole run (keep this file last).

final_qdb_clean() {
    local st
    st=$(qctl stats)
    expect "violations=0" "$(echo "$st" | grep -o 'violations=[0-9]*')" \
        "the firewall never sent QubesDB data dom0 would refuse"
    expect "errors=0" "$(echo "$st" | grep -o 'errors=[0-9]*')" \
        "no RESP_ERROR from the firewall"
    expect_match "pushed=* acked=*" "$(echo "$st" | grep -o 'pushed=[0-9]* acked=[0-9]*')" \
        "pushed changes acknowledged"
    local p a
    p=$(echo "$st" | sed -n 's/.*pushed=\([0-9]*\).*/\1/p')
    a=$(echo "$st" | sed -n 's/.*acked=\([0-9]*\).*/\1/p')
    expect "$p" "$a" "every pushed change was acknowledged (RESP_OK)"
}
e2e_add final_qdb_clean "QubesDB conversation stayed valid (as dom0 judges it)"
