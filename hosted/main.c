/*
 * main.c: qwall-hosted, the qwall core as a Linux process.
 *
 * The loop: epoll over every link's packet socket, the QubesDB socket, a
 * signalfd (SIGINT/SIGTERM stop, SIGUSR1 prints counters) and a timerfd
 * armed at the core's next deadline. Received frames go to the core in
 * batches per link; whatever it returns is copied into the tx rings before
 * the next call (qwall.h: output frames live until the next call).
 *
 * Clients: the core reports QubesDB changes through qdb_changed; names
 * under /qwall-hosted/vif/ are collected there and reconciled after the
 * core returns (attaching from inside the callback would re-enter it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hosted.h"
#include "pcap.h"
#include "qwall.h"
#include "ring.h"

#define MAX_LINKS 257u /* uplink + up to 256 clients */
#define MAX_NAMES 512u
#define BATCH 64u
#define OUT_CAP 512u
#define BATCHES_PER_WAKE 4u
#define POLL_MIN_NS 1000000ull     /* qw_poll at most this late after work */
#define QDB_RETRY_NS 300000000ull  /* reconnect delay */
#define RECONCILE_NS 1000000000ull /* retry clients whose interface is gone */
#define TAG_SIGNAL 0xfffffff0u
#define TAG_TIMER 0xfffffff1u
#define TAG_QDB 0xfffffff2u

struct hlink {
    bool used;
    struct ring ring;
    char name[32]; /* QubesDB vif name, "uplink" for link 0 */
    uint32_t ip;
    uint8_t mac[6];
    FILE *pcap;
    bool touched; /* has frames queued since the last kick */
};

struct hosted {
    struct qw *fw;
    struct qw_config cfg;
    struct hlink links[MAX_LINKS];
    unsigned touched[MAX_LINKS], ntouched;
    struct qw_frame outv[OUT_CAP];
    struct qw_out out;
    int ep, sfd, tfd;
    uint64_t timer_at; /* what tfd is armed for (0 = disarmed) */
    bool timer_fired;
    bool qdb_want_out; /* EPOLLOUT requested on the QubesDB socket */
    /* QubesDB stream */
    const char *qdb_path;
    int qdb_fd;
    bool qdb_warned;
    uint64_t qdb_retry_at;
    uint8_t qtx[8192];
    size_t qtx_off, qtx_len;
    /* message boundaries of dom0's stream, only to see the end of the
     * MULTIREAD dump (the core clears its store silently on connect) */
    bool qsynced; /* the core reported the end of the initial dump */
    /* client names seen under HOSTED_VIF_DIR */
    char names[MAX_NAMES][32];
    bool name_failed[MAX_NAMES]; /* its interface did not open last time */
    unsigned nnames;
    bool dirty;
    uint64_t reconcile_at;
    /* timers */
    uint64_t next_poll, last_poll;
    bool worked;
    /* observability */
    enum qw_log_level level;
    const char *pcap_dir;
    FILE *drops;
    const char *stats_path;
    uint64_t unknown_link_drops;
    /* randomness */
    uint32_t rnd[256];
    unsigned nrnd;
};

static const char *level_name(enum qw_log_level l)
{
    static const char *const n[] = {"error", "warn", "info", "debug"};

    return (unsigned)l < 4 ? n[l] : "debug";
}

