/*
 * fmt.h: a bounded printf-style formatter for freestanding code.
 *
 * Used by core/ for log lines and by the Xen runtime for its console. It
 * never writes past `cap` bytes, always NUL-terminates when cap > 0, and
 * returns the length the full output would have had (like snprintf), so
 * callers can detect truncation.
 *
 * Supported: %% %c %s %d %i %u %x %X %p, flags '-' '0', a width, a
 * precision for %s (also '*'), length modifiers hh h l ll z.
 * Anything else is copied through literally.
 */
#ifndef QW_LIB_FMT_H
#define QW_LIB_FMT_H

#include <stdarg.h>
#include <stddef.h>

size_t qw_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);
size_t qw_snprintf(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* QW_LIB_FMT_H */
