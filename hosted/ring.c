/*
 * ring.c: AF_PACKET + PACKET_MMAP (TPACKET_V2) links. See ring.h for why.
 *
 * Ring layout: the rx ring and then the tx ring in one mapping, each made
 * of blocks holding whole 2 KiB slots, so slot i is at i * frame_size.
 * Ownership of a slot is its tp_status word: the kernel hands rx slots
 * over with TP_STATUS_USER and we give them back with TP_STATUS_KERNEL; tx
 * slots are ours while TP_STATUS_AVAILABLE and the kernel's once marked
 * TP_STATUS_SEND_REQUEST (Linux Documentation/networking/packet_mmap.rst).
 */
#include "ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING_FRAME_SIZE 2048u
#define RING_BLOCK_SIZE (RING_FRAME_SIZE * 32u)
#define RING_RX_DEFAULT 1024u
#define RING_TX_DEFAULT 512u
/* Where frame data starts in a tx slot (no PACKET_TX_HAS_OFF). */
#define RING_TX_DATA TPACKET_ALIGN(sizeof(struct tpacket2_hdr))

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

static struct tpacket2_hdr *slot(const struct ring *r, unsigned i, bool tx)
{
    size_t base = tx ? (size_t)r->rx_frames * r->frame_size : 0;

    return (struct tpacket2_hdr *)(r->map + base + (size_t)i * r->frame_size);
}

static unsigned round_slots(unsigned n)
{
    unsigned per_block = RING_BLOCK_SIZE / RING_FRAME_SIZE;

    if (n < per_block)
        n = per_block;
    return (n + per_block - 1) / per_block * per_block;
}

static int setup_ring(int fd, int opt, unsigned frames)
{
    struct tpacket_req req = {
        .tp_block_size = RING_BLOCK_SIZE,
        .tp_block_nr = frames / (RING_BLOCK_SIZE / RING_FRAME_SIZE),
        .tp_frame_size = RING_FRAME_SIZE,
        .tp_frame_nr = frames,
    };

    return setsockopt(fd, SOL_PACKET, opt, &req, sizeof(req));
}

static int socket_setup(struct ring *r)
{
    int v = TPACKET_V2, one = 1;
    struct packet_mreq mr = {.mr_ifindex = r->ifindex,
                             .mr_type = PACKET_MR_PROMISC};
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = r->ifindex};

    if (setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) < 0 ||
        setup_ring(r->fd, PACKET_RX_RING, r->rx_frames) < 0 ||
        setup_ring(r->fd, PACKET_TX_RING, r->tx_frames) < 0)
        return -errno;
    /* Our own transmissions must not come back into the rx ring. */
    if (setsockopt(r->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one,
                   sizeof(one)) < 0)
        return -errno;
    /* The firewall is the only sender on these links: skip the qdisc. */
    (void)setsockopt(r->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
    if (setsockopt(r->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) <
        0)
        return -errno;
    r->map_len = (size_t)(r->rx_frames + r->tx_frames) * r->frame_size;
    r->map =
        mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (r->map == MAP_FAILED) {
        r->map = NULL;
        return -errno;
    }
    /* Bind last: frames are only queued once the rings exist. */
    if (bind(r->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
        return -errno;
    return 0;
}

static int read_mac(struct ring *r)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, r->ifname, sizeof(r->ifname));
    if (ioctl(r->fd, SIOCGIFHWADDR, &ifr) < 0)
        return -errno;
    memcpy(r->mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int ring_open(struct ring *r, const char *ifname, unsigned rx_slots,
              unsigned tx_slots)
{
    int err;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    if (strlen(ifname) >= sizeof(r->ifname))
        return -EINVAL;
    strcpy(r->ifname, ifname);
    r->ifindex = (int)if_nametoindex(ifname);
    if (r->ifindex == 0)
        return -errno;
    r->frame_size = RING_FRAME_SIZE;
    r->rx_frames = round_slots(rx_slots ? rx_slots : RING_RX_DEFAULT);
    r->tx_frames = round_slots(tx_slots ? tx_slots : RING_TX_DEFAULT);
    /* Protocol 0: receive nothing until bound, after the rings exist. */
    r->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0)
        return -errno;
    err = read_mac(r);
    if (err == 0)
        err = socket_setup(r);
    if (err < 0)
        ring_close(r);
    return err;
}

void ring_close(struct ring *r)
{
    if (r->map)
        munmap(r->map, r->map_len);
    r->map = NULL;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

unsigned ring_rx(struct ring *r, struct ring_frame *f, unsigned max)
{
    unsigned n = 0,
             held = (r->rx_head + r->rx_frames - r->rx_done) % r->rx_frames;

    /* Slots held since the last release still read TP_STATUS_USER: never
     * walk onto them again. */
    if (max > r->rx_frames - 1 - held)
        max = r->rx_frames - 1 - held;
    for (; max > 0; max--) {
        struct tpacket2_hdr *h = slot(r, r->rx_head, false);
        uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);

        if (!(st & TP_STATUS_USER))
            break;
        r->rx_head = (r->rx_head + 1) % r->rx_frames;
        if (h->tp_snaplen < h->tp_len || (st & TP_STATUS_COPY)) {
            r->st.truncated++;
            continue; /* released with the batch */
        }
        f[n].data = (uint8_t *)h + h->tp_mac;
        f[n].len = h->tp_snaplen;
        f[n].csum_partial = (st & TP_STATUS_CSUMNOTREADY) != 0;
        n++;
    }
    r->st.rx_frames += n;
    return n;
}

void ring_rx_release(struct ring *r)
{
    while (r->rx_done != r->rx_head) {
        struct tpacket2_hdr *h = slot(r, r->rx_done, false);

        __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        r->rx_done = (r->rx_done + 1) % r->rx_frames;
    }
}

static bool tx_slot_free(struct tpacket2_hdr *h)
{
    uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);

    if (st == TP_STATUS_WRONG_FORMAT) {
        /* The kernel refused the frame; reclaim the slot. */
        __atomic_store_n(&h->tp_status, TP_STATUS_AVAILABLE, __ATOMIC_RELEASE);
        return true;
    }
    return st == TP_STATUS_AVAILABLE;
}

bool ring_tx(struct ring *r, const uint8_t *frame, uint32_t len)
{
    struct tpacket2_hdr *h = slot(r, r->tx_head, true);

    if (len > r->frame_size - RING_TX_DATA)
        return false;
    if (!tx_slot_free(h)) {
        ring_kick(r);
        if (!tx_slot_free(h)) {
            r->st.tx_ring_full++;
            return false;
        }
    }
    memcpy((uint8_t *)h + RING_TX_DATA, frame, len);
    h->tp_len = len;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    r->tx_head = (r->tx_head + 1) % r->tx_frames;
    r->st.tx_frames++;
    if (++r->tx_pending >= 256)
        ring_kick(r);
    return true;
}

void ring_kick(struct ring *r)
{
    if (r->tx_pending == 0)
        return;
    r->tx_pending = 0;
    /* Non-blocking: veth transmits synchronously inside this call. */
    (void)send(r->fd, NULL, 0, MSG_DONTWAIT);
}

void ring_update_stats(struct ring *r)
{
    struct tpacket_stats s;
    socklen_t sl = sizeof(s);

    if (getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &s, &sl) == 0)
        r->st.kernel_drops += s.tp_drops;
}