static void hlog(struct hosted *h, enum qw_log_level l, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void hlog(struct hosted *h, enum qw_log_level l, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (l > h->level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "qwall: %s: %s\n", level_name(l), line);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --- platform callbacks ---------------------------------------------- */

static void plat_log(void *ctx, enum qw_log_level level, const char *line)
{
    struct hosted *h = ctx;

    if (level <= h->level)
        fprintf(stderr, "qwall: %s: %s\n", level_name(level), line);
}

static uint32_t plat_random(void *ctx)
{
    struct hosted *h = ctx;

    if (h->nrnd == 0) {
        size_t got = 0;

        while (got < sizeof(h->rnd)) {
            ssize_t n =
                getrandom((uint8_t *)h->rnd + got, sizeof(h->rnd) - got, 0);
            if (n > 0)
                got += (size_t)n;
            else if (errno != EINTR)
                abort(); /* no randomness: NAT ports would be guessable */
        }
        h->nrnd = 256;
    }
    return h->rnd[--h->nrnd];
}

static const char *link_label(struct hosted *h, unsigned link)
{
    if (link < MAX_LINKS && h->links[link].used)
        return h->links[link].ring.ifname;
    return "unknown";
}

static void plat_dropped(void *ctx, unsigned link, const uint8_t *frame,
                         uint32_t len, enum qw_drop reason)
{
    struct hosted *h = ctx;
    char comment[96];

    if (!h->drops)
        return;
    snprintf(comment, sizeof(comment), "link=%s reason=%s", link_label(h, link),
             qw_drop_name(reason));
    pcap_ng_write(h->drops, frame, len, comment);
}

static void note_name(struct hosted *h, const char *name, size_t n)
{
    unsigned i;

    if (n == 0 || n >= sizeof(h->names[0]))
        return;
    for (i = 0; i < h->nnames; i++)
        if (strlen(h->names[i]) == n && memcmp(h->names[i], name, n) == 0)
            return;
    if (h->nnames == MAX_NAMES) {
        hlog(h, QW_LOG_WARN, "hosted: too many vif names, ignoring %.*s",
             (int)n, name);
        return;
    }
    memcpy(h->names[h->nnames], name, n);
    h->names[h->nnames][n] = '\0';
    h->name_failed[h->nnames++] = false;
}

static void plat_qdb_changed(void *ctx, const char *path, const char *value,
                             size_t len)
{
    struct hosted *h = ctx;
    size_t plen = strlen(HOSTED_VIF_DIR);
    const char *name, *slash;

    (void)value;
    (void)len;
    if (strncmp(path, "/qwall-hosted", 13) != 0)
        return;
    h->dirty = true;
    if (strncmp(path, HOSTED_VIF_DIR, plen) != 0)
        return; /* a removal of a parent: reconcile every known name */
    name = path + plen;
    slash = strchr(name, '/');
    note_name(h, name, slash ? (size_t)(slash - name) : strlen(name));
}

/* --- sending ----------------------------------------------------------- */

static void kick_all(struct hosted *h)
{
    unsigned i;

    for (i = 0; i < h->ntouched; i++) {
        struct hlink *l = &h->links[h->touched[i]];

        l->touched = false;
        if (l->used)
            ring_kick(&l->ring);
    }
    h->ntouched = 0;
}

/* Copy every output frame into its link's tx ring, then kick. */
static void send_out(struct hosted *h)
{
    unsigned i;

    for (i = 0; i < h->out.n; i++) {
        struct qw_frame *f = &h->outv[i];
        struct hlink *l = f->link < MAX_LINKS ? &h->links[f->link] : NULL;

        if (!l || !l->used) {
            h->unknown_link_drops++;
            continue;
        }
        if (l->pcap)
            pcap_write(l->pcap, f->data, f->len);
        ring_tx(&l->ring, f->data, f->len);
        if (!l->touched) {
            l->touched = true;
            h->touched[h->ntouched++] = f->link;
        }
    }
    h->out.n = 0;
    kick_all(h);
    h->worked = true;
}

/* --- links --------------------------------------------------------------- */

static int link_watch(struct hosted *h, unsigned idx)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = idx};

    return epoll_ctl(h->ep, EPOLL_CTL_ADD, h->links[idx].ring.fd, &ev);
}

static void link_pcap_open(struct hosted *h, struct hlink *l)
{
    char path[512];

    if (!h->pcap_dir)
        return;
    snprintf(path, sizeof(path), "%s/%s.pcap", h->pcap_dir, l->ring.ifname);
    l->pcap = pcap_open(path);
    if (!l->pcap)
        hlog(h, QW_LOG_WARN, "hosted: pcap: cannot create %s (%s)", path,
             strerror(errno));
}

static void link_release(struct hlink *l)
{
    if (l->pcap)
        fclose(l->pcap);
    ring_close(&l->ring);
    memset(l, 0, sizeof(*l));
    l->ring.fd = -1;
}

static void client_detach(struct hosted *h, unsigned idx, uint64_t now,
                          const char *why);

