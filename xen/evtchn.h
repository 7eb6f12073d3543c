/*
 * evtchn.h: event channels (2-level ABI), demultiplexed in the main loop.
 *
 * Xen raises the upcall vector when a port becomes pending; the interrupt
 * only acknowledges (it may arrive only inside cpu_idle()). The main loop
 * calls evtchn_poll(), which moves pending ports into a ready set (masking
 * each one and clearing its Xen pending bit) and then runs each ready
 * port's handler before unmasking it again. Handlers therefore run in
 * plain thread context and may do anything, including hypercalls.
 */
#ifndef QW_XEN_EVTCHN_H
#define QW_XEN_EVTCHN_H

#include <stdbool.h>
#include <stdint.h>

#include <xen/xen.h>

/* Ports the handler table covers; higher ports are refused. */
#define EVTCHN_PORTS 1024u

typedef void (*evtchn_handler)(uint32_t port, void *arg);

/* Map shared_info at our page and set up upcall delivery. 0 or -errno. */
int evtchn_init(void);

struct shared_info *evtchn_shared_info(void);

/* Attach a handler to a port already bound (xenstore, console) and
 * unmask it. 0 or -errno. */
int evtchn_attach(uint32_t port, evtchn_handler fn, void *arg);

/* Bind VIRQ (e.g. VIRQ_TIMER) on vCPU 0 and attach fn. Port or -errno. */
int evtchn_bind_virq(uint32_t virq, evtchn_handler fn, void *arg);

/* New port for a remote domain to bind (frontends, vchan servers). */
int evtchn_alloc_unbound(domid_t remote, evtchn_handler fn, void *arg);

/* Bind to a remote domain's published port (backends, vchan clients). */
int evtchn_bind_interdomain(domid_t remote, uint32_t remote_port,
                            evtchn_handler fn, void *arg);

void evtchn_send(uint32_t port);
void evtchn_close(uint32_t port);

/* Run the handlers of every pending port; returns how many ran. */
unsigned evtchn_poll(void);

/* Collect pending ports into the ready set without running handlers
 * (for code that waits for one port, e.g. a xenstore reply). */
void evtchn_collect(void);

/* If `port` is in the ready set, remove it and unmask it; true if it was.
 * The waiter then handles the port itself. */
bool evtchn_take(uint32_t port);

/* True if an event is pending that evtchn_poll() has not seen yet. Reads
 * state that the interrupt path does not clear. */
bool evtchn_pending(void);

/* Interrupt context: clear vcpu_info.evtchn_upcall_pending. */
void evtchn_upcall_ack(void);

/* Counters for the boot report. */
uint64_t evtchn_count_events(void);
uint64_t evtchn_count_spurious(void);

#endif /* QW_XEN_EVTCHN_H */
