/*
 * console.c: PV console writer. See console.h.
 */
#include "console.h"

#include <xen/io/console.h>

#include "hv.h"
#include "ring.h"

#define CONSOLE_BUF 16384u /* private buffer, power of two */
#define CONSOLE_OUT sizeof(((struct xencons_interface *)0)->out)

static char console_buf[CONSOLE_BUF];
static uint32_t console_prod, console_cons; /* indices into console_buf */
static uint64_t console_dropped;
static volatile struct xencons_interface *console_ring;
static uint32_t console_port;
static int console_mirror = 1;

void console_e9(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hv_outb(0xe9, (uint8_t)s[i]);
}

void console_set_e9_mirror(int on)
{
    console_mirror = on;
}

void console_attach(void *ring_page, uint32_t port)
{
    console_ring = ring_page;
    console_port = port;
    console_flush();
}

int console_attached(void)
{
    return console_ring != NULL;
}

uint64_t console_lost(void)
{
    return console_dropped;
}

static void console_put(char c)
{
    if (ring_space(console_prod, console_cons, CONSOLE_BUF) == 0) {
        console_dropped++;
        return;
    }
    console_buf[console_prod & (CONSOLE_BUF - 1)] = c;
    console_prod++;
}

void console_write(const char *s, size_t n)
{
    if (console_mirror || console_ring == NULL)
        console_e9(s, n);
    if (console_ring == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            /* Keep CR and LF together: drop the pair if only one fits. */
            if (ring_space(console_prod, console_cons, CONSOLE_BUF) < 2) {
                console_dropped += 2;
                continue;
            }
            console_put('\r');
        }
        console_put(s[i]);
    }
    console_flush();
}

void console_flush(void)
{
    volatile struct xencons_interface *r = console_ring;
    uint32_t prod, cons, room, n;
    struct evtchn_send send;

    if (r == NULL || console_prod == console_cons)
        return;
    cons = r->out_cons;
    prod = r->out_prod;
    hv_rmb();
    room = ring_space(prod, cons, CONSOLE_OUT);
    n = ring_used(console_prod, console_cons);
    if (n > room)
        n = room;
    if (n == 0)
        return;
    for (uint32_t i = 0; i < n; i++) {
        r->out[(prod + i) & (CONSOLE_OUT - 1)] =
            console_buf[(console_cons + i) & (CONSOLE_BUF - 1)];
    }
    hv_wmb();
    r->out_prod = prod + n;
    console_cons += n;
    send.port = console_port;
    hv_event_channel_op(EVTCHNOP_send, &send);
}

void console_event(uint32_t port, void *arg)
{
    (void)port;
    (void)arg;
    console_flush();
}

void console_drain(unsigned max_yields)
{
    while (console_ring != NULL && console_prod != console_cons &&
           max_yields-- > 0) {
        console_flush();
        if (console_prod == console_cons)
            break;
        hv_sched_op(SCHEDOP_yield, NULL);
    }
    /* Also wait (boundedly) for xenconsoled to read the ring, so that a
     * following shutdown does not cut the last lines. */
    while (console_ring != NULL && max_yields-- > 0 &&
           console_ring->out_cons != console_ring->out_prod)
        hv_sched_op(SCHEDOP_yield, NULL);
}