/* A packet socket reports an error (ENETDOWN when its interface goes
 * away). Reading SO_ERROR clears it, or epoll would report it forever. A
 * client whose interface vanished is detached; it comes back through
 * reconcile() if its keys remain and the interface reappears. */
static void link_error(struct hosted *h, unsigned idx, uint64_t now)
{
    struct hlink *l = &h->links[idx];
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(l->ring.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (idx != QW_LINK_UPLINK && if_nametoindex(l->ring.ifname) == 0) {
        client_detach(h, idx, now, "interface gone");
        return;
    }
    /* XXX: a vanished uplink is only logged; next step: watch rtnetlink
     * and call qw_uplink_down()/qw_uplink_up(). */
    hlog(h, QW_LOG_WARN, "hosted: %s: %s", l->ring.ifname, strerror(err));
}

static void link_rx(struct hosted *h, unsigned idx, uint64_t now)
{
    struct hlink *l = &h->links[idx];
    struct ring_frame rf[BATCH];
    struct qw_frame in[BATCH];
    unsigned b, i, n;

    for (b = 0; b < BATCHES_PER_WAKE && l->used; b++) {
        n = ring_rx(&l->ring, rf, BATCH);
        if (n == 0)
            break;
        for (i = 0; i < n; i++) {
            in[i].data = rf[i].data;
            in[i].len = rf[i].len;
            in[i].link = (uint16_t)idx;
            in[i].flags = rf[i].csum_partial ? QW_FRAME_CSUM_BLANK : 0;
            if (l->pcap)
                pcap_write(l->pcap, rf[i].data, rf[i].len);
        }
        qw_rx(h->fw, idx, in, n, now, &h->out);
        send_out(h);
        ring_rx_release(&l->ring);
    }
}

/* --- clients ------------------------------------------------------------- */

static const char *vif_key(struct hosted *h, const char *name, const char *leaf)
{
    char path[96];

    snprintf(path, sizeof(path), "%s%s/%s", HOSTED_VIF_DIR, name, leaf);
    return qw_qdb_get(h->fw, path);
}

/* First IPv4 token of a vif `ip` value ("v4 v6" is allowed). */
static bool parse_vif_ip(const char *v, uint32_t *ip)
{
    char tok[64];
    struct in_addr a;

    while (v && *v) {
        size_t n = strcspn(v, " ");

        if (n > 0 && n < sizeof(tok)) {
            memcpy(tok, v, n);
            tok[n] = '\0';
            if (inet_pton(AF_INET, tok, &a) == 1) {
                *ip = ntohl(a.s_addr);
                return true;
            }
        }
        v += n;
        v += strspn(v, " ");
    }
    return false;
}

static bool parse_mac(const char *v, uint8_t mac[6])
{
    unsigned b[6], i;
    char extra;

    if (!v || sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
                     &b[4], &b[5], &extra) != 6)
        return false;
    for (i = 0; i < 6; i++)
        mac[i] = (uint8_t)b[i];
    return true;
}

