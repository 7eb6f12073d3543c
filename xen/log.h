/*
 * log.h: log lines on the console, "[seconds.micro] module: text".
 * Lines above the current level are discarded before formatting.
 */
#ifndef QW_XEN_LOG_H
#define QW_XEN_LOG_H

#include "qwall.h"

void log_set_level(enum qw_log_level level);
enum qw_log_level log_get_level(void);

/* Use the clock for time stamps (before: none). */
void log_clock_ready(void);

void log_msg(enum qw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(QW_LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(QW_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(QW_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(QW_LOG_DEBUG, __VA_ARGS__)

/* A line that is already formatted (the core's log callback). */
void log_line(enum qw_log_level level, const char *line);

#endif /* QW_XEN_LOG_H */
