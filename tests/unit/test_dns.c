/*
 * test_dns.c: DNS wire format (byte-exact queries, well-formed and
 * hostile responses) and the client/cache (fake clock, fake env).
 */
#include <stdlib.h>

#include "dns.h"
#include "rules.h"
#include "test.h"
#include "wire.h"

#define S 1000000000ull
#define PRI 0x0a8b0101u /* 10.139.1.1 */
#define SEC 0x0a8b0102u /* 10.139.1.2 */

/* ---- response builder ----------------------------------------------- */

struct msg {
    uint8_t b[4096];
    size_t n;
};

static void m_u8(struct msg *m, unsigned v)
{
    m->b[m->n++] = (uint8_t)v;
}

static void m_u16(struct msg *m, unsigned v)
{
    qw_put16(m->b + m->n, (uint16_t)v);
    m->n += 2;
}

static void m_u32(struct msg *m, uint32_t v)
{
    qw_put32(m->b + m->n, v);
    m->n += 4;
}

/* Header: id, flags, counts. */
static void m_hdr(struct msg *m, unsigned id, unsigned flags, unsigned qd,
                  unsigned an, unsigned ns, unsigned ar)
{
    m->n = 0;
    m_u16(m, id);
    m_u16(m, flags);
    m_u16(m, qd);
    m_u16(m, an);
    m_u16(m, ns);
    m_u16(m, ar);
}

/* Uncompressed name from text ("" = root). */
static void m_name(struct msg *m, const char *s)
{
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        m_u8(m, (unsigned)l);
        memcpy(m->b + m->n, s, l);
        m->n += l;
        s += l;
        if (*s == '.')
            s++;
    }
    m_u8(m, 0);
}

static void m_ptr(struct msg *m, unsigned off)
{
    m_u16(m, 0xc000 | off);
}

static void m_q(struct msg *m, const char *name, unsigned type)
{
    m_name(m, name);
    m_u16(m, type);
    m_u16(m, DNS_CLASS_IN);
}

/* Type, class IN, ttl; the caller writes the owner before. */
static void m_rr(struct msg *m, unsigned type, uint32_t ttl, unsigned rdlen)
{
    m_u16(m, type);
    m_u16(m, DNS_CLASS_IN);
    m_u32(m, ttl);
    m_u16(m, rdlen);
}

/* A record owned by the question name (pointer to offset 12). */
static void m_a(struct msg *m, uint32_t ttl, uint32_t addr)
{
    m_ptr(m, 12);
    m_rr(m, DNS_TYPE_A, ttl, 4);
    m_u32(m, addr);
}

#define QR_RD_RA 0x8180

static int parse(const struct msg *m, unsigned id, const char *name,
                 struct dns_answer *a)
{
    return dns_parse_response(m->b, m->n, (uint16_t)id, name, DNS_TYPE_A, a);
}

/* ---- wire: queries -------------------------------------------------- */

TEST(query_bytes)
{
    uint8_t want[64], got[DNS_QUERY_MAX];
    int wl = test_hex("12 34 01 00 00 01 00 00 00 00 00 01"    /* header, RD */
                      "07 45 78 61 6d 70 6c 65 03 63 6f 6d 00" /* Example.com */
                      "00 01 00 01"                            /* A IN */
                      "00 00 29 04 d0 00 00 00 00 00 00",      /* OPT 1232 */
                      want, sizeof want);
    size_t n =
        dns_build_query(got, sizeof got, 0x1234, "Example.com", DNS_TYPE_A);

    CHECK_EQ(n, wl);
    CHECK_MEM(got, want, (size_t)wl);
    /* trailing dot: same bytes */
    CHECK_EQ(
        dns_build_query(got, sizeof got, 0x1234, "Example.com.", DNS_TYPE_A),
        wl);
    CHECK_MEM(got, want, (size_t)wl);
    n = dns_build_query(got, sizeof got, 7, "a.b", DNS_TYPE_AAAA);
    CHECK_EQ(n, 12 + 5 + 4 + 11);
    CHECK_EQ(qw_get16(got + 12 + 5), DNS_TYPE_AAAA);
}

TEST(query_rejects_bad_names)
{
    uint8_t b[DNS_QUERY_MAX];
    char name[300];

    CHECK_EQ(dns_build_query(b, sizeof b, 1, "", DNS_TYPE_A), 0);
    CHECK_EQ(dns_build_query(b, sizeof b, 1, ".", DNS_TYPE_A), 0);
    CHECK_EQ(dns_build_query(b, sizeof b, 1, ".a", DNS_TYPE_A), 0);
    CHECK_EQ(dns_build_query(b, sizeof b, 1, "a..b", DNS_TYPE_A), 0);
    CHECK_EQ(dns_build_query(b, sizeof b, 1, "a.b..", DNS_TYPE_A), 0);
    CHECK_EQ(dns_build_query(b, sizeof b, 1, "a b", DNS_TYPE_A), 0);
    CHECK_EQ(dns_build_query(b, sizeof b, 1, "a/b", DNS_TYPE_A), 0);
    CHECK_EQ(dns_build_query(b, sizeof b, 1, "a\xc0", DNS_TYPE_A), 0);
    CHECK_EQ(dns_build_query(b, sizeof b, 1, "a.b", DNS_TYPE_CNAME), 0);
    CHECK_EQ(dns_build_query(b, 20, 1, "a.b", DNS_TYPE_A), 0);
    /* label of 63 ok, 64 not */
    memset(name, 'x', 63);
    name[63] = '\0';
    CHECK(dns_build_query(b, sizeof b, 1, name, DNS_TYPE_A) > 0);
    memset(name, 'x', 64);
    name[64] = '\0';
    CHECK_EQ(dns_build_query(b, sizeof b, 1, name, DNS_TYPE_A), 0);
    /* 253 characters (wire 255) ok, 254 not */
    for (int i = 0; i < 253; i++)
        name[i] = (i % 4 == 3) ? '.' : 'a';
    name[253] = '\0';
    CHECK_EQ(dns_build_query(b, sizeof b, 1, name, DNS_TYPE_A),
             12 + 255 + 4 + 11);
    name[253] = 'a';
    name[254] = '\0';
    CHECK_EQ(dns_build_query(b, sizeof b, 1, name, DNS_TYPE_A), 0);
}

/* ---- wire: responses ------------------------------------------------ */

/* A response as a server sends it, byte by byte (dnsmasq layout). */
TEST(parse_fixture)
{
    uint8_t m[128];
    struct dns_answer a;
    int n = test_hex("be ef 81 80 00 01 00 02 00 00 00 01"
                     "07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01"
                     "c0 0c 00 01 00 01 00 00 01 2c 00 04 5d b8 d8 22"
                     "c0 0c 00 01 00 01 00 00 00 3c 00 04 01 02 03 04"
                     "00 00 29 04 d0 00 00 00 00 00 00",
                     m, sizeof m);

    CHECK(n > 0);
    CHECK_EQ(
        dns_parse_response(m, (size_t)n, 0xbeef, "example.com", DNS_TYPE_A, &a),
        DNS_OK);
    CHECK_EQ(a.n, 2);
    CHECK_EQ(a.a4[0], 0x01020304u); /* ascending */
    CHECK_EQ(a.a4[1], 0x5db8d822u);
    CHECK_EQ(a.ttl, 60); /* min */
    CHECK(!a.truncated && !a.more);
    /* every strict prefix is rejected, never read past */
    for (int k = 0; k < n - 11; k++) {
        uint8_t *cut = malloc((size_t)k + 1);
        memcpy(cut, m, (size_t)k);
        CHECK(dns_parse_response(cut, (size_t)k, 0xbeef, "example.com",
                                 DNS_TYPE_A, &a) < 0);
        free(cut);
    }
}

