/*
 * libc.h: the freestanding mem and str functions of lib/string.c, for
 * code built with -nostdinc (the Xen runtime), which has no <string.h>.
 */
#ifndef QW_LIB_LIBC_H
#define QW_LIB_LIBC_H

#include <stddef.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);

#endif /* QW_LIB_LIBC_H */
