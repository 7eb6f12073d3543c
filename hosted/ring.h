/*
 * ring.h: one Linux network interface as a frame link, through AF_PACKET
 * with PACKET_MMAP rings (TPACKET_V2 rx ring and tx ring).
 *
 * Why this method: in the shared baseline (bench/RESULTS.md of the
 * references) PACKET_MMAP V2 forwards about 1.3x the small frames of TAP
 * per unit of CPU with per-frame wake-up latency close to TAP's, and it
 * attaches to an existing interface of the firewall's namespace (a veth
 * end) without cooperation from the peer namespace. V3 was rejected for
 * its block-retire latency. bench/results/hosted.md compares this I/O with
 * the kernel path.
 *
 * Limitations: one queue, no GSO/GRO. A frame larger than a ring slot
 * (a GSO super-frame when the peer has TSO/GSO on) arrives truncated and is
 * dropped and counted (ring_stats.truncated); the topologies turn TSO/GSO
 * off on the peers (docs/hosted.md).
 */
#ifndef QW_HOSTED_RING_H
#define QW_HOSTED_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ring_stats {
    uint64_t rx_frames, tx_frames;
    uint64_t truncated;    /* received frames larger than a slot */
    uint64_t tx_ring_full; /* frames not sent: tx ring had no free slot */
    uint64_t kernel_drops; /* PACKET_STATISTICS tp_drops, accumulated */
};

struct ring {
    int fd;
    int ifindex;
    char ifname[16];
    uint8_t mac[6];
    uint8_t *map; /* rx ring followed by tx ring */
    size_t map_len;
    unsigned rx_frames; /* slots */
    unsigned tx_frames;
    unsigned frame_size;
    unsigned rx_head;    /* next rx slot to look at */
    unsigned rx_done;    /* next rx slot to hand back to the kernel */
    unsigned tx_head;    /* next tx slot to fill */
    unsigned tx_pending; /* filled since the last kick */
    struct ring_stats st;
};

/* One received frame, pointing into the rx ring (writable until released). */
struct ring_frame {
    uint8_t *data;
    uint32_t len;
    bool csum_partial; /* TP_STATUS_CSUMNOTREADY: L4 checksum not filled */
};

/*
 * Open `ifname` (in the calling process's namespace): AF_PACKET socket
 * bound to it, promiscuous, own transmissions ignored, rings mapped.
 * rx_slots/tx_slots: ring sizes in frames (0 = defaults). Returns 0 or a
 * negative errno; on error r->fd is -1 and nothing is left open.
 */
int ring_open(struct ring *r, const char *ifname, unsigned rx_slots,
              unsigned tx_slots);
void ring_close(struct ring *r);

/*
 * Up to max frames ready in the rx ring, in order, into f[]. They stay
 * owned by the caller (and may be modified in place) until
 * ring_rx_release(). Truncated frames are skipped, released and counted.
 * Returns the count (0 when the ring is empty).
 */
unsigned ring_rx(struct ring *r, struct ring_frame *f, unsigned max);
/* Hand every frame returned so far back to the kernel. */
void ring_rx_release(struct ring *r);

/*
 * Copy one frame into the tx ring. Returns false (and counts) when the
 * ring is full even after a kick. The frame leaves at ring_kick() or when
 * the ring fills.
 */
bool ring_tx(struct ring *r, const uint8_t *frame, uint32_t len);
/* Ask the kernel to send every queued frame (one syscall, non-blocking). */
void ring_kick(struct ring *r);

/* Refresh r->st.kernel_drops from PACKET_STATISTICS. */
void ring_update_stats(struct ring *r);

#endif /* QW_HOSTED_RING_H */