TEST(parse_case_and_question)
{
    struct msg m;
    struct dns_answer a;

    m_hdr(&m, 9, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "ExAmPlE.CoM", DNS_TYPE_A);
    m_a(&m, 100, 0x01020304);
    CHECK_EQ(parse(&m, 9, "example.COM.", &a), DNS_OK);
    CHECK_EQ(parse(&m, 9, "example.org", &a), DNS_E_QUESTION);
    CHECK_EQ(parse(&m, 9, "www.example.com", &a), DNS_E_QUESTION);
    CHECK_EQ(dns_parse_response(m.b, m.n, 9, "example.com", DNS_TYPE_AAAA, &a),
             DNS_E_QUESTION);
    CHECK_EQ(parse(&m, 10, "example.com", &a), DNS_E_ID);
    /* qdcount 0 and 2 */
    m.b[5] = 0;
    CHECK_EQ(parse(&m, 9, "example.com", &a), DNS_E_QUESTION);
    m.b[5] = 2;
    CHECK_EQ(parse(&m, 9, "example.com", &a), DNS_E_QUESTION);
    m.b[5] = 1;
    /* class CH in the question */
    m.b[12 + 13 + 3] = 3;
    CHECK_EQ(parse(&m, 9, "example.com", &a), DNS_E_QUESTION);
    m.b[12 + 13 + 3] = 1;
    /* not a response (QR 0), opcode 2 */
    m.b[2] = 0x01;
    CHECK_EQ(parse(&m, 9, "example.com", &a), DNS_E_MALFORMED);
    m.b[2] = 0x91;
    CHECK_EQ(parse(&m, 9, "example.com", &a), DNS_E_MALFORMED);
    m.b[2] = 0x81;
    CHECK_EQ(parse(&m, 9, "example.com", &a), DNS_OK);
    /* shorter than a header */
    CHECK_EQ(dns_parse_response(m.b, 11, 9, "example.com", DNS_TYPE_A, &a),
             DNS_E_MALFORMED);
    CHECK_EQ(dns_parse_response(m.b, 0, 9, "example.com", DNS_TYPE_A, &a),
             DNS_E_MALFORMED);
}

TEST(parse_rcodes)
{
    struct msg m;
    struct dns_answer a;

    m_hdr(&m, 1, QR_RD_RA | 3, 1, 0, 0, 0);
    m_q(&m, "nx.example", DNS_TYPE_A);
    CHECK_EQ(parse(&m, 1, "nx.example", &a), DNS_E_NXDOMAIN);
    CHECK_EQ(a.rcode, 3);
    m.b[3] = 0x82; /* SERVFAIL */
    CHECK_EQ(parse(&m, 1, "nx.example", &a), DNS_E_RCODE);
    CHECK_EQ(a.rcode, 2);
    m.b[3] = 0x85; /* REFUSED */
    CHECK_EQ(parse(&m, 1, "nx.example", &a), DNS_E_RCODE);
    m.b[3] = 0x80; /* NOERROR, no answer: NODATA */
    CHECK_EQ(parse(&m, 1, "nx.example", &a), DNS_E_NODATA);
    /* an NXDOMAIN for another question is not believed */
    m.b[3] = 0x83;
    CHECK_EQ(parse(&m, 1, "other.example", &a), DNS_E_QUESTION);
}

TEST(parse_cname_chain)
{
    struct msg m;
    struct dns_answer a;
    size_t t1, t2;

    m_hdr(&m, 5, QR_RD_RA, 1, 4, 0, 0);
    m_q(&m, "www.example.com", DNS_TYPE_A);
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_CNAME, 300, 15);
    t1 = m.n;
    m_name(&m, "a.example.net"); /* 15 bytes */
    m_ptr(&m, (unsigned)t1);
    m_rr(&m, DNS_TYPE_CNAME, 40, 4);
    t2 = m.n;
    m_u8(&m, 1);
    m_u8(&m, 'B'); /* b.<example.net> via pointer, upper case */
    m_ptr(&m, (unsigned)t1 + 2);
    m_u8(&m, 1); /* owner b.example.net written out */
    m_u8(&m, 'b');
    m_ptr(&m, (unsigned)t1 + 2);
    m_rr(&m, DNS_TYPE_A, 200, 4);
    m_u32(&m, 0xc0000201);
    /* an A for the original name: not the end of the chain, ignored */
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_A, 500, 4);
    m_u32(&m, 0x0a000001);
    (void)t2;
    CHECK_EQ(parse(&m, 5, "www.example.com", &a), DNS_OK);
    CHECK_EQ(a.n, 1);
    CHECK_EQ(a.a4[0], 0xc0000201u);
    CHECK_EQ(a.ttl, 40); /* min over the chain */
    CHECK_EQ(a.cnames, 2);
}

/* n CNAME hops q -> c1 -> ... -> cn, then an A for cn. */
static void chain(struct msg *m, unsigned hops)
{
    char name[16];

    m_hdr(m, 3, QR_RD_RA, 1, hops + 1, 0, 0);
    m_q(m, "q.test", DNS_TYPE_A);
    for (unsigned i = 1; i <= hops; i++) {
        if (i == 1) {
            m_ptr(m, 12);
        } else {
            snprintf(name, sizeof name, "c%u.test", i - 1);
            m_name(m, name);
        }
        snprintf(name, sizeof name, "c%u.test", i);
        m_rr(m, DNS_TYPE_CNAME, 100, (unsigned)strlen(name) + 2);
        m_name(m, name);
    }
    snprintf(name, sizeof name, "c%u.test", hops);
    m_name(m, name);
    m_rr(m, DNS_TYPE_A, 100, 4);
    m_u32(m, 0x01010101);
}

TEST(parse_cname_bounds)
{
    struct msg m;
    struct dns_answer a;

    chain(&m, DNS_MAX_CNAME);
    CHECK_EQ(parse(&m, 3, "q.test", &a), DNS_OK);
    CHECK_EQ(a.cnames, DNS_MAX_CNAME);
    chain(&m, DNS_MAX_CNAME + 1);
    CHECK_EQ(parse(&m, 3, "q.test", &a), DNS_E_CHAIN);

    /* a loop q -> x -> q */
    m_hdr(&m, 3, QR_RD_RA, 1, 2, 0, 0);
    m_q(&m, "q.test", DNS_TYPE_A);
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_CNAME, 100, 8);
    m_name(&m, "x.test");
    m_name(&m, "x.test");
    m_rr(&m, DNS_TYPE_CNAME, 100, 2);
    m_ptr(&m, 12);
    CHECK_EQ(parse(&m, 3, "q.test", &a), DNS_E_CHAIN);

    /* CNAME rdata longer than its name */
    m_hdr(&m, 3, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "q.test", DNS_TYPE_A);
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_CNAME, 100, 9);
    m_name(&m, "x.test");
    m_u8(&m, 0);
    CHECK_EQ(parse(&m, 3, "q.test", &a), DNS_E_MALFORMED);

    /* a chain to a name without addresses: no data */
    m_hdr(&m, 3, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "q.test", DNS_TYPE_A);
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_CNAME, 100, 8);
    m_name(&m, "x.test");
    CHECK_EQ(parse(&m, 3, "q.test", &a), DNS_E_NODATA);
}

TEST(parse_hostile_pointers)
{
    struct msg m;
    struct dns_answer a;

    /* answer owner points at itself */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_ptr(&m, (unsigned)m.n);
    m_rr(&m, DNS_TYPE_A, 1, 4);
    m_u32(&m, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);

    /* two pointers bouncing: 29 -> 31 -> 29 */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A); /* 12..24 */
    m_ptr(&m, 27);              /* 21: forward */
    m_rr(&m, DNS_TYPE_A, 1, 4);
    m_u32(&m, 1);
    m_ptr(&m, 21);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);

    /* pointer past the end */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_ptr(&m, 0x3fff);
    m_rr(&m, DNS_TYPE_A, 1, 4);
    m_u32(&m, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);

    /* forward pointer to a valid name later in the message */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_ptr(&m, (unsigned)m.n + 16);
    m_rr(&m, DNS_TYPE_A, 1, 4);
    m_u32(&m, 1);
    m_name(&m, "a.b");
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);

    /* pointer in the question (nothing before it to point at) */
    m_hdr(&m, 1, QR_RD_RA, 1, 0, 0, 0);
    m_ptr(&m, 0);
    m_u16(&m, 1);
    m_u16(&m, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);

    /* a truncated pointer (last byte of the message) */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_u8(&m, 0xc0);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);

    /* extended label types 0x40 and 0x80 */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_u8(&m, 0x41);
    m_u8(&m, 'a');
    m_u8(&m, 0);
    m_rr(&m, DNS_TYPE_A, 1, 4);
    m_u32(&m, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);
    m.b[21] = 0x81;
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);
}

