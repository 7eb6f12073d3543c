/*
 * fmt.c: bounded formatter (see fmt.h for the contract).
 */
#include "fmt.h"

#include <stdbool.h>
#include <stdint.h>

struct out {
    char *buf;
    size_t cap;
    size_t len; /* length of the complete output, even past cap */
};

struct spec {
    bool left; /* '-' */
    bool zero; /* '0' */
    int width; /* minimum field width */
    int prec;  /* -1 when absent */
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void pad(struct out *o, char c, int n)
{
    while (n-- > 0)
        put(o, c);
}

static void put_str(struct out *o, const struct spec *sp, const char *s)
{
    int n = 0;

    if (s == NULL)
        s = "(null)";
    while (s[n] != '\0' && (sp->prec < 0 || n < sp->prec))
        n++;
    if (!sp->left)
        pad(o, ' ', sp->width - n);
    for (int i = 0; i < n; i++)
        put(o, s[i]);
    if (sp->left)
        pad(o, ' ', sp->width - n);
}

static void put_num(struct out *o, const struct spec *sp, uint64_t v, bool neg,
                    unsigned base, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0);

    int len = n + (neg ? 1 : 0);
    if (!sp->left && !sp->zero)
        pad(o, ' ', sp->width - len);
    if (neg)
        put(o, '-');
    if (!sp->left && sp->zero)
        pad(o, '0', sp->width - len);
    while (n > 0)
        put(o, tmp[--n]);
    if (sp->left)
        pad(o, ' ', sp->width - len);
}

static int parse_int(const char **pp)
{
    int v = 0;

    while (**pp >= '0' && **pp <= '9') {
        if (v < 10000)
            v = v * 10 + (**pp - '0');
        (*pp)++;
    }
    return v;
}

size_t qw_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    struct out o = {buf, cap, 0};
    const char *p = fmt;

    while (*p != '\0') {
        if (*p != '%') {
            put(&o, *p++);
            continue;
        }
        const char *start = p++;
        struct spec sp = {false, false, 0, -1};

        for (;; p++) {
            if (*p == '-')
                sp.left = true;
            else if (*p == '0')
                sp.zero = true;
            else
                break;
        }
        if (*p == '*') {
            sp.width = va_arg(ap, int);
            if (sp.width < 0) {
                sp.left = true;
                sp.width = -sp.width;
            }
            p++;
        } else {
            sp.width = parse_int(&p);
        }
        if (*p == '.') {
            p++;
            if (*p == '*') {
                sp.prec = va_arg(ap, int);
                p++;
            } else {
                sp.prec = parse_int(&p);
            }
        }

        int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t */
        if (*p == 'h') {
            p++;
            if (*p == 'h')
                p++;
        } else if (*p == 'l') {
            p++;
            lng = 1;
            if (*p == 'l') {
                p++;
                lng = 2;
            }
        } else if (*p == 'z') {
            p++;
            lng = 3;
        }

        char c = *p;
        if (c == '\0')
            break;
        p++;
        switch (c) {
        case '%':
            put(&o, '%');
            break;
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 's':
            put_str(&o, &sp, va_arg(ap, const char *));
            break;
        case 'd':
        case 'i': {
            int64_t v;
            if (lng == 1)
                v = va_arg(ap, long);
            else if (lng == 2)
                v = va_arg(ap, long long);
            else if (lng == 3)
                v = (int64_t)va_arg(ap, size_t);
            else
                v = va_arg(ap, int);
            uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            put_num(&o, &sp, mag, v < 0, 10, false);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v;
            if (lng == 1)
                v = va_arg(ap, unsigned long);
            else if (lng == 2)
                v = va_arg(ap, unsigned long long);
            else if (lng == 3)
                v = va_arg(ap, size_t);
            else
                v = va_arg(ap, unsigned int);
            put_num(&o, &sp, v, false, c == 'u' ? 10 : 16, c == 'X');
            break;
        }
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void *);
            put(&o, '0');
            put(&o, 'x');
            put_num(&o, &sp, v, false, 16, false);
            break;
        }
        default:
            /* Unknown conversion: copy it through so the bug is visible. */
            while (start < p)
                put(&o, *start++);
            break;
        }
    }
    if (cap > 0)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len;
}

size_t qw_snprintf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    size_t n = qw_vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}