static int find_client(struct hosted *h, const char *name)
{
    unsigned i;

    for (i = 1; i < MAX_LINKS; i++)
        if (h->links[i].used && strcmp(h->links[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void client_detach(struct hosted *h, unsigned idx, uint64_t now,
                          const char *why)
{
    struct hlink *l = &h->links[idx];

    hlog(h, QW_LOG_INFO, "hosted: client %s detached (link %u, %s)", l->name,
         idx, why);
    qw_client_detach(h->fw, idx, now);
    epoll_ctl(h->ep, EPOLL_CTL_DEL, l->ring.fd, NULL);
    link_release(l);
}

static void client_attach(struct hosted *h, const char *name, uint32_t ip,
                          const uint8_t mac[6], const char *ifname,
                          bool *failed, uint64_t now)
{
    struct qw_client c;
    struct ring r;
    int err, idx;

    err = ring_open(&r, ifname, 0, 0);
    if (err < 0) {
        /* Retried every second: say it once, then only at debug. */
        hlog(h, *failed ? QW_LOG_DEBUG : QW_LOG_WARN,
             "hosted: client %s: cannot open %s (%s), will retry", name, ifname,
             strerror(-err));
        *failed = true;
        return;
    }
    *failed = false;
    memset(&c, 0, sizeof(c));
    c.ip = ip;
    memcpy(c.mac, mac, 6);
    snprintf(c.name, sizeof(c.name), "%s", name);
    idx = qw_client_attach(h->fw, &c, now);
    if (idx < 1 || (unsigned)idx >= MAX_LINKS || h->links[idx].used) {
        hlog(h, QW_LOG_ERR, "hosted: client %s: attach failed (%d)", name, idx);
        if (idx >= 1 && (unsigned)idx < MAX_LINKS && !h->links[idx].used)
            qw_client_detach(h->fw, (unsigned)idx, now);
        ring_close(&r);
        return;
    }
    h->links[idx].used = true;
    h->links[idx].ring = r;
    h->links[idx].ip = ip;
    memcpy(h->links[idx].mac, mac, 6);
    memcpy(h->links[idx].name, c.name, sizeof(h->links[idx].name));
    link_pcap_open(h, &h->links[idx]);
    if (link_watch(h, (unsigned)idx) < 0) {
        hlog(h, QW_LOG_ERR, "hosted: epoll: %s", strerror(errno));
        client_detach(h, (unsigned)idx, now, "epoll failed");
        return;
    }
    hlog(h, QW_LOG_INFO,
         "hosted: client %s attached (link %d, %u.%u.%u.%u, %s)", name, idx,
         ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, ifname);
}

/* Bring one name's attachment in line with its QubesDB keys. */
static void reconcile_name(struct hosted *h, unsigned ni, uint64_t now)
{
    const char *name = h->names[ni];
    const char *vip = vif_key(h, name, "ip");
    const char *vmac = vif_key(h, name, "mac");
    const char *vif = vif_key(h, name, "ifname");
    int idx = find_client(h, name);
    uint32_t ip = 0;
    uint8_t mac[6];
    bool ok = parse_vif_ip(vip, &ip) && parse_mac(vmac, mac) && vif && *vif &&
              strlen(vif) < 16;

    if (idx > 0) {
        struct hlink *l = &h->links[idx];

        if (ok && l->ip == ip && memcmp(l->mac, mac, 6) == 0 &&
            strcmp(l->ring.ifname, vif) == 0)
            return;
        client_detach(h, (unsigned)idx, now,
                      ok ? "vif keys changed" : "vif keys removed");
    }
    if (ok)
        client_attach(h, name, ip, mac, vif, &h->name_failed[ni], now);
    else if (vip || vmac || vif)
        hlog(h, QW_LOG_DEBUG, "hosted: client %s: vif keys incomplete", name);
}

static void reconcile(struct hosted *h, uint64_t now)
{
    unsigned i = 0;

    h->dirty = false;
    h->reconcile_at = now + RECONCILE_NS;
    while (i < h->nnames) {
        reconcile_name(h, i, now);
        if (!vif_key(h, h->names[i], "ip") && !vif_key(h, h->names[i], "mac") &&
            !vif_key(h, h->names[i], "ifname") &&
            find_client(h, h->names[i]) < 0) {
            /* Forget names with no keys left. */
            h->nnames--;
            memcpy(h->names[i], h->names[h->nnames], sizeof(h->names[0]));
            h->name_failed[i] = h->name_failed[h->nnames];
            continue;
        }
        i++;
    }
    send_out(h);
}

/* --- QubesDB stream ------------------------------------------------------ */

static void qdb_close(struct hosted *h, uint64_t now, const char *why)
{
    if (h->qdb_fd < 0)
        return;
    hlog(h, QW_LOG_WARN, "hosted: qubesdb: %s, reconnecting", why);
    epoll_ctl(h->ep, EPOLL_CTL_DEL, h->qdb_fd, NULL);
    close(h->qdb_fd);
    h->qdb_fd = -1;
    h->qtx_off = h->qtx_len = 0;
    h->qdb_want_out = false;
    h->qsynced = false;
    h->qdb_retry_at = now + QDB_RETRY_NS;
}

static void qdb_set_events(struct hosted *h, bool want_out)
{
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                             .data.u32 = TAG_QDB};

    if (want_out == h->qdb_want_out)
        return; /* one syscall saved per loop turn */
    h->qdb_want_out = want_out;
    epoll_ctl(h->ep, EPOLL_CTL_MOD, h->qdb_fd, &ev);
}

/* Write what the core has queued for dom0 until done or the socket is
 * full (then wait for EPOLLOUT). */
static void qdb_flush(struct hosted *h, uint64_t now)
{
    while (h->qdb_fd >= 0) {
        ssize_t n;

        if (h->qtx_off == h->qtx_len) {
            h->qtx_off = 0;
            h->qtx_len = qw_qdb_tx(h->fw, h->qtx, sizeof(h->qtx));
            if (h->qtx_len == 0) {
                qdb_set_events(h, false);
                return;
            }
        }
        n = send(h->qdb_fd, h->qtx + h->qtx_off, h->qtx_len - h->qtx_off,
                 MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            qdb_set_events(h, true);
            return;
        }
        if (n <= 0) {
            qdb_close(h, now, "write failed");
            return;
        }
        h->qtx_off += (size_t)n;
    }
}

static void qdb_connect(struct hosted *h, uint64_t now)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = TAG_QDB};
    int fd;

    h->qdb_retry_at = now + QDB_RETRY_NS;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->qdb_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (!h->qdb_warned)
            hlog(h, QW_LOG_INFO,
                 "hosted: qubesdb: cannot connect to %s (%s), retrying",
                 h->qdb_path, strerror(errno));
        h->qdb_warned = true;
        close(fd);
        return;
    }
    h->qdb_warned = false;
    h->qdb_fd = fd;
    h->qdb_retry_at = UINT64_MAX;
    epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &ev);
    hlog(h, QW_LOG_INFO, "hosted: qubesdb: connected to %s", h->qdb_path);
    qw_qdb_connected(h->fw, now);
    qdb_flush(h, now);
}

