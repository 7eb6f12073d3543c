/*
 * nullfwd.c: the benchmark's null forwarder. Copies every frame between
 * two interfaces unchanged, with exactly qwall-hosted's I/O (hosted/ring.c:
 * PACKET_MMAP rx/tx rings, batches of 64, one epoll loop), so that
 * "qwall / null" isolates the cost of the firewall core.
 *
 *   nullfwd IF_A IF_B      (runs until SIGINT/SIGTERM)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ring.h"

#define BATCH 64u

static void pump(struct ring *from, struct ring *to)
{
    struct ring_frame f[BATCH];
    unsigned b, i, n;

    for (b = 0; b < 4; b++) {
        n = ring_rx(from, f, BATCH);
        if (n == 0)
            break;
        for (i = 0; i < n; i++)
            ring_tx(to, f[i].data, f[i].len);
        ring_kick(to);
        ring_rx_release(from);
    }
}

int main(int argc, char **argv)
{
    struct ring r[2];
    struct epoll_event ev = {.events = EPOLLIN}, evs[4];
    sigset_t set;
    int ep, sfd, i, err;

    if (argc != 3) {
        fprintf(stderr, "usage: nullfwd IF_A IF_B\n");
        return 2;
    }
    for (i = 0; i < 2; i++) {
        err = ring_open(&r[i], argv[1 + i], 0, 0);
        if (err < 0) {
            fprintf(stderr, "nullfwd: %s: %s\n", argv[1 + i], strerror(-err));
            return 1;
        }
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sfd = signalfd(-1, &set, 0);
    ep = epoll_create1(0);
    for (i = 0; i < 2; i++) {
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, r[i].fd, &ev);
    }
    ev.data.u32 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 4, -1);

        if (n < 0 && errno != EINTR)
            return 1;
        for (i = 0; i < n; i++) {
            uint32_t t = evs[i].data.u32;

            if (t == 2)
                goto out;
            pump(&r[t], &r[1 - t]);
        }
    }
out:
    for (i = 0; i < 2; i++) {
        ring_update_stats(&r[i]);
        fprintf(stderr,
                "nullfwd: %s rx %llu tx %llu truncated %llu tx_full %llu "
                "kernel_drops %llu\n",
                r[i].ifname, (unsigned long long)r[i].st.rx_frames,
                (unsigned long long)r[i].st.tx_frames,
                (unsigned long long)r[i].st.truncated,
                (unsigned long long)r[i].st.tx_ring_full,
                (unsigned long long)r[i].st.kernel_drops);
    }
    return 0;
}
