/*
 * gnthelper.c: the dom0 half of check-xen's grant-table round trip.
 *
 *   gnthelper DOMID
 *
 * Protocol, through keys under /local/domain/DOMID/data/qwt-gnt/:
 *  1. the guest grants dom0 one page (read-only) holding the text
 *     "qwall grant page DOMID" and writes its reference to `offer`;
 *  2. we map it (libxengnttab) and check the text, keep it mapped, share
 *     two pages of our own with the guest (libxengntshr): `src` filled
 *     with a known pattern and `dst` zeroed and writable, and write
 *     "SRCREF DSTREF" to `peer`;
 *  3. the guest tries to revoke its grant (refused: we still map it),
 *     grant-copies src into its memory, checks the pattern, grant-copies
 *     the bytes XOR 0xff into dst and writes `result`;
 *  4. we check dst, unmap the guest page and write `unmapped`; the guest
 *     now revokes successfully and writes `done`.
 * Before all that, an event-channel round trip: the guest allocates an
 * unbound port for dom0 and writes it to `evtchn`; we bind it
 * (libxenevtchn), notify, and wait for the guest's notification back.
 * Prints one line per step; the last line says PASS or FAIL; exit 0 only
 * on PASS.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#define PAGE 4096

static struct xs_handle *xs;
static char base[128];

static void die(const char *fmt, ...)
{
    va_list ap;

    printf("gnthelper: FAIL: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(1);
}

/* Read base/key, waiting up to timeout_ms for it to exist. */
static char *wait_key(const char *key, int timeout_ms)
{
    char path[192];

    snprintf(path, sizeof(path), "%s/%s", base, key);
    for (int t = 0; t < timeout_ms; t += 20) {
        unsigned len;
        char *v = xs_read(xs, XBT_NULL, path, &len);

        if (v != NULL && len > 0)
            return v;
        free(v);
        usleep(20000);
    }
    die("timeout waiting for %s", path);
    return NULL;
}

static void put_key(const char *key, const char *val)
{
    char path[192];

    snprintf(path, sizeof(path), "%s/%s", base, key);
    if (!xs_write(xs, XBT_NULL, path, val, strlen(val)))
        die("cannot write %s", path);
}

#define ROUNDS 50

/* Bind the guest's unbound port, then play ROUNDS of ping-pong: notify,
 * wait for the guest's answer. Every round needs one event delivered in
 * each direction, so a lost event stops the game. */
static void event_round_trip(uint32_t domid)
{
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
    char *v = wait_key("evtchn", 10000);
    uint32_t remote = (uint32_t)strtoul(v, NULL, 10);
    struct pollfd pfd;
    xenevtchn_port_or_error_t local, got;

    free(v);
    if (xce == NULL)
        die("cannot open /dev/xen/evtchn");
    local = xenevtchn_bind_interdomain(xce, domid, remote);
    if (local < 0)
        die("bind to dom%u port %u failed", domid, remote);
    pfd.fd = xenevtchn_fd(xce);
    pfd.events = POLLIN;
    /* Xen marks a freshly bound port pending; consume that first so that
     * each round below waits for the guest's own answer. */
    if (poll(&pfd, 1, 500) == 1) {
        got = xenevtchn_pending(xce);
        if (got >= 0)
            xenevtchn_unmask(xce, (evtchn_port_t)got);
    }
    for (int round = 0; round < ROUNDS; round++) {
        if (xenevtchn_notify(xce, (evtchn_port_t)local) < 0)
            die("notify failed");
        if (poll(&pfd, 1, 5000) != 1)
            die("round %d: no event back from dom%u port %u within 5 s", round,
                domid, remote);
        got = xenevtchn_pending(xce);
        if (got != local)
            die("event on port %d, expected %d", got, local);
        xenevtchn_unmask(xce, (evtchn_port_t)got);
    }
    printf("gnthelper: %d event round trips on dom%u port %u (local %d)\n",
           ROUNDS, domid, remote, local);
    xenevtchn_unbind(xce, (evtchn_port_t)local);
    xenevtchn_close(xce);
}

static unsigned char pattern(unsigned i)
{
    return (unsigned char)(i * 7u + 3u);
}

int main(int argc, char **argv)
{
    xengnttab_handle *gt;
    xengntshr_handle *gs;
    uint32_t domid, offer, refs[2];
    unsigned char *guest, *src, *dst;
    char expect[64], buf[64], *v;

    if (argc != 2)
        die("usage: gnthelper DOMID");
    domid = (uint32_t)strtoul(argv[1], NULL, 10);
    snprintf(base, sizeof(base), "/local/domain/%u/data/qwt-gnt", domid);
    xs = xs_open(0);
    if (xs == NULL)
        die("xs_open");
    gt = xengnttab_open(NULL, 0);
    gs = xengntshr_open(NULL, 0);
    if (gt == NULL || gs == NULL)
        die("cannot open gntdev/gntalloc");

    event_round_trip(domid);
    v = wait_key("offer", 10000);
    offer = (uint32_t)strtoul(v, NULL, 10);
    free(v);
    guest = xengnttab_map_grant_ref(gt, domid, offer, PROT_READ);
    if (guest == NULL)
        die("map of guest grant %u failed", offer);
    snprintf(expect, sizeof(expect), "qwall grant page %u", domid);
    if (memcmp(guest, expect, strlen(expect) + 1) != 0)
        die("guest page holds \"%.40s\", not \"%s\"", guest, expect);
    printf("gnthelper: mapped guest grant %u: \"%s\"\n", offer, expect);

    src = xengntshr_share_pages(gs, domid, 1, &refs[0], 0);
    dst = xengntshr_share_pages(gs, domid, 1, &refs[1], 1);
    if (src == NULL || dst == NULL)
        die("cannot share pages with dom%u", domid);
    for (unsigned i = 0; i < PAGE; i++)
        src[i] = pattern(i);
    memset(dst, 0, PAGE);
    snprintf(buf, sizeof(buf), "%u %u", refs[0], refs[1]);
    put_key("peer", buf);
    printf("gnthelper: shared src %u dst %u\n", refs[0], refs[1]);

    v = wait_key("result", 10000);
    printf("gnthelper: guest result \"%s\"\n", v);
    free(v);
    for (unsigned i = 0; i < PAGE; i++) {
        if (dst[i] != (unsigned char)(pattern(i) ^ 0xff))
            die("dst byte %u is 0x%02x, want 0x%02x", i, dst[i],
                pattern(i) ^ 0xff);
    }
    printf("gnthelper: dst page checked (4096 bytes)\n");

    xengnttab_unmap(gt, guest, 1);
    put_key("unmapped", "1");
    v = wait_key("done", 10000);
    if (strcmp(v, "ok") != 0)
        die("guest says \"%s\"", v);
    free(v);
    xengntshr_unshare(gs, src, 1);
    xengntshr_unshare(gs, dst, 1);
    printf("gnthelper: PASS event round trip, grant map, copy in/out, "
           "revoke with dom%u\n",
           domid);
    return 0;
}
