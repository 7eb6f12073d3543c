/*
 * qwall.h: the portable firewall core, as a platform sees it.
 *
 * The core is freestanding C11: no OS headers, no allocation. A platform
 * (the Xen runtime in xen/, the Linux process in hosted/) gives it one
 * block of memory at start, then hands it received frames in batches per
 * link, the QubesDB byte stream, and the time; the core returns the frames
 * to send. Everything the core needs from outside (log sink, randomness)
 * comes through struct qw_platform.
 *
 * Threading: none. Every function here must be called from one thread (the
 * platform's main loop). Times are monotonic nanoseconds (any origin).
 *
 * Frame buffers: the core may rewrite a received frame in place (NAT,
 * TTL, checksums) and hand the same buffer back as an output frame. Other
 * output frames live in core-owned buffers. Every output frame is valid
 * only until the next call into the core; the platform must send (copy)
 * them before it calls again.
 */
#ifndef QW_QWALL_H
#define QW_QWALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drop.h"

/* Errors are negative errno values with Linux numbering (as Xen uses). */
#define QW_EINVAL 22
#define QW_ENOSPC 28
#define QW_ENOENT 2
#define QW_EPROTO 71
#define QW_EEXIST 17

enum qw_log_level {
    QW_LOG_ERR = 0,
    QW_LOG_WARN = 1,
    QW_LOG_INFO = 2,
    QW_LOG_DEBUG = 3,
};

/* Link 0 is the uplink (towards sys-net); clients get links 1..N. */
#define QW_LINK_UPLINK 0u

/* Largest Ethernet frame the core emits (no FCS, no VLAN): 14 + 1500. */
#define QW_FRAME_MAX 1514u

/* The firewall's MAC on every client link, and the uplink fallback. */
#define QW_MAC_FE                                                              \
    {                                                                          \
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff                                     \
    }

/* qw_frame.flags */
#define QW_FRAME_CSUM_BLANK                                                    \
    0x1u /* L4 checksum holds only the pseudo-header                           \
            sum (Xen NETTXF_csum_blank, Linux                                  \
            CHECKSUM_PARTIAL): the core completes it */

struct qw_frame {
    uint8_t *data;  /* Ethernet frame, starting at the destination MAC */
    uint32_t len;   /* bytes in data */
    uint16_t link;  /* output: the link to send on */
    uint16_t flags; /* QW_FRAME_* */
};

/* Output frames, filled by the core into an array the platform owns. */
struct qw_out {
    struct qw_frame *frames;
    unsigned cap; /* at least 64 recommended; more when batching */
    unsigned n;   /* frames filled; the platform resets it to 0 */
};

struct qw_platform {
    void *ctx;
    /* One formatted line without newline, "module: what (details)". */
    void (*log)(void *ctx, enum qw_log_level level, const char *line);
    /* Uniform 32-bit random numbers (ports, DNS ids, eviction). */
    uint32_t (*random)(void *ctx);
    /* Optional: every dropped frame with its reason (pcap of drops). Only
     * called when set; runs on the packet path, so keep it cheap. */
    void (*dropped)(void *ctx, unsigned link, const uint8_t *frame,
                    uint32_t len, enum qw_drop reason);
    /* Optional: a QubesDB key was written (value != NULL) or removed
     * (value == NULL). Lets a platform watch its own keys. */
    void (*qdb_changed)(void *ctx, const char *path, const char *value,
                        size_t len);
};

struct qw_config {
    uint32_t nat_table_size;  /* tracked connections; 0 = 5000 */
    uint32_t max_clients;     /* client links; 0 = 64 */
    uint32_t max_rules;       /* rules per client; 0 = 256 */
    uint32_t frag_link_bytes; /* reassembly memory per link; 0 = 256 KiB */
    uint32_t dns_cache_names; /* dsthost names cached; 0 = 256 */
    uint32_t qdb_max_entries; /* QubesDB keys held; 0 = 4096 */
    enum qw_log_level log_level;
    bool drop_silently; /* rules' drops are silent, no ICMP reject */
    /* Overrides of the QubesDB network settings, host byte order, 0 =
     * take the QubesDB value (--ipv4, --ipv4-gw, --ipv4-dns, --ipv4-dns2) */
    uint32_t ipv4, ipv4_gw, ipv4_dns, ipv4_dns2;
};

struct qw;

