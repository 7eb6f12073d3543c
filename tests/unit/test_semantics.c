/*
 * test_semantics.c: one test per behaviour bullet of semantics.md, named
 * after its number in docs/semantics-coverage.md (sem_sNN_...), driven
 * end to end through the public API (qw_rx, qw_poll, qw_qdb_*, attach)
 * with byte-exact frames from test_fw_fixtures.h.
 */
#include "test_fw_harness.h"

/* ---- Rules: where they come from ---- */

/* S01: rules apply only at a commit, never half-written. */
TEST(sem_s01_rules_applied_at_commit_only)
{
    struct tfw *t = t_setup();
    struct qw_link_stats st;

    /* dom0 starts rewriting work's tree: rm, then entries without the
     * commit. The old rules stay in force meanwhile. */
    t_qdb(t, QDB_CMD_RM, "/qubes-firewall/10.137.0.10/", NULL);
    t_write(t, "/qubes-firewall/10.137.0.10/policy", "drop");
    t_write(t, "/qubes-firewall/10.137.0.10/0000", "action=drop");
    t_rx(t, t->work, FX_SYN_IN);
    CHECK(t_out_is(t, 0, 0, FX_SYN_OUT));
    /* commit: now everything new is rejected */
    t_write(t, "/qubes-firewall/10.137.0.10", "");
    CHECK(t_logged(t, "rules applied (1 rules)"));
    t_rx(t, t->work, FX_SYN80_IN);
    CHECK(t_out_is(t, 0, t->work, FX_SYN80_REJECT));
    /* a client without any commit: everything dropped, silently */
    t_rx(t, t->other, FX_SYN_IN); /* wrong source too: use counters */
    qw_link_stats(t->fw, t->other, &st);
    CHECK_EQ(st.drops, 1);
    CHECK_EQ(t->out.n, 0);
    t_free(t);
}

/* S02: every 4-digit key, numeric order, gaps normal. */
TEST(sem_s02_rule_keys_sorted_gaps_allowed)
{
    struct tfw *t = t_setup();

    /* work's rules have no 0004; 0005 (after the gap) accepts GRE. */
    t_rx(t, t->work, FX_GRE_IN);
    CHECK(t_out_is(t, 0, 0, FX_GRE_OUT));
    /* keys written in reverse order still sort numerically: 0000 drops
     * 1.1.1.1 before 0001 would accept TCP 443 */
    {
        static const char *const r[] = {
            "0001=action=accept proto=tcp dstports=443-443",
            "0000=action=drop dst4=1.1.1.1/24", "policy=drop", NULL};
        t_rules(t, "10.137.0.10", r);
    }
    t_rx(t, t->work, FX_SYN_BLOCKED_IN);
    CHECK(t_out_is(t, 0, t->work, FX_SYN_BLOCKED_REJECT));
    t_rx(t, t->work, FX_SYN_IN);
    CHECK(t_out_is(t, 0, 0, FX_SYN_OUT));
    t_free(t);
}

/* S03: tokens in any order; strict validation. */
TEST(sem_s03_tokens_any_order)
{
    struct tfw *t = t_setup();
    static const char *const r[] = {
        "policy=drop", "0000=dstports=443-443 proto=tcp action=accept", NULL};

    t_rules(t, "10.137.0.10", r);
    CHECK(t_logged(t, "rules applied (1 rules)"));
    t_rx(t, t->work, FX_SYN_IN);
    CHECK(t_out_is(t, 0, 0, FX_SYN_OUT));
    t_free(t);
}

/* S04: a bad rule fails the client closed, one warning naming client,
 * rule number and reason; other clients unaffected. */
TEST(sem_s04_bad_rule_fails_closed)
{
    struct tfw *t = t_setup();
    static const char *const bad[] = {"policy=drop",
                                      "0000=action=accept proto=tcp",
                                      "0003=action=accept "
                                      "dstports=80-20 "
                                      "proto=tcp",
                                      NULL};
    static const char *const good[] = {"policy=drop", "0000=action=accept",
                                       NULL};

    t_rules(t, "10.137.0.11", good);
    t_rules(t, "10.137.0.10", bad);
    CHECK(t_logged(t, "work (10.137.0.10): rules rejected"));
    CHECK(t_logged(t, "rule 0003"));
    t_rx(t, t->work, FX_SYN_IN);
    CHECK(t_dropped_as(t, t->work, QW_DROP_RULE));
    CHECK_EQ(t->out.n, 1); /* the reject */
    /* other still works (its own SYN fixture would need its address:
     * check its rules state through a reject-free accept count) */
    CHECK(t_logged(t, "other (10.137.0.11): rules applied (1 rules)"));
    t_free(t);
}

int main(void)
{
    RUN(sem_s01_rules_applied_at_commit_only);
    RUN(sem_s02_rule_keys_sorted_gaps_allowed);
    RUN(sem_s03_tokens_any_order);
    RUN(sem_s04_bad_rule_fails_closed);
    return test_summary();
}
