/*
 * pcap.h: capture files for --pcap DIR.
 *
 * Per link a classic pcap file (<ifname>.pcap, Ethernet, microsecond
 * timestamps) with every frame received and sent on it, in the order the
 * firewall saw them (received frames are captured before the core may
 * rewrite them). Dropped frames go to one pcapng file (drops.pcapng) where
 * each packet carries a comment "link=<ifname> reason=<drop reason>", which
 * `tshark -r drops.pcapng -T fields -e frame.comment` prints.
 */
#ifndef QW_HOSTED_PCAP_H
#define QW_HOSTED_PCAP_H

#include <stdint.h>
#include <stdio.h>

/* Create (truncate) a classic pcap file; NULL on error (errno set). */
FILE *pcap_open(const char *path);
/* Append one Ethernet frame with the wall-clock time. */
void pcap_write(FILE *f, const uint8_t *frame, uint32_t len);

/* Create (truncate) a pcapng file with one Ethernet interface. */
FILE *pcap_ng_open(const char *path);
/* Append one frame with a comment (UTF-8, no NUL needed). */
void pcap_ng_write(FILE *f, const uint8_t *frame, uint32_t len,
                   const char *comment);

#endif /* QW_HOSTED_PCAP_H */