static void qdb_read(struct hosted *h, uint64_t now)
{
    static uint8_t buf[65536];
    unsigned rounds;

    for (rounds = 0; rounds < 16 && h->qdb_fd >= 0; rounds++) {
        ssize_t n = recv(h->qdb_fd, buf, sizeof(buf), 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            qdb_close(h, now,
                      n == 0 ? "dom0 closed the connection" : "read failed");
            break;
        }
        if (qw_qdb_rx(h->fw, buf, (size_t)n, now, &h->out) < 0) {
            send_out(h);
            qdb_close(h, now, "protocol error from dom0");
            break;
        }
        send_out(h);
        if (!h->qsynced && qw_qdb_synced(h->fw)) {
            h->qsynced = true; /* the initial dump has ended */
            h->dirty = true;
            hlog(h, QW_LOG_INFO, "hosted: qubesdb: synced");
        }
    }
    /* No flush here: run_timers() attaches new clients first and then
     * sends our RESP_OKs, so once dom0 (qdb-dom0) sees the ack of a vif's
     * keys its link is already open. */
}

/* --- counters ------------------------------------------------------------ */

static void write_stats(struct hosted *h)
{
    char tmp[512], summary[4096];
    FILE *f;
    unsigned i, r;

    qw_stats_format(h->fw, summary, sizeof(summary));
    hlog(h, QW_LOG_INFO, "%s", summary);
    if (!h->stats_path)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", h->stats_path);
    f = fopen(tmp, "w");
    if (!f)
        return;
    for (i = 0; i < MAX_LINKS; i++) {
        struct hlink *l = &h->links[i];
        struct qw_link_stats st;

        if (!l->used)
            continue;
        ring_update_stats(&l->ring);
        qw_link_stats(h->fw, i, &st);
        fprintf(f,
                "link %u %s ifname=%s rx_frames=%llu rx_bytes=%llu "
                "tx_frames=%llu tx_bytes=%llu drops=%llu truncated=%llu "
                "tx_ring_full=%llu kernel_drops=%llu\n",
                i, l->name, l->ring.ifname, (unsigned long long)st.rx_frames,
                (unsigned long long)st.rx_bytes,
                (unsigned long long)st.tx_frames,
                (unsigned long long)st.tx_bytes, (unsigned long long)st.drops,
                (unsigned long long)l->ring.st.truncated,
                (unsigned long long)l->ring.st.tx_ring_full,
                (unsigned long long)l->ring.st.kernel_drops);
        for (r = 1; r < QW_DROP__COUNT; r++) {
            uint64_t c = qw_counter(h->fw, i, (enum qw_drop)r);

            if (c)
                fprintf(f, "drop %u %s %s %llu\n", i, l->name,
                        qw_drop_name((enum qw_drop)r), (unsigned long long)c);
        }
    }
    fprintf(f, "summary %s\n", summary);
    fclose(f);
    rename(tmp, h->stats_path);
}

