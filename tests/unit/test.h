/*
 * test.h: the unit-test harness. Header only.
 *
 * A test file defines functions with TEST(name) and lists them in main()
 * with RUN(name); main() ends with `return test_summary();`, which prints
 * the closing line "N passed, N failed" and returns non-zero on failure.
 *
 * A test passes when it made at least one CHECK and none failed: a test
 * that asserts nothing counts as failed, so it cannot pass by accident.
 */
#ifndef QW_TEST_H
#define QW_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;
static int test_checks, test_cur_failed;
static const char *test_cur_name;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                            \
    do {                                                                       \
        test_checks++;                                                         \
        if (!(cond)) {                                                         \
            test_cur_failed++;                                                 \
            fprintf(stderr, "  FAIL %s:%d: %s: %s\n", __FILE__, __LINE__,      \
                    test_cur_name, #cond);                                     \
        }                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);        \
        test_checks++;                                                         \
        if (check_a_ != check_b_) {                                            \
            test_cur_failed++;                                                 \
            fprintf(stderr, "  FAIL %s:%d: %s: %s == %s (%lld != %lld)\n",     \
                    __FILE__, __LINE__, test_cur_name, #a, #b, check_a_,       \
                    check_b_);                                                 \
        }                                                                      \
    } while (0)

#define CHECK_MEM(a, b, n)                                                     \
    do {                                                                       \
        test_checks++;                                                         \
        if (memcmp((a), (b), (n)) != 0) {                                      \
            test_cur_failed++;                                                 \
            fprintf(stderr, "  FAIL %s:%d: %s: memory %s != %s\n", __FILE__,   \
                    __LINE__, test_cur_name, #a, #b);                          \
            test_hexdiff((const uint8_t *)(a), (const uint8_t *)(b), (n));     \
        }                                                                      \
    } while (0)

static inline void test_hexdiff(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            fprintf(stderr, "    first difference at byte %zu: %02x != %02x\n",
                    i, a[i], b[i]);
            return;
        }
    }
}

#define RUN(name)                                                              \
    do {                                                                       \
        test_cur_name = #name;                                                 \
        test_checks = 0;                                                       \
        test_cur_failed = 0;                                                   \
        name();                                                                \
        if (test_checks == 0) {                                                \
            fprintf(stderr, "  FAIL %s: asserted nothing\n", #name);           \
            test_cur_failed = 1;                                               \
        }                                                                      \
        if (test_cur_failed) {                                                 \
            test_failed++;                                                     \
            printf("not ok %s\n", #name);                                      \
        } else {                                                               \
            test_passed++;                                                     \
            printf("ok %s\n", #name);                                          \
        }                                                                      \
    } while (0)

static inline int test_summary(void)
{
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed == 0 ? 0 : 1;
}

/*
 * Parse a hex fixture ("45 00 00 1c ..."; spaces, newlines and '#'
 * comments to end of line ignored) into buf. Returns the byte count, or
 * -1 if the text is malformed or longer than cap.
 */
static inline int test_hex(const char *hex, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    int hi = -1;

    for (const char *p = hex; *p != '\0'; p++) {
        int v;
        if (*p == '#') {
            while (p[1] != '\0' && p[1] != '\n')
                p++;
            continue;
        }
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else if (*p == ' ' || *p == '\n' || *p == '\t' || *p == ':')
            continue;
        else
            return -1;
        if (hi < 0) {
            hi = v;
        } else {
            if (n >= cap)
                return -1;
            buf[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return hi < 0 ? (int)n : -1;
}

#endif /* QW_TEST_H */
