/*
 * log.c: see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>

#include "clock.h"
#include "console.h"
#include "fmt.h"

#define LOG_LINE 512

static enum qw_log_level log_level = QW_LOG_INFO;
static bool log_clock;

void log_set_level(enum qw_log_level level)
{
    log_level = level;
}

enum qw_log_level log_get_level(void)
{
    return log_level;
}

void log_clock_ready(void)
{
    log_clock = true;
}

static size_t log_prefix(char *buf, size_t cap)
{
    uint64_t now;

    if (!log_clock)
        return 0;
    now = clock_now();
    return qw_snprintf(buf, cap, "[%5llu.%06llu] ",
                       (unsigned long long)(now / 1000000000ull),
                       (unsigned long long)(now / 1000ull % 1000000ull));
}

static void log_emit(char *buf, size_t n)
{
    if (n > LOG_LINE - 2)
        n = LOG_LINE - 2; /* truncated: keep the newline */
    buf[n++] = '\n';
    console_write(buf, n);
}

void log_msg(enum qw_log_level level, const char *fmt, ...)
{
    char buf[LOG_LINE];
    size_t n;
    va_list ap;

    if (level > log_level)
        return;
    n = log_prefix(buf, sizeof(buf));
    va_start(ap, fmt);
    n += qw_vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    log_emit(buf, n);
}

void log_line(enum qw_log_level level, const char *line)
{
    log_msg(level, "%s", line);
}