static void flush_pcaps(struct hosted *h)
{
    unsigned i;

    for (i = 0; i < MAX_LINKS; i++)
        if (h->links[i].pcap)
            fflush(h->links[i].pcap);
    if (h->drops)
        fflush(h->drops);
}

/* --- loop ---------------------------------------------------------------- */

static bool on_signal(struct hosted *h)
{
    struct signalfd_siginfo si;

    while (read(h->sfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            write_stats(h);
            flush_pcaps(h);
            continue;
        }
        hlog(h, QW_LOG_INFO, "hosted: stopping (%s)",
             strsignal((int)si.ssi_signo));
        return false;
    }
    return true;
}

static void arm_timer(struct hosted *h, uint64_t now)
{
    uint64_t t = h->next_poll;
    struct itimerspec its;

    if (h->worked && h->last_poll + POLL_MIN_NS < t)
        t = h->last_poll + POLL_MIN_NS;
    if (h->qdb_fd < 0 && h->qdb_retry_at < t)
        t = h->qdb_retry_at;
    if (h->nnames && h->reconcile_at < t)
        t = h->reconcile_at;
    if (t == UINT64_MAX)
        t = 0; /* disarm */
    else if (t <= now)
        t = now + 1;
    if (t == h->timer_at)
        return; /* already armed for it: no syscall on the busy path */
    h->timer_at = t;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(t / 1000000000ull);
    its.it_value.tv_nsec = (long)(t % 1000000000ull);
    timerfd_settime(h->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void run_timers(struct hosted *h, uint64_t now)
{
    uint64_t junk;

    if (h->timer_fired) {
        h->timer_fired = false;
        h->timer_at = 0; /* expired: the next arm_timer() must re-arm */
        if (read(h->tfd, &junk, sizeof(junk)) < 0 && errno != EAGAIN)
            hlog(h, QW_LOG_DEBUG, "hosted: timerfd: %s", strerror(errno));
    }
    if (h->qdb_fd < 0 && now >= h->qdb_retry_at)
        qdb_connect(h, now);
    /* Between a reconnect and the end of the dump the core's store is
     * partial: judging vifs then would detach clients for nothing. */
    if (h->qsynced && (h->dirty || (h->nnames && now >= h->reconcile_at)))
        reconcile(h, now);
    if (now >= h->next_poll ||
        (h->worked && now >= h->last_poll + POLL_MIN_NS)) {
        h->worked = false;
        h->last_poll = now;
        h->next_poll = qw_poll(h->fw, now, &h->out);
        send_out(h);
        h->worked = false; /* what poll sent needs no second poll */
        if (h->pcap_dir)
            flush_pcaps(h);
    }
    if (h->qdb_fd >= 0)
        qdb_flush(h, now);
}

static void loop(struct hosted *h)
{
    struct epoll_event ev[64];

    for (;;) {
        uint64_t now;
        int n, i;

        arm_timer(h, now_ns());
        n = epoll_wait(h->ep, ev, 64, -1);
        if (n < 0 && errno != EINTR) {
            hlog(h, QW_LOG_ERR, "hosted: epoll_wait: %s", strerror(errno));
            return;
        }
        now = now_ns();
        for (i = 0; i < n; i++) {
            uint32_t tag = ev[i].data.u32;

            if (tag == TAG_TIMER) {
                h->timer_fired = true;
            } else if (tag == TAG_SIGNAL) {
                if (!on_signal(h))
                    return;
            } else if (tag == TAG_QDB) {
                if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    qdb_read(h, now);
                else
                    qdb_flush(h, now);
            } else if (tag < MAX_LINKS && h->links[tag].used) {
                if (ev[i].events & EPOLLERR)
                    link_error(h, tag, now);
                link_rx(h, tag, now);
            }
        }
        run_timers(h, now);
    }
}

/* --- setup --------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: qwall-hosted --uplink IFNAME --qdb SOCKPATH [options]\n"
               "  --ipv4 A.B.C.D       our uplink address (else /qubes-ip)\n"
               "  --ipv4-gw A.B.C.D    the netvm (else /qubes-gateway)\n"
               "  --ipv4-dns A.B.C.D   primary DNS (else /qubes-primary-dns)\n"
               "  --ipv4-dns2 A.B.C.D  secondary DNS\n"
               "  --nat-table-size N   tracked connections (default 5000)\n"
               "  --max-clients N      client links (default 64)\n"
               "  --log-level L        error|warn|info|debug (default info)\n"
               "  --drop-silently      no ICMP rejects for rule drops\n"
               "  --pcap DIR           per-link pcap + drops.pcapng\n"
               "  --stats FILE         counters written here on SIGUSR1\n");
}

static bool parse_level(const char *s, enum qw_log_level *l)
{
    if (!strcmp(s, "error") || !strcmp(s, "err"))
        *l = QW_LOG_ERR;
    else if (!strcmp(s, "warn") || !strcmp(s, "warning"))
        *l = QW_LOG_WARN;
    else if (!strcmp(s, "info"))
        *l = QW_LOG_INFO;
    else if (!strcmp(s, "debug"))
        *l = QW_LOG_DEBUG;
    else
        return false;
    return true;
}

static bool parse_ip(const char *s, uint32_t *ip)
{
    struct in_addr a;

    if (inet_pton(AF_INET, s, &a) != 1)
        return false;
    *ip = ntohl(a.s_addr);
    return true;
}

static bool parse_u32(const char *s, uint32_t *v)
{
    char *end;
    unsigned long x;

    errno = 0;
    x = strtoul(s, &end, 10);
    if (errno || *end || end == s || x > 0xffffffffu)
        return false;
    *v = (uint32_t)x;
    return true;
}

static int parse_args(struct hosted *h, int argc, char **argv,
                      const char **uplink)
{
    static const struct option opts[] = {
        {"uplink", required_argument, NULL, 'u'},
        {"qdb", required_argument, NULL, 'q'},
        {"ipv4", required_argument, NULL, '1'},
        {"ipv4-gw", required_argument, NULL, '2'},
        {"ipv4-dns", required_argument, NULL, '3'},
        {"ipv4-dns2", required_argument, NULL, '4'},
        {"nat-table-size", required_argument, NULL, 'n'},
        {"max-clients", required_argument, NULL, 'm'},
        {"log-level", required_argument, NULL, 'l'},
        {"drop-silently", no_argument, NULL, 'd'},
        {"pcap", required_argument, NULL, 'p'},
        {"stats", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    bool ok = true;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            *uplink = optarg;
            break;
        case 'q':
            h->qdb_path = optarg;
            break;
        case '1':
            ok = parse_ip(optarg, &h->cfg.ipv4);
            break;
        case '2':
            ok = parse_ip(optarg, &h->cfg.ipv4_gw);
            break;
        case '3':
            ok = parse_ip(optarg, &h->cfg.ipv4_dns);
            break;
        case '4':
            ok = parse_ip(optarg, &h->cfg.ipv4_dns2);
            break;
        case 'n':
            ok = parse_u32(optarg, &h->cfg.nat_table_size);
            break;
        case 'm':
            ok = parse_u32(optarg, &h->cfg.max_clients) &&
                 h->cfg.max_clients < MAX_LINKS;
            break;
        case 'l':
            ok = parse_level(optarg, &h->level);
            break;
        case 'd':
            h->cfg.drop_silently = true;
            break;
        case 'p':
            h->pcap_dir = optarg;
            break;
        case 's':
            h->stats_path = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "qwall-hosted: bad option value: %s\n", optarg);
            usage(stderr);
            return -1;
        }
    }
    /* Say what is wrong before the usage: the usage alone leaves the
     * reader guessing which of its lines was violated. */
    if (!*uplink || !h->qdb_path || optind != argc) {
        if (!*uplink)
            fprintf(stderr, "qwall-hosted: --uplink IFNAME is required\n");
        if (!h->qdb_path)
            fprintf(stderr, "qwall-hosted: --qdb SOCKPATH is required\n");
        if (optind != argc)
            fprintf(stderr, "qwall-hosted: unexpected argument: %s\n",
                    argv[optind]);
        usage(stderr);
        return -1;
    }
    h->cfg.log_level = h->level;
    return 0;
}

static int setup_fds(struct hosted *h)
{
    sigset_t set;
    struct epoll_event ev = {.events = EPOLLIN};

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    h->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    h->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    h->ep = epoll_create1(EPOLL_CLOEXEC);
    if (h->sfd < 0 || h->tfd < 0 || h->ep < 0)
        return -1;
    ev.data.u32 = TAG_SIGNAL;
    if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->sfd, &ev) < 0)
        return -1;
    ev.data.u32 = TAG_TIMER;
    return epoll_ctl(h->ep, EPOLL_CTL_ADD, h->tfd, &ev);
}

