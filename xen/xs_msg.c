/*
 * xs_msg.c: see xs_msg.h.
 */
#include "xs_msg.h"

static void xs_msg_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t xs_msg_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static size_t xs_msg_strnlen(const char *s, size_t max)
{
    size_t n = 0;

    while (n < max && s[n] != '\0')
        n++;
    return n;
}

int xs_msg_build(uint8_t *buf, size_t cap, uint32_t type, uint32_t req_id,
                 uint32_t tx_id, const char *path, const void *data,
                 size_t dlen, bool data_nul)
{
    size_t plen = 0, len;

    if (path != NULL) {
        plen = xs_msg_strnlen(path, XS_MSG_PATH_MAX + 1);
        if (plen > XS_MSG_PATH_MAX)
            return -XS_E2BIG;
        plen++; /* NUL */
    }
    if (dlen > XS_MSG_PAYLOAD_MAX)
        return -XS_E2BIG;
    len = plen + dlen + (data_nul ? 1 : 0);
    if (len > XS_MSG_PAYLOAD_MAX || cap < XS_MSG_HDR || len > cap - XS_MSG_HDR)
        return -XS_E2BIG;
    xs_msg_put32(buf, type);
    xs_msg_put32(buf + 4, req_id);
    xs_msg_put32(buf + 8, tx_id);
    xs_msg_put32(buf + 12, (uint32_t)len);
    if (plen != 0)
        __builtin_memcpy(buf + XS_MSG_HDR, path, plen);
    if (dlen != 0)
        __builtin_memcpy(buf + XS_MSG_HDR + plen, data, dlen);
    if (data_nul)
        buf[XS_MSG_HDR + plen + dlen] = 0;
    return (int)(XS_MSG_HDR + len);
}

void xs_msg_reader_reset(struct xs_msg_reader *r)
{
    r->have = 0;
}

int xs_msg_feed(struct xs_msg_reader *r, const uint8_t *data, size_t n,
                size_t *used)
{
    size_t u = 0;

    if (r->have < XS_MSG_HDR) {
        size_t k = XS_MSG_HDR - r->have;

        if (k > n)
            k = n;
        __builtin_memcpy(r->raw + r->have, data, k);
        r->have += k;
        u += k;
        if (r->have < XS_MSG_HDR) {
            *used = u;
            return 0;
        }
        r->hdr.type = xs_msg_get32(r->raw);
        r->hdr.req_id = xs_msg_get32(r->raw + 4);
        r->hdr.tx_id = xs_msg_get32(r->raw + 8);
        r->hdr.len = xs_msg_get32(r->raw + 12);
        if (r->hdr.len > XS_MSG_PAYLOAD_MAX) {
            *used = u;
            r->have = 0;
            return -XS_EPROTO;
        }
    }
    {
        size_t got = r->have - XS_MSG_HDR;
        size_t k = r->hdr.len - got;

        if (k > n - u)
            k = n - u;
        __builtin_memcpy(r->body + got, data + u, k);
        r->have += k;
        u += k;
        *used = u;
        if (r->have - XS_MSG_HDR < r->hdr.len)
            return 0;
    }
    r->body[r->hdr.len] = 0;
    r->have = 0;
    return 1;
}

static const struct {
    const char *name;
    int err;
} xs_msg_errors[] = {
    {"EPERM", XS_EPERM},     {"ENOENT", XS_ENOENT}, {"EIO", XS_EIO},
    {"E2BIG", XS_E2BIG},     {"EAGAIN", XS_EAGAIN}, {"ENOMEM", XS_ENOMEM},
    {"EACCES", XS_EACCES},   {"EBUSY", XS_EBUSY},   {"EEXIST", XS_EEXIST},
    {"EISDIR", XS_EISDIR},   {"EINVAL", XS_EINVAL}, {"ENOSPC", XS_ENOSPC},
    {"EROFS", XS_EROFS},     {"ENOSYS", XS_ENOSYS}, {"ENOTEMPTY", XS_ENOTEMPTY},
    {"EISCONN", XS_EISCONN}, {"EQUOTA", XS_ENOSPC},
};

int xs_msg_errno(const uint8_t *payload, size_t len)
{
    size_t n = 0;

    while (n < len && payload[n] != 0)
        n++;
    for (size_t i = 0; i < sizeof(xs_msg_errors) / sizeof(xs_msg_errors[0]);
         i++) {
        const char *name = xs_msg_errors[i].name;
        size_t k = xs_msg_strnlen(name, 16);

        if (k == n && __builtin_memcmp(name, payload, n) == 0)
            return xs_msg_errors[i].err;
    }
    return XS_EIO;
}

int xs_msg_split(const uint8_t *payload, size_t len, const char **parts,
                 int max)
{
    int count = 0;
    size_t start = 0;

    if (len == 0)
        return 0;
    if (payload[len - 1] != 0)
        return -XS_EPROTO;
    for (size_t i = 0; i < len; i++) {
        if (payload[i] != 0)
            continue;
        if (count == max)
            return -XS_EPROTO;
        parts[count++] = (const char *)payload + start;
        start = i + 1;
    }
    return count;
}

int xs_msg_uint(const uint8_t *payload, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    size_t i = 0;

    if (len > 0 && payload[len - 1] == 0)
        len--;
    if (len == 0 || len > 10)
        return -XS_EPROTO;
    for (; i < len; i++) {
        if (payload[i] < '0' || payload[i] > '9')
            return -XS_EPROTO;
        v = v * 10 + (uint64_t)(payload[i] - '0');
    }
    if (v > UINT32_MAX)
        return -XS_EPROTO;
    *out = (uint32_t)v;
    return 0;
}
