/*
 * tapfwd.c: the benchmark's TAP null forwarder, to compare I/O methods.
 * Copies frames between two TAP devices, one read() and one write() per
 * frame, the way a unikernel's netif sees them. Each TAP device lives in
 * another namespace (the client's or the uplink's tap0); the forwarder
 * enters that namespace only to open it (a TAP fd keeps working from any
 * namespace).
 *
 *   tapfwd NETNS_A:IF_A NETNS_B:IF_B    (runs until SIGINT/SIGTERM)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int open_tap(const char *spec)
{
    char ns[128], path[160];
    const char *colon = strchr(spec, ':');
    struct ifreq ifr;
    int self, target, fd;

    if (!colon || (size_t)(colon - spec) >= sizeof(ns))
        return -1;
    memcpy(ns, spec, (size_t)(colon - spec));
    ns[colon - spec] = '\0';
    snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
    self = open("/proc/self/ns/net", O_RDONLY);
    target = open(path, O_RDONLY);
    if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0)
        return -1;
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", colon + 1);
    if (fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) < 0) {
        close(fd);
        fd = -1;
    }
    if (setns(self, CLONE_NEWNET) < 0)
        fd = -1;
    close(self);
    close(target);
    return fd;
}

int main(int argc, char **argv)
{
    static unsigned char buf[65536];
    unsigned long long rx[2] = {0, 0}, tx[2] = {0, 0};
    struct epoll_event ev = {.events = EPOLLIN}, evs[4];
    int fd[2], ep, sfd, i;
    sigset_t set;

    if (argc != 3) {
        fprintf(stderr, "usage: tapfwd NETNS:IF NETNS:IF\n");
        return 2;
    }
    for (i = 0; i < 2; i++) {
        fd[i] = open_tap(argv[1 + i]);
        if (fd[i] < 0) {
            fprintf(stderr, "tapfwd: %s: %s\n", argv[1 + i], strerror(errno));
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
        epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev);
    }
    ev.data.u32 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 4, -1);

        for (i = 0; i < n; i++) {
            unsigned t = evs[i].data.u32, k;

            if (t == 2)
                goto out;
            for (k = 0; k < 256; k++) { /* bounded: let the other side run */
                ssize_t len = read(fd[t], buf, sizeof(buf));

                if (len <= 0)
                    break;
                rx[t]++;
                if (write(fd[1 - t], buf, (size_t)len) == len)
                    tx[1 - t]++;
            }
        }
    }
out:
    fprintf(stderr, "tapfwd: rx %llu/%llu tx %llu/%llu\n", rx[0], rx[1], tx[0],
            tx[1]);
    return 0;
}
