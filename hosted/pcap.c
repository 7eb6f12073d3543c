/*
 * pcap.c: minimal writers for the libpcap format and pcapng (sections
 * 4.1 SHB, 4.2 IDB, 4.3 EPB of draft-ietf-opsawg-pcapng), host byte order
 * as both formats allow (readers detect it from the magic).
 */
#include "pcap.h"

#include <string.h>
#include <time.h>

#define PCAP_SNAPLEN 65535u
#define PCAP_LINKTYPE_ETHERNET 1u

static void now_us(uint32_t *sec, uint32_t *usec)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = (uint32_t)ts.tv_sec;
    *usec = (uint32_t)(ts.tv_nsec / 1000);
}

FILE *pcap_open(const char *path)
{
    struct {
        uint32_t magic;
        uint16_t major, minor;
        int32_t zone;
        uint32_t sigfigs, snaplen, linktype;
    } h = {0xa1b2c3d4u, 2, 4, 0, 0, PCAP_SNAPLEN, PCAP_LINKTYPE_ETHERNET};
    FILE *f = fopen(path, "wb");

    if (f && fwrite(&h, sizeof(h), 1, f) != 1) {
        fclose(f);
        return NULL;
    }
    return f;
}

void pcap_write(FILE *f, const uint8_t *frame, uint32_t len)
{
    uint32_t rec[4];

    now_us(&rec[0], &rec[1]);
    rec[2] = len;
    rec[3] = len;
    fwrite(rec, sizeof(rec), 1, f);
    fwrite(frame, len, 1, f);
}

static void put_block(FILE *f, uint32_t type, const void *body, uint32_t n)
{
    uint32_t total = 12 + n;

    fwrite(&type, 4, 1, f);
    fwrite(&total, 4, 1, f);
    fwrite(body, n, 1, f);
    fwrite(&total, 4, 1, f);
}

FILE *pcap_ng_open(const char *path)
{
    /* SHB: byte-order magic, version 1.0, section length unknown (-1). */
    struct {
        uint32_t bom;
        uint16_t major, minor;
        int64_t section_len;
    } shb = {0x1a2b3c4du, 1, 0, -1};
    /* IDB: link type, reserved, snaplen; no options. */
    struct {
        uint16_t linktype, reserved;
        uint32_t snaplen;
    } idb = {PCAP_LINKTYPE_ETHERNET, 0, PCAP_SNAPLEN};
    FILE *f = fopen(path, "wb");

    if (!f)
        return NULL;
    put_block(f, 0x0a0d0d0au, &shb, sizeof(shb));
    put_block(f, 0x00000001u, &idb, sizeof(idb));
    return f;
}

void pcap_ng_write(FILE *f, const uint8_t *frame, uint32_t len,
                   const char *comment)
{
    static const uint8_t pad[4];
    uint32_t clen = (uint32_t)strlen(comment);
    uint32_t fpad = (4 - len % 4) % 4, cpad = (4 - clen % 4) % 4;
    /* EPB body: interface id, timestamp (us) high/low, captured and
     * original lengths, data, then opt_comment (1) and opt_endofopt. */
    uint32_t total = 12 + 20 + len + fpad + 4 + clen + cpad + 4;
    uint32_t type = 6, hdr[5];
    uint16_t opt[2] = {1, (uint16_t)clen}, end[2] = {0, 0};
    struct timespec ts;
    uint64_t us;

    clock_gettime(CLOCK_REALTIME, &ts);
    us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    hdr[0] = 0;
    hdr[1] = (uint32_t)(us >> 32);
    hdr[2] = (uint32_t)us;
    hdr[3] = len;
    hdr[4] = len;
    fwrite(&type, 4, 1, f);
    fwrite(&total, 4, 1, f);
    fwrite(hdr, sizeof(hdr), 1, f);
    fwrite(frame, len, 1, f);
    fwrite(pad, fpad, 1, f);
    fwrite(opt, sizeof(opt), 1, f);
    fwrite(comment, clen, 1, f);
    fwrite(pad, cpad, 1, f);
    fwrite(end, sizeof(end), 1, f);
    fwrite(&total, 4, 1, f);
}
