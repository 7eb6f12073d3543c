/*
 * test_lib.c: the freestanding formatter and the drop-reason names.
 */
#include "drop.h"
#include "fmt.h"
#include "test.h"
#include "wire.h"

TEST(fmt_basic)
{
    char b[64];

    CHECK_EQ(qw_snprintf(b, sizeof b, "a%db%uc%xd%se", -12, 34u, 0xbeefu, "x"),
             15);
    CHECK(strcmp(b, "a-12b34cbeefdxe") == 0);
    qw_snprintf(b, sizeof b, "[%5d|%-4s|%03u|%02x]", 42, "ab", 7u, 0xau);
    CHECK(strcmp(b, "[   42|ab  |007|0a]") == 0);
    qw_snprintf(b, sizeof b, "%llu %ld %zu %lld", 18446744073709551615ull, -5L,
                (size_t)99, -9223372036854775807LL - 1);
    CHECK(strcmp(b, "18446744073709551615 -5 99 -9223372036854775808") == 0);
    qw_snprintf(b, sizeof b, "%.3s|%.*s|%%|%c", "abcdef", 2, "xyz", 'q');
    CHECK(strcmp(b, "abc|xy|%|q") == 0);
}

TEST(fmt_truncates)
{
    char b[8];

    memset(b, 'Z', sizeof b);
    CHECK_EQ(qw_snprintf(b, 5, "%s", "0123456789"), 10);
    CHECK(strcmp(b, "0123") == 0);
    CHECK_EQ(b[5], 'Z');
    CHECK_EQ(qw_snprintf(b, 0, "abc"), 3);
    CHECK_EQ(b[0], '0');
    CHECK_EQ(qw_snprintf(b, 1, "abc"), 3);
    CHECK_EQ(b[0], '\0');
}

TEST(fmt_unknown_conversion_copied)
{
    char b[32];
    const char *f = "x%qy%"; /* not a literal: the compiler would refuse */

    qw_snprintf(b, sizeof b, f);
    CHECK(strcmp(b, "x%qy") == 0);
}

TEST(drop_names_unique_and_present)
{
    for (int i = 0; i < QW_DROP__COUNT; i++) {
        CHECK(qw_drop_name((enum qw_drop)i)[0] != '\0');
        for (int j = 0; j < i; j++)
            CHECK(strcmp(qw_drop_name((enum qw_drop)i),
                         qw_drop_name((enum qw_drop)j)) != 0);
    }
    CHECK(strcmp(qw_drop_name((enum qw_drop)9999), "unknown") == 0);
}

TEST(csum_rfc1624)
{
    /* An IPv4 header, checksum computed in full, then one field changed
     * incrementally must equal a fresh full computation. */
    uint8_t h[20];
    test_hex("45 00 00 54 1c 46 40 00 40 01 00 00 0a 89 00 0a 08 08 08 08", h,
             sizeof h);
    qw_put16(h + 10, qw_csum_fold(qw_csum_add(0, h, 20)));
    CHECK_EQ(qw_csum_fold(qw_csum_add(0, h, 20)), 0);
    uint32_t old = qw_get32(h + 12);
    qw_put16(h + 10, qw_csum_update32(qw_get16(h + 10), old, 0x0a890014));
    qw_put32(h + 12, 0x0a890014);
    CHECK_EQ(qw_csum_fold(qw_csum_add(0, h, 20)), 0);
    uint16_t ttl = qw_get16(h + 8);
    qw_put16(h + 10, qw_csum_update16(qw_get16(h + 10), ttl, ttl - 0x100));
    qw_put16(h + 8, ttl - 0x100);
    CHECK_EQ(qw_csum_fold(qw_csum_add(0, h, 20)), 0);
}

int main(void)
{
    RUN(fmt_basic);
    RUN(fmt_truncates);
    RUN(fmt_unknown_conversion_copied);
    RUN(drop_names_unique_and_present);
    RUN(csum_rfc1624);
    return test_summary();
}