/* A chain of backward pointers, each prefixing one label: legal until the
 * decoded name passes 255 bytes. */
TEST(parse_long_names)
{
    struct msg m;
    struct dns_answer a;
    char name[256];

    /* question of exactly 255 wire bytes (253 characters) */
    for (int i = 0; i < 253; i++)
        name[i] = (i % 4 == 3) ? '.' : 'a';
    name[253] = '\0';
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, name, DNS_TYPE_A);
    m_a(&m, 100, 0x01010101);
    CHECK_EQ(parse(&m, 1, name, &a), DNS_OK);

    /* owner = 1 label + pointer to the question: 257 bytes */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, name, DNS_TYPE_A);
    m_u8(&m, 1);
    m_u8(&m, 'x');
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_A, 1, 4);
    m_u32(&m, 1);
    CHECK_EQ(parse(&m, 1, name, &a), DNS_E_MALFORMED);

    /* chains of pointers parked in an ignored TXT record's rdata: each
     * points at the previous one, the first at the question name; the A
     * record's owner points at the last. 60 jumps: the question name;
     * 100 jumps: over PTR_HOPS_MAX (64), refused. */
    for (int hops = 60; hops <= 100; hops += 40) {
        m_hdr(&m, 1, QR_RD_RA, 1, 2, 0, 0);
        m_q(&m, "a.b", DNS_TYPE_A);
        m_ptr(&m, 12);
        m_rr(&m, 16, 1, (unsigned)hops * 2);
        size_t prev = 12;
        for (int i = 0; i < hops; i++) {
            size_t here = m.n;
            m_ptr(&m, (unsigned)prev);
            prev = here;
        }
        m_ptr(&m, (unsigned)prev);
        m_rr(&m, DNS_TYPE_A, 1, 4);
        m_u32(&m, 0x01010101);
        CHECK_EQ(parse(&m, 1, "a.b", &a),
                 hops == 60 ? DNS_OK : DNS_E_MALFORMED);
    }
    /* labels prefixed through a pointer chain until past 255 bytes */
    m_hdr(&m, 1, QR_RD_RA, 1, 2, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_ptr(&m, 12);
    m_rr(&m, 16, 1, 130 * 4);
    size_t prev = 12;
    for (int i = 0; i < 130; i++) {
        size_t here = m.n;
        m_u8(&m, 1);
        m_u8(&m, 'x');
        m_ptr(&m, (unsigned)prev);
        prev = here;
    }
    m_ptr(&m, (unsigned)prev);
    m_rr(&m, DNS_TYPE_A, 1, 4);
    m_u32(&m, 0x01010101);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);
}

TEST(parse_zero_length_labels)
{
    struct msg m;
    struct dns_answer a;

    /* question for the root name */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "", DNS_TYPE_A);
    m_a(&m, 1, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_QUESTION);
    CHECK_EQ(parse(&m, 1, "", &a), DNS_E_QUESTION); /* invalid query name */
    /* root-owned A records are not ours */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_u8(&m, 0);
    m_rr(&m, DNS_TYPE_A, 1, 4);
    m_u32(&m, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_NODATA);
    /* a zero byte ends the name early: "a" then garbage as the type */
    m_hdr(&m, 1, QR_RD_RA, 1, 0, 0, 0);
    m_u8(&m, 1);
    m_u8(&m, 'a');
    m_u8(&m, 0);
    m_u8(&m, 1);
    m_u8(&m, 'b');
    m_u8(&m, 0);
    m_u16(&m, 1);
    m_u16(&m, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_QUESTION);
}

TEST(parse_counts_and_truncation)
{
    struct msg m;
    struct dns_answer a;

    /* ancount 5 with 1 record */
    m_hdr(&m, 1, QR_RD_RA, 1, 5, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_a(&m, 100, 0x01020304);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);
    /* the same with TC: use what arrived */
    m.b[2] |= 0x02;
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_OK);
    CHECK(a.truncated);
    CHECK_EQ(a.n, 1);
    /* TC, record cut in the middle of its rdata */
    m_a(&m, 100, 0x05060708);
    m.n -= 2;
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_OK);
    CHECK_EQ(a.n, 1);
    /* TC with nothing usable */
    m_hdr(&m, 1, QR_RD_RA | 0x0200, 1, 3, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_TRUNCATED);
    /* rdlength beyond the message */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_A, 1, 0xffff);
    m_u32(&m, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);
    /* A with 5 bytes of rdata */
    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_A, 1, 5);
    m_u32(&m, 1);
    m_u8(&m, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_MALFORMED);
    /* qdcount 65535 */
    m_hdr(&m, 1, QR_RD_RA, 0xffff, 0xffff, 0xffff, 0xffff);
    m_q(&m, "a.b", DNS_TYPE_A);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_E_QUESTION);
}

TEST(parse_address_set)
{
    struct msg m;
    struct dns_answer a;

    /* 20 addresses in descending order, one duplicate, other classes and
     * types mixed in: the 16 lowest distinct are kept, sorted */
    m_hdr(&m, 1, QR_RD_RA, 1, 24, 0, 0);
    m_q(&m, "many.test", DNS_TYPE_A);
    for (uint32_t i = 20; i >= 1; i--)
        m_a(&m, 1000 + i, 0x0a000000 + i);
    m_a(&m, 5000, 0x0a000003); /* duplicate */
    m_ptr(&m, 12);
    m_u16(&m, DNS_TYPE_A);
    m_u16(&m, 3); /* class CH: ignored */
    m_u32(&m, 1);
    m_u16(&m, 4);
    m_u32(&m, 0x01000000);
    m_ptr(&m, 12);
    m_rr(&m, 16, 1, 2); /* TXT: ignored */
    m_u16(&m, 0x0178);
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_AAAA, 1, 16);
    for (int i = 0; i < 4; i++)
        m_u32(&m, 0x20010db8);
    CHECK_EQ(parse(&m, 1, "many.test", &a), DNS_OK);
    CHECK_EQ(a.n, DNS_MAX_ADDRS);
    CHECK(a.more);
    for (unsigned i = 0; i < DNS_MAX_ADDRS; i++)
        CHECK_EQ(a.a4[i], 0x0a000001u + i);
    CHECK_EQ(a.ttl, 1001);
    /* ascending order: the later (higher) ones are the ones left out */
    m_hdr(&m, 1, QR_RD_RA, 1, 20, 0, 0);
    m_q(&m, "many.test", DNS_TYPE_A);
    for (uint32_t i = 1; i <= 20; i++)
        m_a(&m, 100, 0x0a000000 + i);
    CHECK_EQ(parse(&m, 1, "many.test", &a), DNS_OK);
    CHECK_EQ(a.n, DNS_MAX_ADDRS);
    CHECK(a.more);
    CHECK_EQ(a.a4[DNS_MAX_ADDRS - 1], 0x0a000010u);
}

TEST(parse_ttl_top_bit)
{
    struct msg m;
    struct dns_answer a;

    m_hdr(&m, 1, QR_RD_RA, 1, 1, 0, 0);
    m_q(&m, "a.b", DNS_TYPE_A);
    m_a(&m, 0x80000001u, 1);
    CHECK_EQ(parse(&m, 1, "a.b", &a), DNS_OK);
    CHECK_EQ(a.ttl, 0);
}

TEST(parse_aaaa)
{
    struct msg m;
    struct dns_answer a;
    uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};

    m_hdr(&m, 1, QR_RD_RA, 1, 2, 0, 0);
    m_q(&m, "v6.test", DNS_TYPE_AAAA);
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_AAAA, 50, 16);
    memcpy(m.b + m.n, want, 16);
    m.b[m.n + 15] = 2;
    m.n += 16;
    m_ptr(&m, 12);
    m_rr(&m, DNS_TYPE_AAAA, 60, 16);
    memcpy(m.b + m.n, want, 16);
    m.n += 16;
    CHECK_EQ(dns_parse_response(m.b, m.n, 1, "v6.test", DNS_TYPE_AAAA, &a),
             DNS_OK);
    CHECK_EQ(a.n, 2);
    CHECK_MEM(a.a6[0], want, 16);
    CHECK_EQ(a.a6[1][15], 2);
    CHECK_EQ(a.ttl, 50);
}

