/*
 * test_xs_msg.c: the xenstore wire codec of the Xen runtime (xen/xs_msg.c):
 * request encoding, reassembly of split replies, malformed input, error
 * names, payload splitting.
 */
#include "test.h"
#include "xs_msg.h"

TEST(build_read_request)
{
    uint8_t buf[64];
    uint8_t want[32];
    int n = xs_msg_build(buf, sizeof(buf), XS_MSG_READ, 7, 0, "domid", NULL, 0,
                         false);
    int w = test_hex("02 00 00 00  07 00 00 00  00 00 00 00  06 00 00 00"
                     "64 6f 6d 69 64 00",
                     want, sizeof(want));

    CHECK_EQ(n, w);
    CHECK_MEM(buf, want, (size_t)w);
}

TEST(build_write_value_has_no_nul)
{
    uint8_t buf[64];
    int n = xs_msg_build(buf, sizeof(buf), XS_MSG_WRITE, 1, 5, "a/b", "xy", 2,
                         false);

    CHECK_EQ(n, 16 + 4 + 2);
    CHECK_EQ(buf[8], 5); /* tx_id */
    CHECK_EQ(buf[12], 6);
    CHECK_MEM(buf + 16, "a/b\0xy", 6);
}

TEST(build_watch_token_nul_terminated)
{
    uint8_t buf[64];
    int n =
        xs_msg_build(buf, sizeof(buf), XS_MSG_WATCH, 2, 0, "p", "tok", 3, true);

    CHECK_EQ(n, 16 + 2 + 4);
    CHECK_MEM(buf + 16, "p\0tok\0", 6);
}

TEST(build_refuses_oversize)
{
    static uint8_t buf[16 + 5000];
    static char path[3100];
    static char data[4096];

    memset(path, 'a', sizeof(path) - 1);
    CHECK_EQ(
        xs_msg_build(buf, sizeof(buf), XS_MSG_READ, 1, 0, path, NULL, 0, false),
        -XS_E2BIG);
    /* payload exactly 4096 fits, 4097 does not */
    CHECK_EQ(xs_msg_build(buf, sizeof(buf), XS_MSG_WRITE, 1, 0, "k", data, 4094,
                          false),
             16 + 4096);
    CHECK_EQ(xs_msg_build(buf, sizeof(buf), XS_MSG_WRITE, 1, 0, "k", data, 4095,
                          false),
             -XS_E2BIG);
    /* buffer too small */
    CHECK_EQ(xs_msg_build(buf, 20, XS_MSG_READ, 1, 0, "domid", NULL, 0, false),
             -XS_E2BIG);
    CHECK_EQ(xs_msg_build(buf, 8, XS_MSG_READ, 1, 0, NULL, NULL, 0, false),
             -XS_E2BIG);
}

static struct xs_msg_reader rd;

TEST(reader_whole_message)
{
    uint8_t msg[64];
    size_t used = 0;
    int n =
        xs_msg_build(msg, sizeof(msg), XS_MSG_READ, 9, 0, NULL, "42", 2, false);

    xs_msg_reader_reset(&rd);
    CHECK_EQ(xs_msg_feed(&rd, msg, (size_t)n, &used), 1);
    CHECK_EQ(used, (size_t)n);
    CHECK_EQ(rd.hdr.type, XS_MSG_READ);
    CHECK_EQ(rd.hdr.req_id, 9);
    CHECK_EQ(rd.hdr.len, 2);
    CHECK_MEM(rd.body, "42\0", 3); /* NUL added by the reader */
}

TEST(reader_byte_by_byte_and_two_messages)
{
    uint8_t msgs[128];
    int a = xs_msg_build(msgs, sizeof(msgs), XS_MSG_WATCH_EVENT, 0, 0, "x/y",
                         "t1", 2, true);
    int b = xs_msg_build(msgs + a, sizeof(msgs) - (size_t)a, XS_MSG_ERROR, 3, 0,
                         NULL, "ENOENT", 6, true);
    int complete = 0;
    uint32_t types[2] = {0, 0};

    xs_msg_reader_reset(&rd);
    for (int i = 0; i < a + b; i++) {
        size_t used = 0;
        int rc = xs_msg_feed(&rd, msgs + i, 1, &used);

        CHECK_EQ(used, 1);
        if (rc == 1 && complete < 2)
            types[complete++] = rd.hdr.type;
    }
    CHECK_EQ(complete, 2);
    CHECK_EQ(types[0], XS_MSG_WATCH_EVENT);
    CHECK_EQ(types[1], XS_MSG_ERROR);
    CHECK_EQ(xs_msg_errno(rd.body, rd.hdr.len), XS_ENOENT);
}

