/*
 * xs_msg.h: the xenstore wire format (docs/misc/xenstore.txt), without
 * any I/O: building requests, reassembling replies that arrive in pieces,
 * splitting payloads, mapping error names to errno values.
 *
 * Message = 16-byte header {type, req_id, tx_id, len} (little-endian u32)
 * + len payload bytes, len <= XS_MSG_PAYLOAD_MAX. Pure C, no Xen headers:
 * also compiled into host unit tests.
 */
#ifndef QW_XEN_XS_MSG_H
#define QW_XEN_XS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XS_MSG_HDR 16u
#define XS_MSG_PAYLOAD_MAX 4096u
#define XS_MSG_PATH_MAX 3072u

enum xs_msg_type {
    XS_MSG_DIRECTORY = 1,
    XS_MSG_READ = 2,
    XS_MSG_WATCH = 4,
    XS_MSG_UNWATCH = 5,
    XS_MSG_TRANSACTION_START = 6,
    XS_MSG_TRANSACTION_END = 7,
    XS_MSG_GET_DOMAIN_PATH = 10,
    XS_MSG_WRITE = 11,
    XS_MSG_MKDIR = 12,
    XS_MSG_RM = 13,
    XS_MSG_SET_PERMS = 14,
    XS_MSG_WATCH_EVENT = 15,
    XS_MSG_ERROR = 16,
    XS_MSG_RESET_WATCHES = 21,
};

/* Linux errno numbers (what Xen and the core use). */
#define XS_EPERM 1
#define XS_ENOENT 2
#define XS_EIO 5
#define XS_E2BIG 7
#define XS_EAGAIN 11
#define XS_ENOMEM 12
#define XS_EACCES 13
#define XS_EBUSY 16
#define XS_EEXIST 17
#define XS_EISDIR 21
#define XS_EINVAL 22
#define XS_ENOSPC 28
#define XS_EROFS 30
#define XS_ENOSYS 38
#define XS_ENOTEMPTY 39
#define XS_EPROTO 71
#define XS_EISCONN 106
#define XS_ETIMEDOUT 110

struct xs_msg_hdr {
    uint32_t type, req_id, tx_id, len;
};

/*
 * Build one request in buf (cap bytes): header, then `path` with its NUL
 * (if path != NULL), then `data` (dlen bytes) with a NUL if data_nul.
 * Returns the total length, or -XS_E2BIG if the payload exceeds
 * XS_MSG_PAYLOAD_MAX, the path exceeds XS_MSG_PATH_MAX, or buf is too
 * small.
 */
int xs_msg_build(uint8_t *buf, size_t cap, uint32_t type, uint32_t req_id,
                 uint32_t tx_id, const char *path, const void *data,
                 size_t dlen, bool data_nul);

/* Reassembles messages from a byte stream that may split them anywhere.
 * The body is NUL-terminated (one spare byte) for convenient parsing. */
struct xs_msg_reader {
    struct xs_msg_hdr hdr;
    uint8_t raw[XS_MSG_HDR];
    size_t have; /* bytes of the current message received so far */
    uint8_t body[XS_MSG_PAYLOAD_MAX + 1];
};

void xs_msg_reader_reset(struct xs_msg_reader *r);

/*
 * Feed up to n bytes. Sets *used to the bytes consumed. Returns 1 when a
 * whole message is in r->hdr / r->body (consume it before feeding again;
 * the next feed starts a new message), 0 when more bytes are needed, or
 * -XS_EPROTO if the header announces a payload over XS_MSG_PAYLOAD_MAX
 * (the stream cannot be resynchronised: reset the connection).
 */
int xs_msg_feed(struct xs_msg_reader *r, const uint8_t *data, size_t n,
                size_t *used);

/* Errno value for an XS_ERROR payload ("ENOENT\0"); unknown names and
 * malformed payloads give XS_EIO. */
int xs_msg_errno(const uint8_t *payload, size_t len);

/*
 * Split a payload of NUL-terminated strings. Stores up to max pointers
 * (into payload) in parts and returns the count, or -XS_EPROTO if the
 * payload does not end with a NUL or holds more than max strings. An
 * empty payload gives 0 strings.
 */
int xs_msg_split(const uint8_t *payload, size_t len, const char **parts,
                 int max);

/* Parse a decimal u32 (payload may or may not end with NUL). -XS_EPROTO
 * on anything else. */
int xs_msg_uint(const uint8_t *payload, size_t len, uint32_t *out);

#endif /* QW_XEN_XS_MSG_H */