/* ---- client: fake env ----------------------------------------------- */

struct sent {
    uint32_t server;
    uint16_t port;
    uint64_t at;
    uint8_t p[DNS_QUERY_MAX];
    size_t n;
};

#define MAX_SENT 8192

static struct fake {
    uint32_t seed;
    struct sent sent[MAX_SENT];
    unsigned nsent;
    uint16_t next_port;
    bool send_fails;
    uint16_t fixed_port; /* non-zero: every send gets this port */
    unsigned released, changed, logs;
    int last_changed;
    unsigned reserved; /* ports held now */
    unsigned max_reserved;
    char last_log[200];
} F;

static uint32_t f_random(void *ctx)
{
    (void)ctx;
    F.seed = F.seed * 1103515245u + 12345u;
    return F.seed >> 1;
}

static uint16_t f_send(void *ctx, uint32_t server, const uint8_t *p, size_t n,
                       uint64_t now)
{
    (void)ctx;
    if (F.send_fails || F.nsent == MAX_SENT)
        return 0;
    struct sent *s = &F.sent[F.nsent++];
    s->server = server;
    s->port = F.fixed_port ? F.fixed_port : F.next_port++;
    if (F.next_port < 1024)
        F.next_port = 1024;
    s->at = now;
    memcpy(s->p, p, n);
    s->n = n;
    if (++F.reserved > F.max_reserved)
        F.max_reserved = F.reserved;
    return s->port;
}

static void f_release(void *ctx, uint32_t server, uint16_t sport)
{
    (void)ctx;
    (void)server;
    (void)sport;
    F.released++;
    F.reserved--;
}

static void f_changed(void *ctx, int id)
{
    (void)ctx;
    F.changed++;
    F.last_changed = id;
}

static void f_log(void *ctx, enum qw_log_level lvl, const char *line)
{
    (void)ctx;
    (void)lvl;
    F.logs++;
    snprintf(F.last_log, sizeof F.last_log, "%s", line);
}

static const struct dns_env ENV = {NULL,      f_random,  f_send,
                                   f_release, f_changed, f_log};

static struct dns *new_dns(unsigned names)
{
    memset(&F, 0, sizeof F);
    F.seed = 42;
    F.next_port = 40000;
    struct dns *d = aligned_alloc(16, (dns_mem_size(names) + 15) & ~15ul);
    dns_init(d, names, &ENV);
    return d;
}

/* The question name of a sent query, as text. */
static void sent_name(const struct sent *s, char *out)
{
    size_t i = 12, o = 0;

    while (s->p[i]) {
        if (o)
            out[o++] = '.';
        memcpy(out + o, s->p + i + 1, s->p[i]);
        o += s->p[i];
        i += s->p[i] + 1u;
    }
    out[o] = '\0';
}

/* A reply to sent query s with the given addresses (rcode in flags). */
static void reply_to(struct msg *m, const struct sent *s, unsigned flags,
                     uint32_t ttl, const uint32_t *addrs, unsigned n)
{
    size_t qend = 12;

    while (s->p[qend])
        qend += s->p[qend] + 1u;
    qend += 5;
    memcpy(m->b, s->p, qend);
    m->n = qend;
    qw_put16(m->b + 2, (uint16_t)flags);
    qw_put16(m->b + 6, (uint16_t)n);
    qw_put16(m->b + 10, 0);
    for (unsigned i = 0; i < n; i++)
        m_a(m, ttl, addrs[i]);
}

static enum qw_drop answer(struct dns *d, const struct sent *s, uint32_t ttl,
                           const uint32_t *addrs, unsigned n, uint64_t now)
{
    struct msg m;

    reply_to(&m, s, QR_RD_RA, ttl, addrs, n);
    return dns_rx(d, s->server, 53, s->port, m.b, m.n, now);
}

/* ---- client: tests -------------------------------------------------- */

TEST(client_resolves)
{
    struct dns *d = new_dns(8);
    uint32_t addrs[2] = {0x5db8d822, 0x01020304};
    char name[300];

    CHECK_EQ(dns_poll(d, 0), UINT64_MAX); /* idle when empty */
    int id = dns_ref(d, "Example.COM.");
    CHECK(id >= 0);
    CHECK(strcmp(dns_name(d, id), "example.com") == 0);
    CHECK_EQ(dns_match(d, id, 0x01020304), -1);
    CHECK_EQ(dns_deadline(d), 0);
    /* no servers: nothing sent, idle */
    CHECK_EQ(dns_poll(d, 1 * S), UINT64_MAX);
    CHECK_EQ(F.nsent, 0);
    dns_set_servers(d, PRI, SEC);
    CHECK_EQ(dns_poll(d, 1 * S), 2 * S); /* first attempt: 1 s timeout */
    CHECK_EQ(F.nsent, 1);
    CHECK_EQ(F.sent[0].server, PRI);
    sent_name(&F.sent[0], name);
    CHECK(strcmp(name, "example.com") == 0);
    CHECK_EQ(F.sent[0].n, 12 + 13 + 4 + 11);
    CHECK_EQ(qw_get16(F.sent[0].p + 2), 0x0100);

    CHECK_EQ(answer(d, &F.sent[0], 300, addrs, 2, 1 * S + 5), QW_DROP_NONE);
    CHECK_EQ(F.released, 1);
    CHECK_EQ(F.changed, 1);
    CHECK_EQ(F.last_changed, id);
    CHECK(strstr(F.last_log, "example.com resolved") != NULL);
    CHECK_EQ(dns_match(d, id, 0x01020304), 1);
    CHECK_EQ(dns_match(d, id, 0x5db8d822), 1);
    CHECK_EQ(dns_match(d, id, 0x5db8d823), 0);
    CHECK_EQ(dns_match(d, id + 1, 0x01020304), -1);
    CHECK_EQ(dns_match(d, -1, 0x01020304), -1);
    CHECK_EQ(dns_match(d, 1000, 0x01020304), -1);
    /* next: the refresh at 70..80 % of 300 s */
    uint64_t next = dns_poll(d, 1 * S + 6);
    CHECK(next >= 1 * S + 210 * S && next <= 1 * S + 240 * S + 5);
    /* a late duplicate of the reply is unexpected */
    CHECK_EQ(answer(d, &F.sent[0], 300, addrs, 2, 2 * S),
             QW_DROP_DNS_UNEXPECTED);
    struct dns_stats st;
    dns_get_stats(d, &st);
    CHECK_EQ(st.queries, 1);
    CHECK_EQ(st.answers, 1);
    CHECK_EQ(st.unexpected, 1);
    CHECK_EQ(st.names, 1);
    CHECK_EQ(st.inflight, 0);
    free(d);
}

TEST(client_rejects_spoofs)
{
    struct dns *d = new_dns(8);
    uint32_t good = 0x01020304, evil = 0x06060606;
    struct msg m;

    int id = dns_ref(d, "bank.example");
    dns_set_servers(d, PRI, SEC);
    dns_poll(d, 0);
    struct sent *s = &F.sent[0];
    reply_to(&m, s, QR_RD_RA, 300, &evil, 1);
    /* from another address */
    CHECK_EQ(dns_rx(d, 0x0a000099, 53, s->port, m.b, m.n, 1),
             QW_DROP_DNS_UNEXPECTED);
    /* from the secondary, which was not asked */
    CHECK_EQ(dns_rx(d, SEC, 53, s->port, m.b, m.n, 1), QW_DROP_DNS_UNEXPECTED);
    /* from another source port */
    CHECK_EQ(dns_rx(d, PRI, 5353, s->port, m.b, m.n, 1),
             QW_DROP_DNS_UNEXPECTED);
    /* to another port */
    CHECK_EQ(dns_rx(d, PRI, 53, (uint16_t)(s->port + 1), m.b, m.n, 1),
             QW_DROP_DNS_UNEXPECTED);
    /* wrong id */
    qw_put16(m.b, (uint16_t)(qw_get16(m.b) ^ 1));
    CHECK_EQ(dns_rx(d, PRI, 53, s->port, m.b, m.n, 1), QW_DROP_DNS_UNEXPECTED);
    qw_put16(m.b, (uint16_t)(qw_get16(m.b) ^ 1));
    /* right id, answers another question */
    m.b[13] = 'c';
    CHECK_EQ(dns_rx(d, PRI, 53, s->port, m.b, m.n, 1), QW_DROP_DNS_BAD);
    /* garbage */
    CHECK_EQ(dns_rx(d, PRI, 53, s->port, m.b, 7, 1), QW_DROP_DNS_BAD);
    CHECK_EQ(dns_match(d, id, evil), -1);
    CHECK_EQ(F.released, 0); /* the query is still waiting */
    /* the real one */
    CHECK_EQ(answer(d, s, 300, &good, 1, 2), QW_DROP_NONE);
    CHECK_EQ(dns_match(d, id, good), 1);
    CHECK_EQ(dns_match(d, id, evil), 0);
    struct dns_stats st;
    dns_get_stats(d, &st);
    CHECK_EQ(st.unexpected, 5);
    CHECK_EQ(st.bad, 2);
    free(d);
}