TEST(reader_stops_at_message_end)
{
    uint8_t msgs[128];
    int a = xs_msg_build(msgs, sizeof(msgs), XS_MSG_WRITE, 1, 0, NULL, "OK", 2,
                         true);
    int b = xs_msg_build(msgs + a, sizeof(msgs) - (size_t)a, XS_MSG_WRITE, 2, 0,
                         NULL, "OK", 2, true);
    size_t used = 0;

    xs_msg_reader_reset(&rd);
    CHECK_EQ(xs_msg_feed(&rd, msgs, (size_t)(a + b), &used), 1);
    CHECK_EQ(used, (size_t)a);
    CHECK_EQ(rd.hdr.req_id, 1);
    CHECK_EQ(xs_msg_feed(&rd, msgs + used, (size_t)(a + b) - used, &used), 1);
    CHECK_EQ(rd.hdr.req_id, 2);
}

TEST(reader_rejects_oversize_length)
{
    uint8_t hdr[16];
    size_t used = 0;

    test_hex("02 00 00 00 01 00 00 00 00 00 00 00 01 10 00 00", hdr,
             sizeof(hdr)); /* len 4097 */
    xs_msg_reader_reset(&rd);
    CHECK_EQ(xs_msg_feed(&rd, hdr, 10, &used), 0);
    CHECK_EQ(xs_msg_feed(&rd, hdr + 10, 6, &used), -XS_EPROTO);
    test_hex("02 00 00 00 01 00 00 00 00 00 00 00 ff ff ff ff", hdr,
             sizeof(hdr));
    xs_msg_reader_reset(&rd);
    CHECK_EQ(xs_msg_feed(&rd, hdr, 16, &used), -XS_EPROTO);
}

TEST(reader_empty_payload)
{
    uint8_t hdr[16];
    size_t used = 0;

    test_hex("07 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00", hdr,
             sizeof(hdr));
    xs_msg_reader_reset(&rd);
    CHECK_EQ(xs_msg_feed(&rd, hdr, 16, &used), 1);
    CHECK_EQ(rd.hdr.len, 0);
    CHECK_EQ(rd.body[0], 0);
}

TEST(errno_names)
{
    CHECK_EQ(xs_msg_errno((const uint8_t *)"EACCES", 7), XS_EACCES);
    CHECK_EQ(xs_msg_errno((const uint8_t *)"EAGAIN", 6), XS_EAGAIN);
    CHECK_EQ(xs_msg_errno((const uint8_t *)"E2BIG", 6), XS_E2BIG);
    CHECK_EQ(xs_msg_errno((const uint8_t *)"EQUOTA", 7), XS_ENOSPC);
    /* unknown, empty, prefix-only and unterminated garbage all give EIO */
    CHECK_EQ(xs_msg_errno((const uint8_t *)"EWHATEVER", 10), XS_EIO);
    CHECK_EQ(xs_msg_errno((const uint8_t *)"", 0), XS_EIO);
    CHECK_EQ(xs_msg_errno((const uint8_t *)"ENOEN", 5), XS_EIO);
    CHECK_EQ(xs_msg_errno((const uint8_t *)"ENOENTX", 7), XS_EIO);
}

TEST(split_payloads)
{
    const char *p[4];
    static const uint8_t dir[] = "a\0bb\0ccc";

    CHECK_EQ(xs_msg_split(dir, sizeof(dir), p, 4), 3);
    CHECK(strcmp(p[0], "a") == 0 && strcmp(p[1], "bb") == 0 &&
          strcmp(p[2], "ccc") == 0);
    CHECK_EQ(xs_msg_split(dir, sizeof(dir), p, 2), -XS_EPROTO);
    CHECK_EQ(xs_msg_split(dir, sizeof(dir) - 1, p, 4), -XS_EPROTO);
    CHECK_EQ(xs_msg_split(dir, 0, p, 4), 0);
    CHECK_EQ(xs_msg_split((const uint8_t *)"", 1, p, 4), 1);
    CHECK_EQ(p[0][0], '\0');
}

