/*
 * console.h: the PV console (xencons ring) with a bounded, non-blocking
 * writer, plus port 0xE9 for early boot and panics.
 *
 * Writers never wait for dom0: bytes go into a private buffer and move to
 * the shared ring as space appears (console_flush(), called after each
 * write and when xenconsoled signals the console port). When the private
 * buffer is full the bytes are dropped and counted (console_lost()).
 */
#ifndef QW_XEN_CONSOLE_H
#define QW_XEN_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

/* Until console_attach() succeeds, output goes to port 0xE9 only. */
void console_attach(void *ring_page, uint32_t port);

/* Queue n bytes (LF becomes CRLF); never blocks. */
void console_write(const char *s, size_t n);

/* Move queued bytes into the shared ring; notify dom0 if any moved. */
void console_flush(void);

/* Event handler for the console port (signature of evtchn handlers). */
void console_event(uint32_t port, void *arg);

/* For panics and power-off: push everything out, yielding the vCPU while
 * the ring is full, for at most `max_yields` yields. */
void console_drain(unsigned max_yields);

/* Write straight to port 0xE9 (Xen prints it as "(dN) ..." when its
 * guest_loglvl allows; QEMU shows it with -debugcon). */
void console_e9(const char *s, size_t n);

/* Mirror every console byte to port 0xE9 too (default: until attach). */
void console_set_e9_mirror(int on);

uint64_t console_lost(void);
int console_attached(void);

#endif /* QW_XEN_CONSOLE_H */