/* One local port reserved towards two servers at once: each reply goes to
 * the query asked of its sender. */
TEST(client_same_port_two_servers)
{
    struct dns *d = new_dns(8);
    uint32_t xa = 0x01010101, xb = 0x02020202;

    F.fixed_port = 5000;
    dns_set_servers(d, PRI, SEC);
    int a = dns_ref(d, "a.example");
    dns_poll(d, 0);
    dns_poll(d, 1 * S); /* a's second attempt: the secondary */
    int b = dns_ref(d, "b.example");
    dns_poll(d, 1 * S); /* b's first: the primary, same port */
    CHECK_EQ(F.nsent, 3);
    CHECK_EQ(F.sent[1].server, SEC);
    CHECK_EQ(F.sent[2].server, PRI);
    CHECK_EQ(F.sent[1].port, F.sent[2].port);
    CHECK_EQ(answer(d, &F.sent[2], 100, &xb, 1, 1 * S + 1), QW_DROP_NONE);
    CHECK_EQ(answer(d, &F.sent[1], 100, &xa, 1, 1 * S + 2), QW_DROP_NONE);
    CHECK_EQ(dns_match(d, a, xa), 1);
    CHECK_EQ(dns_match(d, b, xb), 1);
    CHECK_EQ(dns_match(d, a, xb), 0);
    free(d);
}

TEST(client_retries_1_2_4)
{
    struct dns *d = new_dns(8);

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "slow.example");
    CHECK_EQ(dns_poll(d, 10 * S), 11 * S);
    CHECK_EQ(dns_poll(d, 11 * S - 1), 11 * S); /* early: nothing */
    CHECK_EQ(F.nsent, 1);
    CHECK_EQ(dns_poll(d, 11 * S), 13 * S);
    CHECK_EQ(F.nsent, 2);
    CHECK_EQ(F.sent[1].server, SEC);
    CHECK_EQ(F.released, 1);
    CHECK(qw_get16(F.sent[1].p) != qw_get16(F.sent[0].p) ||
          F.sent[1].port != F.sent[0].port);
    /* the reply to the first attempt, arriving late, is not accepted */
    uint32_t addr = 0x01010101;
    CHECK_EQ(answer(d, &F.sent[0], 60, &addr, 1, 12 * S),
             QW_DROP_DNS_UNEXPECTED);
    CHECK_EQ(dns_poll(d, 13 * S), 17 * S);
    CHECK_EQ(F.nsent, 3);
    CHECK_EQ(F.sent[2].server, PRI);
    /* all three lost: failure, retry after 1 s */
    CHECK_EQ(dns_poll(d, 17 * S), 18 * S);
    CHECK_EQ(F.released, 3);
    CHECK_EQ(F.reserved, 0);
    CHECK(strstr(F.last_log, "slow.example failed (no reply") != NULL);
    CHECK_EQ(dns_match(d, id, addr), -1);
    CHECK_EQ(F.changed, 0);
    struct dns_stats st;
    dns_get_stats(d, &st);
    CHECK_EQ(st.timeouts, 3);
    CHECK_EQ(st.failures, 1);
    free(d);
}

TEST(client_single_server)
{
    struct dns *d = new_dns(8);

    dns_set_servers(d, PRI, PRI);
    dns_ref(d, "one.example");
    dns_poll(d, 0);
    dns_poll(d, 1 * S);
    dns_poll(d, 3 * S);
    CHECK_EQ(F.nsent, 3);
    CHECK_EQ(F.sent[1].server, PRI);
    CHECK_EQ(F.sent[2].server, PRI);
    free(d);
}

/* Rounds of failed resolutions start 1, 2, 4, ... 60, 60 s apart. */
TEST(client_backoff)
{
    struct dns *d = new_dns(8);
    const unsigned want[] = {1, 2, 4, 8, 16, 32, 60, 60, 60};
    uint64_t now = 0;
    struct msg m;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "nx.example");
    dns_poll(d, now);
    for (unsigned r = 0; r < sizeof want / sizeof want[0]; r++) {
        struct sent *s = &F.sent[F.nsent - 1];
        reply_to(&m, s, QR_RD_RA | 3, 0, NULL, 0);
        CHECK_EQ(dns_rx(d, s->server, 53, s->port, m.b, m.n, now),
                 QW_DROP_NONE);
        uint64_t next = dns_poll(d, now);
        CHECK_EQ(next - now, want[r] * S);
        unsigned before = F.nsent;
        dns_poll(d, next - 1);
        CHECK_EQ(F.nsent, before);
        now = next;
        dns_poll(d, now);
        CHECK_EQ(F.nsent, before + 1);
    }
    CHECK_EQ(dns_match(d, id, 1), -1);
    CHECK_EQ(F.logs, 2); /* servers line + one failure line, not 9 */
    /* it appears: resolved, backoff reset */
    uint32_t addr = 0x02020202;
    CHECK_EQ(answer(d, &F.sent[F.nsent - 1], 60, &addr, 1, now), QW_DROP_NONE);
    CHECK_EQ(dns_match(d, id, addr), 1);
    CHECK_EQ(F.changed, 1);
    free(d);
}

TEST(client_ttl_clamp_and_refresh)
{
    struct dns *d = new_dns(8);
    uint32_t addr = 0x01010101;

    dns_set_servers(d, PRI, 0);
    int id = dns_ref(d, "short.example");
    dns_poll(d, 0);
    answer(d, &F.sent[0], 5, &addr, 1, 0); /* ttl 5 -> 30 */
    uint64_t next = dns_poll(d, 0);
    CHECK(next >= 21 * S && next <= 24 * S);
    dns_poll(d, next);
    CHECK_EQ(F.nsent, 2);
    /* same answer: no change reported */
    answer(d, &F.sent[1], 86400, &addr, 1, next); /* -> 3600 */
    CHECK_EQ(F.changed, 1);
    uint64_t n2 = dns_poll(d, next);
    CHECK(n2 - next >= 2520 * S && n2 - next <= 2880 * S);
    CHECK_EQ(dns_match(d, id, addr), 1);
    free(d);
}

/* A changed answer: the previous set matches for one TTL. */
TEST(client_previous_set_grace)
{
    struct dns *d = new_dns(8);
    uint32_t a1 = 0x01010101, a2 = 0x02020202, a3 = 0x03030303;

    dns_set_servers(d, PRI, 0);
    int id = dns_ref(d, "rot.example");
    dns_poll(d, 0);
    answer(d, &F.sent[0], 100, &a1, 1, 0);
    uint64_t t = dns_poll(d, 0); /* refresh at 70..80 s */
    dns_poll(d, t);
    answer(d, &F.sent[1], 100, &a2, 1, t);
    CHECK_EQ(F.changed, 2);
    CHECK(strstr(F.last_log, "rot.example changed (2.2.2.2") != NULL);
    CHECK_EQ(dns_match(d, id, a1), 1);
    CHECK_EQ(dns_match(d, id, a2), 1);
    CHECK_EQ(dns_match(d, id, a3), 0);
    /* the refresh comes before the grace ends; answer the same set */
    uint64_t t2 = dns_poll(d, t);
    CHECK(t2 < t + 100 * S);
    dns_poll(d, t2);
    answer(d, &F.sent[2], 100, &a2, 1, t2);
    CHECK_EQ(dns_poll(d, t2), t + 100 * S); /* grace end */
    CHECK_EQ(dns_match(d, id, a1), 1);
    dns_poll(d, t + 100 * S);
    CHECK_EQ(dns_match(d, id, a1), 0);
    CHECK_EQ(dns_match(d, id, a2), 1);
    CHECK_EQ(F.changed, 3); /* the grace end changes what matches */
    free(d);
}

