/*
 * evtchn.c: see evtchn.h.
 */
#include "evtchn.h"

#include <stddef.h>

#include "cpu.h"
#include "hv.h"

#define EVTCHN_WORD_BITS 64u

/* A whole page: Xen replaces this frame with shared_info, so nothing else
 * may live in it (struct shared_info alone is smaller than a page). */
static union {
    struct shared_info si;
    uint8_t page[4096];
} evtchn_si_page __attribute__((aligned(4096)));
static struct shared_info *evtchn_si;

static struct {
    evtchn_handler fn;
    void *arg;
} evtchn_table[EVTCHN_PORTS];

static uint64_t evtchn_ready[EVTCHN_PORTS / 64];
static uint64_t evtchn_events, evtchn_spurious;

struct shared_info *evtchn_shared_info(void)
{
    return evtchn_si;
}

int evtchn_init(void)
{
    struct xen_add_to_physmap xatp = {
        .domid = DOMID_SELF,
        .space = XENMAPSPACE_shared_info,
        .idx = 0,
        .gpfn = (uintptr_t)&evtchn_si_page >> 12,
    };
    struct xen_hvm_evtchn_upcall_vector up = {.vcpu = 0,
                                              .vector = CPU_UPCALL_VECTOR};
    long rc;

    rc = hv_memory_op(XENMEM_add_to_physmap, &xatp);
    if (rc < 0)
        return (int)rc;
    evtchn_si = &evtchn_si_page.si;
    /* Start with every port masked; ports are unmasked as they get a
     * handler. */
    for (unsigned i = 0; i < sizeof(evtchn_si->evtchn_mask) / 8; i++)
        __atomic_store_n(&evtchn_si->evtchn_mask[i], ~0ull, __ATOMIC_SEQ_CST);
    rc = hv_hvm_op(HVMOP_set_evtchn_upcall_vector, &up);
    if (rc < 0)
        return (int)rc;
    return 0;
}

void evtchn_upcall_ack(void)
{
    if (evtchn_si != NULL)
        evtchn_si->vcpu_info[0].evtchn_upcall_pending = 0;
}

static void evtchn_mask(uint32_t port)
{
    __atomic_or_fetch(&evtchn_si->evtchn_mask[port / 64], 1ull << (port % 64),
                      __ATOMIC_SEQ_CST);
}

static void evtchn_unmask(uint32_t port)
{
    uint64_t bit = 1ull << (port % 64);
    struct evtchn_unmask op = {.port = port};

    __atomic_and_fetch(&evtchn_si->evtchn_mask[port / 64], ~bit,
                       __ATOMIC_SEQ_CST);
    /* An event raised while masked sets only the pending bit, not the
     * selector, and a later raise of a port already pending does nothing:
     * the event would be lost for good. Xen re-delivers it from
     * EVTCHNOP_unmask, but only if it finds the mask bit set (it tests
     * and clears it), so put the mask back first. */
    if (__atomic_load_n(&evtchn_si->evtchn_pending[port / 64],
                        __ATOMIC_SEQ_CST) &
        bit) {
        __atomic_or_fetch(&evtchn_si->evtchn_mask[port / 64], bit,
                          __ATOMIC_SEQ_CST);
        hv_event_channel_op(EVTCHNOP_unmask, &op);
    }
}

int evtchn_attach(uint32_t port, evtchn_handler fn, void *arg)
{
    if (port >= EVTCHN_PORTS || evtchn_si == NULL)
        return -22;
    evtchn_table[port].fn = fn;
    evtchn_table[port].arg = arg;
    evtchn_unmask(port);
    return 0;
}

int evtchn_bind_virq(uint32_t virq, evtchn_handler fn, void *arg)
{
    struct evtchn_bind_virq op = {.virq = virq, .vcpu = 0};
    long rc = hv_event_channel_op(EVTCHNOP_bind_virq, &op);

    if (rc < 0)
        return (int)rc;
    rc = evtchn_attach(op.port, fn, arg);
    return rc < 0 ? (int)rc : (int)op.port;
}

int evtchn_alloc_unbound(domid_t remote, evtchn_handler fn, void *arg)
{
    struct evtchn_alloc_unbound op = {.dom = DOMID_SELF, .remote_dom = remote};
    long rc = hv_event_channel_op(EVTCHNOP_alloc_unbound, &op);

    if (rc < 0)
        return (int)rc;
    rc = evtchn_attach(op.port, fn, arg);
    if (rc < 0) {
        evtchn_close(op.port);
        return (int)rc;
    }
    return (int)op.port;
}

