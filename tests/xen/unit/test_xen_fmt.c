/*
 * test_xen_fmt.c: the lib/fmt.c conversions the Xen runtime's log lines
 * rely on (time stamps, memory-map addresses, truncation of long lines).
 */
#include "fmt.h"
#include "test.h"

TEST(timestamp_prefix)
{
    char b[64];

    qw_snprintf(b, sizeof(b), "[%5llu.%06llu] ", 12ull, 34ull);
    CHECK(strcmp(b, "[   12.000034] ") == 0);
    qw_snprintf(b, sizeof(b), "[%5llu.%06llu] ", 123456ull, 999999ull);
    CHECK(strcmp(b, "[123456.999999] ") == 0);
}

TEST(memory_map_line)
{
    char b[96];

    qw_snprintf(b, sizeof(b), "0x%09llx-0x%09llx type %u", 0ull, 0xfeffffffull,
                2u);
    CHECK(strcmp(b, "0x000000000-0x0feffffff type 2") == 0);
    qw_snprintf(b, sizeof(b), "%zu KiB %x", (size_t)6956, 0x12b000u);
    CHECK(strcmp(b, "6956 KiB 12b000") == 0);
}

TEST(truncation_reports_full_length)
{
    char b[8];
    size_t n = qw_snprintf(b, sizeof(b), "xs: %s", "domid 12345");

    CHECK_EQ(n, 15);
    CHECK(strcmp(b, "xs: dom") == 0);
    n = qw_snprintf(b, 1, "%d", 42);
    CHECK_EQ(n, 2);
    CHECK_EQ(b[0], '\0');
}

TEST(negative_errno_and_ip)
{
    char b[64];

    qw_snprintf(b, sizeof(b), "rc %d ip %u.%u.%u.%u", -13, 10u, 137u, 0u, 5u);
    CHECK(strcmp(b, "rc -13 ip 10.137.0.5") == 0);
    qw_snprintf(b, sizeof(b), "%ld|%lld", -2L, -9000000000LL);
    CHECK(strcmp(b, "-2|-9000000000") == 0);
}

int main(void)
{
    RUN(timestamp_prefix);
    RUN(memory_map_line);
    RUN(truncation_reports_full_length);
    RUN(negative_errno_and_ip);
    return test_summary();
}