/* A set that only grew: its grace end changes nothing, no changed(). */
TEST(client_grace_superset)
{
    struct dns *d = new_dns(8);
    uint32_t a1[1] = {0x02020202}, a2[2] = {0x01010101, 0x02020202};

    dns_set_servers(d, PRI, 0);
    int id = dns_ref(d, "grow.example");
    dns_poll(d, 0);
    answer(d, &F.sent[0], 100, a1, 1, 0);
    uint64_t t = dns_poll(d, 0);
    dns_poll(d, t);
    answer(d, &F.sent[1], 100, a2, 2, t);
    CHECK_EQ(F.changed, 2); /* 0x01010101 now matches */
    uint64_t t2 = dns_poll(d, t);
    dns_poll(d, t2);
    answer(d, &F.sent[2], 100, a2, 2, t2);
    dns_poll(d, t + 100 * S); /* grace end */
    CHECK_EQ(F.changed, 2);
    CHECK_EQ(dns_match(d, id, a2[0]), 1);
    CHECK_EQ(dns_match(d, id, a2[1]), 1);
    free(d);
}

/* NXDOMAIN unresolves at once; lost replies keep the last answer for
 * DNS_STALE_S past its TTL. */
TEST(client_failure_after_success)
{
    struct dns *d = new_dns(8);
    uint32_t a1 = 0x01010101;
    struct msg m;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "flaky.example");
    dns_poll(d, 0);
    answer(d, &F.sent[0], 100, &a1, 1, 0);
    /* refreshes time out from now on */
    uint64_t now = dns_poll(d, 0);
    while (now < 100 * S + DNS_STALE_S * S) {
        CHECK_EQ(dns_match(d, id, a1), 1);
        now = dns_poll(d, now);
    }
    CHECK_EQ(now, 100 * S + DNS_STALE_S * S);
    CHECK_EQ(F.changed, 1);
    dns_poll(d, now);
    CHECK_EQ(dns_match(d, id, a1), -1);
    CHECK_EQ(F.changed, 2);
    CHECK(strstr(F.last_log, "flaky.example unresolved") != NULL);
    /* recovers */
    now = dns_poll(d, now);
    while (F.reserved == 0)
        now = dns_poll(d, now);
    answer(d, &F.sent[F.nsent - 1], 100, &a1, 1, now);
    CHECK_EQ(dns_match(d, id, a1), 1);
    CHECK_EQ(F.changed, 3);
    /* then NXDOMAIN: unresolved immediately */
    now = dns_poll(d, now);
    dns_poll(d, now);
    struct sent *s = &F.sent[F.nsent - 1];
    reply_to(&m, s, QR_RD_RA | 3, 0, NULL, 0);
    CHECK_EQ(dns_rx(d, s->server, 53, s->port, m.b, m.n, now), QW_DROP_NONE);
    CHECK_EQ(dns_match(d, id, a1), -1);
    CHECK_EQ(F.changed, 4);
    free(d);
}

/* SERVFAIL from the primary: the secondary is asked at once. */
TEST(client_servfail_next_server)
{
    struct dns *d = new_dns(8);
    struct msg m;
    uint32_t a1 = 0x01010101;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "sf.example");
    dns_poll(d, 0);
    reply_to(&m, &F.sent[0], QR_RD_RA | 2, 0, NULL, 0);
    CHECK_EQ(dns_rx(d, PRI, 53, F.sent[0].port, m.b, m.n, 1), QW_DROP_NONE);
    CHECK_EQ(dns_deadline(d), 0);
    CHECK_EQ(F.released, 1);
    dns_poll(d, 1);
    CHECK_EQ(F.nsent, 2);
    CHECK_EQ(F.sent[1].server, SEC);
    answer(d, &F.sent[1], 100, &a1, 1, 2);
    CHECK_EQ(dns_match(d, id, a1), 1);
    struct dns_stats st;
    dns_get_stats(d, &st);
    CHECK_EQ(st.timeouts, 0);
    free(d);
}

/* A truncated reply with addresses is used; without, the next server. */
TEST(client_truncated)
{
    struct dns *d = new_dns(8);
    struct msg m;
    uint32_t a1 = 0x01010101;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "tc.example");
    dns_poll(d, 0);
    reply_to(&m, &F.sent[0], QR_RD_RA | 0x0200, 0, NULL, 0);
    CHECK_EQ(dns_rx(d, PRI, 53, F.sent[0].port, m.b, m.n, 1), QW_DROP_NONE);
    dns_poll(d, 1);
    CHECK_EQ(F.nsent, 2);
    reply_to(&m, &F.sent[1], QR_RD_RA | 0x0200, 100, &a1, 1);
    qw_put16(m.b + 6, 3); /* claims 3 answers */
    CHECK_EQ(dns_rx(d, SEC, 53, F.sent[1].port, m.b, m.n, 2), QW_DROP_NONE);
    CHECK_EQ(dns_match(d, id, a1), 1);
    free(d);
}

/* When more names are due than slots are free, the ones due longest ago
 * go first, whatever their order in the table. */
TEST(client_earliest_due_first)
{
    enum { N = 20 };
    struct dns *d = new_dns(N);
    int ids[N];
    char name[32];
    uint32_t a1 = 0x01010101;

    dns_set_servers(d, PRI, SEC);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "n%d.example", i);
        ids[i] = dns_ref(d, name);
    }
    /* TTLs grow by 1.2 per rank and n19 has the shortest, so refreshes
     * (70..80 % of the TTL) fall due in reverse index order */
    while (F.nsent < N) {
        unsigned from = F.nsent;
        dns_poll(d, 0);
        for (unsigned k = from; k < F.nsent; k++) {
            char q[300];
            sent_name(&F.sent[k], q);
            double ttl = 30;
            for (int r = 0; r < N - 1 - atoi(q + 1); r++)
                ttl *= 1.2;
            CHECK_EQ(answer(d, &F.sent[k], (uint32_t)ttl + 1, &a1, 1, 0),
                     QW_DROP_NONE);
        }
    }
    CHECK_EQ(F.nsent, N);
    CHECK_EQ(F.reserved, 0);
    dns_poll(d, 800 * S); /* all 20 due; 16 slots */
    CHECK_EQ(F.nsent - N, DNS_MAX_INFLIGHT);
    for (unsigned k = N; k < F.nsent; k++) {
        char q[300];
        sent_name(&F.sent[k], q);
        CHECK(atoi(q + 1) >= N - (int)DNS_MAX_INFLIGHT);
    }
    (void)ids;
    free(d);
}

/* Refreshes that get no answer, then the same answer: one failure line,
 * one recovery line, no change reported. */
TEST(client_answering_again)
{
    struct dns *d = new_dns(8);
    uint32_t a1 = 0x01010101;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "again.example");
    dns_poll(d, 0);
    answer(d, &F.sent[0], 100, &a1, 1, 0);
    uint64_t now = dns_poll(d, 0);
    while (F.nsent < 5) /* one round of 3 lost attempts, then a retry */
        now = dns_poll(d, now);
    CHECK(strstr(F.last_log, "again.example failed (no reply; keeping") !=
          NULL);
    answer(d, &F.sent[F.nsent - 1], 100, &a1, 1, now);
    CHECK(strstr(F.last_log, "again.example answering again") != NULL);
    CHECK_EQ(F.changed, 1);
    CHECK_EQ(dns_match(d, id, a1), 1);
    free(d);
}