int evtchn_bind_interdomain(domid_t remote, uint32_t remote_port,
                            evtchn_handler fn, void *arg)
{
    struct evtchn_bind_interdomain op = {.remote_dom = remote,
                                         .remote_port = remote_port};
    long rc = hv_event_channel_op(EVTCHNOP_bind_interdomain, &op);

    if (rc < 0)
        return (int)rc;
    rc = evtchn_attach(op.local_port, fn, arg);
    if (rc < 0) {
        evtchn_close(op.local_port);
        return (int)rc;
    }
    return (int)op.local_port;
}

void evtchn_send(uint32_t port)
{
    struct evtchn_send op = {.port = port};

    hv_event_channel_op(EVTCHNOP_send, &op);
}

void evtchn_close(uint32_t port)
{
    struct evtchn_close op = {.port = port};

    if (port < EVTCHN_PORTS) {
        evtchn_mask(port);
        evtchn_table[port].fn = NULL;
        evtchn_ready[port / 64] &= ~(1ull << (port % 64));
    }
    hv_event_channel_op(EVTCHNOP_close, &op);
}

bool evtchn_pending(void)
{
    struct vcpu_info *v;

    if (evtchn_si == NULL)
        return false;
    v = &evtchn_si->vcpu_info[0];
    if (__atomic_load_n(&v->evtchn_pending_sel, __ATOMIC_SEQ_CST) != 0)
        return true;
    for (unsigned i = 0; i < EVTCHN_PORTS / 64; i++) {
        if (evtchn_ready[i] != 0)
            return true;
    }
    return false;
}

/* Move Xen's pending ports into evtchn_ready, masking each. */
void evtchn_collect(void)
{
    struct vcpu_info *v;
    uint64_t sel;

    if (evtchn_si == NULL)
        return;
    v = &evtchn_si->vcpu_info[0];
    v->evtchn_upcall_pending = 0;
    hv_mb();
    sel = __atomic_exchange_n(&v->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
    while (sel != 0) {
        unsigned w = (unsigned)__builtin_ctzll(sel);
        uint64_t pend;

        sel &= sel - 1;
        pend =
            __atomic_load_n(&evtchn_si->evtchn_pending[w], __ATOMIC_SEQ_CST) &
            ~__atomic_load_n(&evtchn_si->evtchn_mask[w], __ATOMIC_SEQ_CST);
        while (pend != 0) {
            unsigned b = (unsigned)__builtin_ctzll(pend);
            uint32_t port = w * 64 + b;

            pend &= pend - 1;
            evtchn_mask(port);
            __atomic_and_fetch(&evtchn_si->evtchn_pending[w], ~(1ull << b),
                               __ATOMIC_SEQ_CST);
            if (port < EVTCHN_PORTS)
                evtchn_ready[w] |= 1ull << b;
            else
                evtchn_spurious++; /* stays masked: nobody owns it */
        }
    }
}

bool evtchn_take(uint32_t port)
{
    uint64_t bit = 1ull << (port % 64);

    if (port >= EVTCHN_PORTS || !(evtchn_ready[port / 64] & bit))
        return false;
    evtchn_ready[port / 64] &= ~bit;
    if (evtchn_table[port].fn != NULL)
        evtchn_unmask(port);
    return true;
}

unsigned evtchn_poll(void)
{
    unsigned ran = 0;

    if (evtchn_si == NULL)
        return 0;
    evtchn_collect();
    for (unsigned w = 0; w < EVTCHN_PORTS / 64; w++) {
        while (evtchn_ready[w] != 0) {
            unsigned b = (unsigned)__builtin_ctzll(evtchn_ready[w]);
            uint32_t port = w * 64 + b;

            evtchn_ready[w] &= ~(1ull << b);
            evtchn_events++;
            if (evtchn_table[port].fn == NULL) {
                evtchn_spurious++;
                continue; /* stays masked */
            }
            evtchn_table[port].fn(port, evtchn_table[port].arg);
            ran++;
            /* The handler may have closed the port. */
            if (evtchn_table[port].fn != NULL)
                evtchn_unmask(port);
        }
    }
    return ran;
}

uint64_t evtchn_count_events(void)
{
    return evtchn_events;
}

uint64_t evtchn_count_spurious(void)
{
    return evtchn_spurious;
}
