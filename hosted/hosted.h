/*
 * hosted.h: the Linux platform for the qwall core (qwall-hosted).
 *
 * One process in the firewall's network namespace, one thread, one epoll
 * loop. Links are interfaces of that namespace opened through ring.h: the
 * uplink named by --uplink, and one per client learned from QubesDB keys
 * /qwall-hosted/vif/<name>/{ip,mac,ifname} (docs/hosted.md). QubesDB is
 * the core's VM-side protocol over a Unix stream socket (--qdb), served by
 * qdb-dom0 in tests and the demo.
 */
#ifndef QW_HOSTED_H
#define QW_HOSTED_H

/* QubesDB directory the hosted build watches for its clients. */
#define HOSTED_VIF_DIR "/qwall-hosted/vif/"

#endif /* QW_HOSTED_H */