/* One name used by two clients: one entry, one query. */
TEST(client_shared_name)
{
    struct dns *d = new_dns(8);
    uint32_t a1 = 0x01010101;

    dns_set_servers(d, PRI, SEC);
    int id1 = dns_ref(d, "shared.example");
    int id2 = dns_ref(d, "SHARED.example.");
    CHECK_EQ(id1, id2);
    dns_poll(d, 0);
    CHECK_EQ(F.nsent, 1);
    answer(d, &F.sent[0], 100, &a1, 1, 0);
    dns_unref(d, id1);
    CHECK_EQ(dns_match(d, id2, a1), 1);
    /* a third user after resolution: no new query */
    int id3 = dns_ref(d, "shared.example");
    CHECK_EQ(id3, id1);
    dns_poll(d, 1);
    CHECK_EQ(F.nsent, 1);
    struct dns_stats st;
    dns_get_stats(d, &st);
    CHECK_EQ(st.names, 1);
    CHECK_EQ(st.referenced, 1);
    /* all users gone: cached until the TTL, not refreshed, then freed */
    dns_unref(d, id1);
    dns_unref(d, id1);
    dns_unref(d, id1); /* extra unref ignored */
    CHECK_EQ(dns_match(d, id1, a1), -1);
    CHECK_EQ(dns_poll(d, 1), 100 * S);
    CHECK_EQ(F.nsent, 1);
    /* re-referenced while cached: answers immediately */
    CHECK_EQ(dns_ref(d, "shared.example"), id1);
    CHECK_EQ(dns_match(d, id1, a1), 1);
    dns_unref(d, id1);
    CHECK_EQ(dns_poll(d, 100 * S), UINT64_MAX);
    dns_get_stats(d, &st);
    CHECK_EQ(st.names, 0);
    CHECK(dns_name(d, id1) == NULL);
    free(d);
}

/* Unreferenced while its refresh is in flight, past its TTL: the next
 * deadline is the query's, never one in the past (found by fuzz_dns). */
TEST(client_unref_during_refresh)
{
    struct dns *d = new_dns(8);
    uint32_t a1 = 0x01010101;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "r.example");
    dns_poll(d, 0);
    answer(d, &F.sent[0], 30, &a1, 1, 0);
    uint64_t t = dns_poll(d, 0); /* refresh at 21..24 s */
    dns_poll(d, t);
    CHECK_EQ(F.nsent, 2);
    dns_poll(d, t + 1 * S); /* second attempt */
    dns_unref(d, id);
    uint64_t now = 30 * S + 1; /* past the TTL, third attempt in flight */
    uint64_t next = dns_poll(d, now);
    CHECK(next > now);
    CHECK_EQ(F.reserved, 1);
    for (int k = 0; k < 10 && F.reserved; k++)
        next = dns_poll(d, next > now ? next : now + S);
    struct dns_stats st;
    dns_get_stats(d, &st);
    CHECK_EQ(st.names, 0);
    CHECK_EQ(dns_poll(d, next), UINT64_MAX);
    free(d);
}

TEST(client_ref_errors_and_eviction)
{
    struct dns *d = new_dns(2);
    char name[300];

    CHECK_EQ(dns_ref(d, "bad name"), -QW_EINVAL);
    CHECK_EQ(dns_ref(d, ""), -QW_EINVAL);
    CHECK_EQ(dns_ref(d, "a..b"), -QW_EINVAL);
    int a = dns_ref(d, "a.example");
    int b = dns_ref(d, "b.example");
    CHECK(a >= 0 && b >= 0 && a != b);
    CHECK_EQ(dns_ref(d, "c.example"), -QW_ENOSPC);
    dns_set_servers(d, PRI, 0);
    dns_poll(d, 0);
    CHECK_EQ(F.nsent, 2);
    uint32_t x = 0x01010101;
    answer(d, &F.sent[0], 100, &x, 1, 0);
    dns_unref(d, a);
    /* a (cached, unreferenced) is evicted for c */
    int c = dns_ref(d, "c.example");
    CHECK_EQ(c, a);
    CHECK(strcmp(dns_name(d, c), "c.example") == 0);
    CHECK_EQ(dns_match(d, c, x), -1);
    struct dns_stats st;
    dns_get_stats(d, &st);
    CHECK_EQ(st.evictions, 1);
    /* evicting a name with a query in flight releases its port */
    dns_unref(d, b);
    unsigned rel = F.released;
    CHECK(dns_ref(d, "d.example") == b);
    CHECK_EQ(F.released, rel + 1);
    /* the name arena (2 x DNS_NAME_AVG bytes) holds no 253-char name */
    for (int i = 0; i < 253; i++)
        name[i] = (i % 4 == 3) ? '.' : 'a';
    name[253] = '\0';
    dns_unref(d, c);
    CHECK_EQ(dns_ref(d, name), -QW_ENOSPC);
    free(d);
}

/* Churn through many names in a small arena: compaction keeps every name
 * intact. */
TEST(client_arena_compaction)
{
    struct dns *d = new_dns(16);
    char name[64];
    int ids[16];

    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 16; i++) {
            snprintf(name, sizeof name, "host-%d-%d-%s.example", round, i,
                     i % 2 ? "long-label-padding-padding" : "x");
            ids[i] = dns_ref(d, name);
            CHECK(ids[i] >= 0);
        }
        for (int i = 0; i < 16; i++) {
            snprintf(name, sizeof name, "host-%d-%d-%s.example", round, i,
                     i % 2 ? "long-label-padding-padding" : "x");
            CHECK(ids[i] >= 0 && strcmp(dns_name(d, ids[i]), name) == 0);
            CHECK_EQ(dns_ref(d, name), ids[i]);
            dns_unref(d, ids[i]);
            dns_unref(d, ids[i]);
        }
    }
    free(d);
}

TEST(client_send_failure)
{
    struct dns *d = new_dns(8);

    dns_set_servers(d, PRI, SEC);
    dns_ref(d, "x.example");
    F.send_fails = true;
    CHECK_EQ(dns_poll(d, 0), 1 * S);
    CHECK_EQ(dns_poll(d, 1 * S), 3 * S);
    CHECK_EQ(dns_poll(d, 3 * S), 7 * S);
    CHECK_EQ(dns_poll(d, 7 * S), 8 * S); /* failed: backoff 1 s */
    CHECK_EQ(F.released, 0);             /* nothing was reserved */
    F.send_fails = false;
    dns_poll(d, 8 * S);
    CHECK_EQ(F.nsent, 1);
    free(d);
}

TEST(client_server_change)
{
    struct dns *d = new_dns(8);
    uint32_t a1 = 0x01010101;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "x.example");
    int id2 = dns_ref(d, "y.example");
    dns_poll(d, 0);
    answer(d, &F.sent[0], 3600, &a1, 1, 0);
    CHECK_EQ(F.reserved, 1);      /* y in flight */
    dns_set_servers(d, PRI, SEC); /* no change: nothing happens */
    CHECK_EQ(F.reserved, 1);
    dns_set_servers(d, 0x0a000053, 0);
    CHECK_EQ(F.reserved, 0); /* aborted */
    CHECK_EQ(dns_deadline(d), 0);
    dns_poll(d, 1 * S);
    CHECK_EQ(F.nsent, 4); /* both names again */
    CHECK_EQ(F.sent[2].server, 0x0a000053u);
    CHECK_EQ(F.sent[3].server, 0x0a000053u);
    CHECK_EQ(dns_match(d, id, a1), 1); /* kept meanwhile */
    CHECK_EQ(dns_match(d, id2, a1), -1);
    free(d);
}

TEST(client_host_ops)
{
    struct dns *d = new_dns(8);
    struct rules_host_ops ops = dns_host_ops(d);
    uint32_t a1 = 0x01010101;

    CHECK(ops.ctx == d);
    int id = ops.ref(ops.ctx, "ops.example");
    CHECK(id >= 0);
    CHECK_EQ(ops.match(ops.ctx, id, a1), -1);
    dns_set_servers(d, PRI, 0);
    dns_poll(d, 0);
    answer(d, &F.sent[0], 100, &a1, 1, 0);
    CHECK_EQ(ops.match(ops.ctx, id, a1), 1);
    CHECK_EQ(ops.match(ops.ctx, id, a1 + 1), 0);
    ops.unref(ops.ctx, id);
    CHECK_EQ(ops.match(ops.ctx, id, a1), -1);
    free(d);
}