static int setup_core(struct hosted *h)
{
    struct qw_platform plat = {
        .ctx = h,
        .log = plat_log,
        .random = plat_random,
        .dropped = plat_dropped,
        .qdb_changed = plat_qdb_changed,
    };
    size_t size = qw_mem_size(&h->cfg);
    struct qw_mem_info mi;
    void *mem;

    size = (size + 4095) & ~(size_t)4095;
    /* Fresh anonymous pages are zero and cost no memory until the core
     * touches them, so RSS shows what the tables really use. */
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
               -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    h->fw = qw_create(mem, size, &h->cfg, &plat);
    if (!h->fw) {
        munmap(mem, size);
        return -1;
    }
    qw_mem_info(&h->cfg, &mi);
    hlog(h, QW_LOG_INFO,
         "hosted: core ready (%zu KiB: conntrack %zu, rules %zu, fragments "
         "%zu, qubesdb %zu, dns %zu, tx %zu)",
         size / 1024, mi.ct / 1024, mi.rules / 1024, mi.frag / 1024,
         mi.qdb / 1024, mi.dns / 1024, mi.tx / 1024);
    return 0;
}

static int setup_pcap(struct hosted *h)
{
    char path[512];

    if (!h->pcap_dir)
        return 0;
    if (mkdir(h->pcap_dir, 0755) < 0 && errno != EEXIST)
        return -1;
    snprintf(path, sizeof(path), "%s/drops.pcapng", h->pcap_dir);
    h->drops = pcap_ng_open(path);
    return h->drops ? 0 : -1;
}