/* Bytes qw_create() needs for this configuration (all tables included).
 * 0 if the configuration is invalid. */
size_t qw_mem_size(const struct qw_config *cfg);

/* Where the bytes of qw_mem_size() go, and what one more tracked connection
 * or one more client link costs (for sizing the VM). */
struct qw_mem_info {
    size_t total;
    size_t fixed;          /* total minus the two marginal costs below */
    size_t per_connection; /* per unit of nat_table_size */
    size_t per_client;     /* per unit of max_clients (link, counters,
                              rules, reassembly budget) */
    size_t ct, rules, frag, qdb, dns, tx; /* the tables */
};
void qw_mem_info(const struct qw_config *cfg, struct qw_mem_info *mi);

/*
 * Build a firewall in `mem` (size bytes, 16-byte aligned). Returns NULL if
 * size < qw_mem_size(cfg) or the configuration is invalid. Keeps pointers
 * to nothing in cfg; keeps plat's callbacks.
 */
struct qw *qw_create(void *mem, size_t size, const struct qw_config *cfg,
                     const struct qw_platform *plat);

/*
 * Process n frames received on `link`. Frames to send are appended to out
 * (in place where possible). Frames that do not fit in out are dropped with
 * QW_DROP_TX_FULL.
 */
void qw_rx(struct qw *fw, unsigned link, struct qw_frame *in, unsigned n,
           uint64_t now, struct qw_out *out);

/*
 * Run timers (ARP and DNS retries, expiries). Returns the next time it
 * wants to run (absolute ns), UINT64_MAX when idle. Calling it early is
 * harmless.
 */
uint64_t qw_poll(struct qw *fw, uint64_t now, struct qw_out *out);

/* Uplink: `mac` is our MAC on it. Sends a gratuitous ARP and resolves the
 * gateway once the addressing is known. */
void qw_uplink_up(struct qw *fw, const uint8_t mac[6], uint64_t now,
                  struct qw_out *out);
void qw_uplink_down(struct qw *fw, uint64_t now);

/*
 * Clients. attach: ip is the client's IPv4 (host order), mac its MAC (from
 * the vif's `mac` key), name a short label for logs. Rules come from
 * QubesDB /qubes-firewall/<ip>; until a commit is seen everything the
 * client sends is dropped. Several links may share an address (HVM qubes).
 * Returns the link (>= 1) or -QW_ENOSPC / -QW_EINVAL.
 * detach: forgets the link's connections; the link number may be reused.
 */
struct qw_client {
    uint32_t ip;
    uint8_t mac[6];
    char name[32];
};
int qw_client_attach(struct qw *fw, const struct qw_client *c, uint64_t now);
void qw_client_detach(struct qw *fw, unsigned link, uint64_t now);

/*
 * QubesDB (the VM side of the protocol, over any byte stream).
 * connected: the stream (re)opened; queues the initial MULTIREAD.
 * rx: bytes from dom0; returns 0, or -QW_EPROTO when dom0 sent something
 *     invalid (the platform should close and reconnect the stream).
 * tx: takes up to cap bytes the core wants to send to dom0; returns the
 *     count (0 when nothing is pending).
 * get: the current value of a key (NUL-terminated), NULL if absent.
 * synced: true once dom0's initial dump (MULTIREAD) of the current stream
 *     has ended; the store is empty after qw_qdb_connected() until then.
 */
void qw_qdb_connected(struct qw *fw, uint64_t now);
int qw_qdb_rx(struct qw *fw, const uint8_t *data, size_t len, uint64_t now,
              struct qw_out *out);
size_t qw_qdb_tx(struct qw *fw, uint8_t *buf, size_t cap);
const char *qw_qdb_get(const struct qw *fw, const char *path);
bool qw_qdb_synced(const struct qw *fw);

/* True once the uplink address and gateway are known. */
bool qw_configured(const struct qw *fw);

/* Counters. */
struct qw_link_stats {
    uint64_t rx_frames, rx_bytes;
    uint64_t tx_frames, tx_bytes;
    uint64_t drops;
};
uint64_t qw_counter(const struct qw *fw, unsigned link, enum qw_drop reason);
void qw_link_stats(const struct qw *fw, unsigned link,
                   struct qw_link_stats *st);
/* One summary line of non-zero counters per link; returns its length. */
size_t qw_stats_format(const struct qw *fw, char *buf, size_t cap);

#endif /* QW_QWALL_H */