/*
 * 1,000 names: queries in flight never exceed DNS_MAX_INFLIGHT, every name
 * resolves, refreshes are spread over the jitter window, the log is
 * rate-limited, and the next deadline is never in the past.
 */
TEST(client_thousand_names)
{
    enum { N = 1000 };
    struct dns *d = new_dns(N);
    static int ids[N];
    char name[64];
    uint64_t now = 0;
    unsigned answered = 0;

    dns_set_servers(d, PRI, SEC);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "n%d.example", i);
        ids[i] = dns_ref(d, name);
        CHECK(ids[i] >= 0);
    }
    /* answer each query 10 ms after it leaves, like a fast upstream */
    unsigned next_answer = 0, polls = 0;
    while (answered < N && polls < 100000) {
        uint64_t dl = dns_poll(d, now);
        polls++;
        CHECK(dl >= now);
        if (F.reserved > DNS_MAX_INFLIGHT)
            break;
        while (next_answer < F.nsent) {
            struct sent *s = &F.sent[next_answer++];
            char q[300];
            sent_name(s, q);
            uint32_t addr = (uint32_t)atoi(q + 1) + 0x0b000000u;
            now += S / 100;
            CHECK_EQ(answer(d, s, 300, &addr, 1, now), QW_DROP_NONE);
            answered++;
        }
    }
    CHECK_EQ(answered, N);
    CHECK(F.max_reserved <= DNS_MAX_INFLIGHT);
    CHECK_EQ(F.max_reserved, DNS_MAX_INFLIGHT);
    for (int i = 0; i < N; i++)
        CHECK_EQ(dns_match(d, ids[i], 0x0b000000u + (uint32_t)i), 1);
    /* servers line, a burst of 10, then at most one line per 2 s (and a
     * "suppressed" line before it) */
    CHECK(F.logs >= 11);
    CHECK(F.logs <= 1 + 10 + 2 * (now / S / 2 + 1));
    CHECK(F.logs < N / 10);
    /* refreshes: spread over 210..240 s after each answer; count the
     * distinct seconds in which they leave */
    unsigned first = F.nsent, seconds = 0, last_sec = 0;
    uint64_t t = now;
    while (F.nsent < first + N && t < now + 400 * S) {
        uint64_t dl = dns_poll(d, t);
        CHECK(dl > t);
        if (F.reserved > DNS_MAX_INFLIGHT)
            break;
        while (next_answer < F.nsent) {
            struct sent *s = &F.sent[next_answer++];
            unsigned sec = (unsigned)(s->at / S);
            if (sec != last_sec)
                seconds++;
            last_sec = sec;
            char q[300];
            sent_name(s, q);
            uint32_t addr = (uint32_t)atoi(q + 1) + 0x0b000000u;
            answer(d, s, 300, &addr, 1, s->at + S / 100);
        }
        t = dl;
    }
    CHECK_EQ(F.nsent, first + N);
    CHECK(F.max_reserved <= DNS_MAX_INFLIGHT);
    CHECK(seconds >= 25);   /* a 30 s window, not one burst */
    CHECK_EQ(F.changed, N); /* first resolutions only; refresh = same */
    free(d);
}

/* A name with a one-hour TTL wakes the client about once per refresh. */
TEST(client_idle_wakeups)
{
    struct dns *d = new_dns(8);
    uint32_t a1 = 0x01010101;
    unsigned polls = 0, answered = 0;
    uint64_t now = 0;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, "idle.example");
    while (now < 10 * 3600 * S) {
        now = dns_poll(d, now);
        polls++;
        if (F.nsent > answered) {
            answer(d, &F.sent[answered], 3600, &a1, 1, now);
            answered++;
        }
    }
    CHECK_EQ(dns_match(d, id, a1), 1);
    CHECK(answered >= 12 && answered <= 15); /* every 42..48 min */
    CHECK(polls <= 2 * answered + 2);
    free(d);
}

/* The hook as rules.c uses it (accept and drop rules, unresolved). */
TEST(client_with_rules)
{
    struct dns *d = new_dns(8);
    struct rules_host_ops ops = dns_host_ops(d);
    struct rules_set *rs = malloc(rules_mem_size(8));
    const struct rules_entry e[] = {
        {"policy", "drop"},
        {"0000", "action=drop dsthost=blocked.example"},
        {"0001", "action=accept dsthost=web.example proto=tcp "
                 "dstports=443-443"},
        {"0002", "action=accept proto=icmp"},
    };
    struct rules_flow tcp443 = {0x01010101, 443, 6, 0};
    struct rules_flow ping = {0x02020202, 0, 1, 8};
    uint32_t web = 0x01010101, blocked = 0x02020202;

    rules_init(rs, 8);
    CHECK_EQ(rules_compile(rs, e, 4, &ops, NULL, 0), 3);
    struct dns_stats st;
    dns_get_stats(d, &st);
    CHECK_EQ(st.referenced, 2);
    /* nothing resolved: the drop rule matches everything */
    CHECK_EQ(rules_match(rs, &tcp443, NULL, &ops, NULL), RULES_DROP);
    CHECK_EQ(rules_match(rs, &ping, NULL, &ops, NULL), RULES_DROP);
    dns_set_servers(d, PRI, SEC);
    dns_poll(d, 0);
    CHECK_EQ(F.nsent, 2);
    for (unsigned i = 0; i < 2; i++) {
        char q[300];
        sent_name(&F.sent[i], q);
        answer(d, &F.sent[i], 300, q[0] == 'w' ? &web : &blocked, 1, 1);
    }
    int no;
    CHECK_EQ(rules_match(rs, &tcp443, NULL, &ops, &no), RULES_ACCEPT);
    CHECK_EQ(no, 1);
    CHECK_EQ(rules_match(rs, &ping, NULL, &ops, &no), RULES_DROP);
    CHECK_EQ(no, 0);
    ping.dst = 0x03030303;
    CHECK_EQ(rules_match(rs, &ping, NULL, &ops, &no), RULES_ACCEPT);
    tcp443.dst = 0x04040404;
    CHECK_EQ(rules_match(rs, &tcp443, NULL, &ops, NULL), RULES_DROP);
    rules_release(rs, &ops);
    dns_get_stats(d, &st);
    CHECK_EQ(st.referenced, 0);
    free(rs);
    free(d);
}

/* The stated memory cost per name. */
TEST(client_memory)
{
    CHECK(dns_bytes_per_name() <= 256);
    CHECK_EQ(dns_mem_size(1000) - dns_mem_size(0), 1000 * dns_bytes_per_name());
    CHECK_EQ(dns_mem_size(DNS_MAX_NAMES + 5), dns_mem_size(DNS_MAX_NAMES));
    printf("# dns: %zu bytes per cached name, %zu bytes for 256 names\n",
           dns_bytes_per_name(), dns_mem_size(256));
}

int main(void)
{
    RUN(query_bytes);
    RUN(query_rejects_bad_names);
    RUN(parse_fixture);
    RUN(parse_case_and_question);
    RUN(parse_rcodes);
    RUN(parse_cname_chain);
    RUN(parse_cname_bounds);
    RUN(parse_hostile_pointers);
    RUN(parse_long_names);
    RUN(parse_zero_length_labels);
    RUN(parse_counts_and_truncation);
    RUN(parse_address_set);
    RUN(parse_ttl_top_bit);
    RUN(parse_aaaa);
    RUN(client_resolves);
    RUN(client_rejects_spoofs);
    RUN(client_same_port_two_servers);
    RUN(client_retries_1_2_4);
    RUN(client_single_server);
    RUN(client_backoff);
    RUN(client_ttl_clamp_and_refresh);
    RUN(client_previous_set_grace);
    RUN(client_grace_superset);
    RUN(client_failure_after_success);
    RUN(client_servfail_next_server);
    RUN(client_truncated);
    RUN(client_earliest_due_first);
    RUN(client_answering_again);
    RUN(client_shared_name);
    RUN(client_unref_during_refresh);
    RUN(client_ref_errors_and_eviction);
    RUN(client_arena_compaction);
    RUN(client_send_failure);
    RUN(client_server_change);
    RUN(client_host_ops);
    RUN(client_thousand_names);
    RUN(client_idle_wakeups);
    RUN(client_with_rules);
    RUN(client_memory);
    return test_summary();
}