int main(int argc, char **argv)
{
    static struct hosted hs;
    struct hosted *h = &hs;
    const char *uplink = NULL;
    struct hlink *up;
    uint64_t now;
    int err;
    unsigned i;

    h->level = QW_LOG_INFO;
    h->qdb_fd = -1;
    h->next_poll = 0;
    h->out.frames = h->outv;
    h->out.cap = OUT_CAP;
    for (i = 0; i < MAX_LINKS; i++)
        h->links[i].ring.fd = -1;
    if (parse_args(h, argc, argv, &uplink) < 0)
        return 2;
    setvbuf(stderr, NULL, _IOLBF, 0);
    if (setup_fds(h) < 0 || setup_pcap(h) < 0) {
        hlog(h, QW_LOG_ERR, "hosted: setup failed (%s)", strerror(errno));
        return 1;
    }
    if (setup_core(h) < 0) {
        hlog(h, QW_LOG_ERR, "hosted: the core refused the configuration");
        return 1;
    }
    up = &h->links[QW_LINK_UPLINK];
    err = ring_open(&up->ring, uplink, 0, 0);
    if (err < 0) {
        hlog(h, QW_LOG_ERR, "hosted: uplink %s: %s", uplink, strerror(-err));
        return 1;
    }
    up->used = true;
    snprintf(up->name, sizeof(up->name), "uplink");
    link_pcap_open(h, up);
    if (link_watch(h, QW_LINK_UPLINK) < 0)
        return 1;
    now = now_ns();
    hlog(h, QW_LOG_INFO, "hosted: uplink %s up", uplink);
    qw_uplink_up(h->fw, up->ring.mac, now, &h->out);
    send_out(h);
    qdb_connect(h, now);
    loop(h);
    if (h->stats_path)
        write_stats(h);
    flush_pcaps(h);
    return 0;
}
