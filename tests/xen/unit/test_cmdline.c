/*
 * test_cmdline.c: the qwall.xen kernel command line (xen/cmdline.c).
 */
#include "cmdline.h"
#include "test.h"

static struct cmdline_opts o;

TEST(defaults)
{
    CHECK_EQ(cmdline_parse("", &o), 0);
    CHECK_EQ(o.cfg.ipv4, 0);
    CHECK_EQ(o.cfg.nat_table_size, 0);
    CHECK_EQ(o.cfg.log_level, QW_LOG_INFO);
    CHECK(!o.cfg.drop_silently);
    CHECK(!o.selftest);
    CHECK_EQ(o.unknown, 0);
}

TEST(all_options)
{
    CHECK_EQ(cmdline_parse("--ipv4=10.137.0.5 --ipv4-gw=10.137.0.1 "
                           "--ipv4-dns=10.139.1.1 --ipv4-dns2=10.139.1.2 "
                           "--nat-table-size=2000 --log-level=debug "
                           "--drop-silently",
                           &o),
             0);
    CHECK_EQ(o.cfg.ipv4, 0x0a890005);
    CHECK_EQ(o.cfg.ipv4_gw, 0x0a890001);
    CHECK_EQ(o.cfg.ipv4_dns, 0x0a8b0101);
    CHECK_EQ(o.cfg.ipv4_dns2, 0x0a8b0102);
    CHECK_EQ(o.cfg.nat_table_size, 2000);
    CHECK_EQ(o.cfg.log_level, QW_LOG_DEBUG);
    CHECK(o.cfg.drop_silently);
    CHECK_EQ(o.unknown, 0);
}

TEST(linux_defaults_ignored)
{
    CHECK_EQ(cmdline_parse("root=/dev/mapper/dmroot ro nomodeset "
                           "console=hvc0 rd_NO_PLYMOUTH rd.plymouth.enable=0 "
                           "plymouth.enable=0 xen_privcmd.unrestricted "
                           " --ipv4=1.2.3.4\t--log-level=1\n",
                           &o),
             0);
    CHECK_EQ(o.unknown, 8);
    CHECK_EQ(o.cfg.ipv4, 0x01020304);
    CHECK_EQ(o.cfg.log_level, QW_LOG_WARN);
}

TEST(bad_values_counted_defaults_kept)
{
    CHECK_EQ(cmdline_parse("--ipv4=1.2.3 --ipv4-gw=1.2.3.256 "
                           "--nat-table-size=0 --log-level=loud "
                           "--ipv4-dns=01.2.3.4 --ipv4-dns2=1.2.3.4.5",
                           &o),
             6);
    CHECK_EQ(o.errors, 6);
    CHECK(strcmp(o.bad, "--ipv4=1.2.3") == 0);
    CHECK_EQ(o.cfg.ipv4, 0);
    CHECK_EQ(o.cfg.ipv4_gw, 0);
    CHECK_EQ(o.cfg.ipv4_dns, 0);
    CHECK_EQ(o.cfg.ipv4_dns2, 0);
    CHECK_EQ(o.cfg.nat_table_size, 0);
    CHECK_EQ(o.cfg.log_level, QW_LOG_INFO);
    CHECK_EQ(cmdline_parse("--nat-table-size=1000001 "
                           "--nat-table-size=99999999999 --ipv4= "
                           "--ipv4=1..2.3",
                           &o),
             4);
}

TEST(near_misses_are_unknown)
{
    CHECK_EQ(
        cmdline_parse("--ipv4 -ipv4=1.2.3.4 --drop-silentlyx --IPV4=1.2.3.4 "
                      "--selftest=1",
                      &o),
        0);
    CHECK_EQ(o.unknown, 5);
    CHECK_EQ(o.cfg.ipv4, 0);
    CHECK(!o.cfg.drop_silently);
    CHECK(!o.selftest);
}

TEST(ipv4_parser)
{
    uint32_t v = 0;

    CHECK(cmdline_ipv4("0.0.0.0", 7, &v) && v == 0);
    CHECK(cmdline_ipv4("255.255.255.255", 15, &v) && v == 0xffffffffu);
    CHECK(cmdline_ipv4("192.168.1.10xyz", 12, &v) && v == 0xc0a8010a);
    CHECK(!cmdline_ipv4("1.2.3.", 6, &v));
    CHECK(!cmdline_ipv4(".1.2.3", 6, &v));
    CHECK(!cmdline_ipv4("1.2.3.4 ", 8, &v));
    CHECK(!cmdline_ipv4("1.2.3.1000", 10, &v));
    CHECK(!cmdline_ipv4("", 0, &v));
}

TEST(long_line_with_selftest)
{
    static char line[4096];
    size_t off = 0;

    for (int i = 0; i < 300; i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, "x%d ", i);
    snprintf(line + off, sizeof(line) - off, "--selftest");
    CHECK_EQ(cmdline_parse(line, &o), 0);
    CHECK_EQ(o.unknown, 300);
    CHECK(o.selftest);
}

TEST(crash_tests)
{
    CHECK_EQ(cmdline_parse("--selftest-crash=stack", &o), 0);
    CHECK_EQ(o.crashtest, 1);
    CHECK_EQ(cmdline_parse("--selftest-crash=null", &o), 0);
    CHECK_EQ(o.crashtest, 2);
    CHECK_EQ(cmdline_parse("--selftest-crash=boom --selftest-crash=", &o), 2);
    CHECK_EQ(o.crashtest, 0);
}

int main(void)
{
    RUN(defaults);
    RUN(all_options);
    RUN(linux_defaults_ignored);
    RUN(bad_values_counted_defaults_kept);
    RUN(near_misses_are_unknown);
    RUN(ipv4_parser);
    RUN(long_line_with_selftest);
    RUN(crash_tests);
    return test_summary();
}