TEST(uint_values)
{
    uint32_t v = 0;

    CHECK_EQ(xs_msg_uint((const uint8_t *)"17", 2, &v), 0);
    CHECK_EQ(v, 17);
    CHECK_EQ(xs_msg_uint((const uint8_t *)"4294967295", 11, &v), 0);
    CHECK_EQ(v, 4294967295u);
    CHECK_EQ(xs_msg_uint((const uint8_t *)"4294967296", 10, &v), -XS_EPROTO);
    CHECK_EQ(xs_msg_uint((const uint8_t *)"", 1, &v), -XS_EPROTO);
    CHECK_EQ(xs_msg_uint((const uint8_t *)"1a", 2, &v), -XS_EPROTO);
    CHECK_EQ(xs_msg_uint((const uint8_t *)"-1", 2, &v), -XS_EPROTO);
    CHECK_EQ(xs_msg_uint((const uint8_t *)"12345678901", 11, &v), -XS_EPROTO);
}

/* Random messages (random types, bodies, and now and then an oversize
 * length) fed in random chunks: the reader never overruns, never returns
 * a message over the limit, resynchronises after a reset, and split()
 * never points outside the payload. (ASan/UBSan under check-unit.) */
TEST(random_streams)
{
    static uint8_t stream[1 << 16];
    size_t len = 0;
    uint32_t x = 12345;
    int msgs = 0, protos = 0, bad = 0, want_protos = 0;

    while (len + 16 + 300 < sizeof(stream)) {
        uint32_t plen;

        x = x * 1103515245u + 12345u;
        plen = (x >> 8) % 300;
        for (int i = 0; i < 12; i++) {
            x = x * 1103515245u + 12345u;
            stream[len + (size_t)i] = (uint8_t)(x >> 16);
        }
        if (x % 50 == 0) {
            plen = 5000; /* oversize: reader must refuse */
            want_protos++;
        }
        stream[len + 12] = (uint8_t)plen;
        stream[len + 13] = (uint8_t)(plen >> 8);
        stream[len + 14] = stream[len + 15] = 0;
        len += 16;
        if (plen == 5000)
            continue; /* the reader resets; next header follows */
        for (uint32_t i = 0; i < plen; i++) {
            x = x * 1103515245u + 12345u;
            stream[len + i] = (x >> 20) % 4 == 0 ? 0 : (uint8_t)(x >> 16);
        }
        len += plen;
    }
    xs_msg_reader_reset(&rd);
    for (size_t off = 0; off < len;) {
        size_t chunk, used = 0;
        int rc;

        x = x * 1103515245u + 12345u;
        chunk = 1 + (x >> 16) % 700;
        if (chunk > len - off)
            chunk = len - off;
        rc = xs_msg_feed(&rd, stream + off, chunk, &used);
        if (used == 0 && rc == 0) {
            bad++;
            break; /* would loop forever */
        }
        off += used;
        if (rc < 0) {
            protos++;
            xs_msg_reader_reset(&rd);
        } else if (rc == 1) {
            const char *parts[8];
            int n;

            msgs++;
            if (rd.hdr.len > XS_MSG_PAYLOAD_MAX || rd.body[rd.hdr.len] != 0)
                bad++;
            n = xs_msg_split(rd.body, rd.hdr.len, parts, 8);
            for (int i = 0; i < n; i++) {
                if (parts[i] < (const char *)rd.body ||
                    parts[i] >= (const char *)rd.body + rd.hdr.len)
                    bad++;
            }
            (void)xs_msg_errno(rd.body, rd.hdr.len);
        }
    }
    CHECK(msgs > 100);
    CHECK_EQ(protos, want_protos);
    CHECK_EQ(bad, 0);
}

int main(void)
{
    RUN(build_read_request);
    RUN(build_write_value_has_no_nul);
    RUN(build_watch_token_nul_terminated);
    RUN(build_refuses_oversize);
    RUN(reader_whole_message);
    RUN(reader_byte_by_byte_and_two_messages);
    RUN(reader_stops_at_message_end);
    RUN(reader_rejects_oversize_length);
    RUN(reader_empty_payload);
    RUN(errno_names);
    RUN(split_payloads);
    RUN(uint_values);
    RUN(random_streams);
    return test_summary();
}
