/*
 * clock.c: see clock.h.
 */
#include "clock.h"

#include <stddef.h>

#include "evtchn.h"
#include "hv.h"

static struct clock_timer *clock_armed[CLOCK_TIMERS];
static uint64_t clock_virqs;
static long clock_last_rc;
static uint64_t clock_last; /* latest clock_now() result */

static void clock_virq(uint32_t port, void *arg)
{
    (void)port;
    (void)arg;
    clock_virqs++; /* expired timers run from the main loop */
}

static int clock_port = -1;

int clock_init(void)
{
    int port = evtchn_bind_virq(VIRQ_TIMER, clock_virq, NULL);

    clock_port = port;
    return port < 0 ? port : 0;
}

int clock_virq_port(void)
{
    return clock_port;
}

long clock_program_rc(void)
{
    return clock_last_rc;
}

uint64_t clock_virq_count(void)
{
    return clock_virqs;
}

uint64_t clock_now(void)
{
    volatile struct vcpu_time_info *t =
        &evtchn_shared_info()->vcpu_info[0].time;
    uint32_t ver, mul;
    uint64_t stamp, sys, delta;
    int8_t shift;

    do {
        ver = t->version;
        hv_rmb();
        stamp = t->tsc_timestamp;
        sys = t->system_time;
        mul = t->tsc_to_system_mul;
        shift = t->tsc_shift;
        delta = hv_rdtsc() - stamp;
        hv_rmb();
    } while ((ver & 1) != 0 || ver != t->version);

    if (shift < 0)
        delta >>= -shift;
    else
        delta <<= shift;
    sys += (uint64_t)(((unsigned __int128)delta * mul) >> 32);
    /* Xen refreshes the record when the vCPU changes physical CPU; never
     * let a slightly different TSC there move time backwards. */
    if (sys < clock_last)
        return clock_last;
    clock_last = sys;
    return sys;
}

void clock_wall(uint64_t *sec, uint32_t *nsec)
{
    volatile struct shared_info *s = evtchn_shared_info();
    uint32_t ver, wsec, wnsec;
    uint64_t now, ns;

    do {
        ver = s->wc_version;
        hv_rmb();
        wsec = s->wc_sec;
        wnsec = s->wc_nsec;
        hv_rmb();
    } while ((ver & 1) != 0 || ver != s->wc_version);
    /* XXX: wc_sec_hi (x86 only) is ignored; fine until 2106. */
    now = clock_now();
    ns = (uint64_t)wnsec + now % 1000000000ull;
    *sec = wsec + now / 1000000000ull + ns / 1000000000ull;
    *nsec = (uint32_t)(ns % 1000000000ull);
}

int clock_timer_arm(struct clock_timer *t, uint64_t deadline, clock_fn fn,
                    void *arg)
{
    unsigned free_slot = CLOCK_TIMERS;

    if (deadline == 0)
        deadline = 1;
    t->deadline = deadline;
    t->fn = fn;
    t->arg = arg;
    for (unsigned i = 0; i < CLOCK_TIMERS; i++) {
        if (clock_armed[i] == t)
            return 0;
        if (clock_armed[i] == NULL && free_slot == CLOCK_TIMERS)
            free_slot = i;
    }
    if (free_slot == CLOCK_TIMERS) {
        t->deadline = 0;
        return -28;
    }
    clock_armed[free_slot] = t;
    return 0;
}

void clock_timer_cancel(struct clock_timer *t)
{
    for (unsigned i = 0; i < CLOCK_TIMERS; i++) {
        if (clock_armed[i] == t)
            clock_armed[i] = NULL;
    }
    t->deadline = 0;
}

uint64_t clock_run(uint64_t now)
{
    uint64_t next = UINT64_MAX;

    for (unsigned i = 0; i < CLOCK_TIMERS; i++) {
        struct clock_timer *t = clock_armed[i];

        if (t == NULL)
            continue;
        if (t->deadline <= now) {
            clock_armed[i] = NULL;
            t->deadline = 0;
            t->fn(t->arg, now);
            /* fn may have re-armed t (in any slot): look again. */
            if (t->deadline != 0 && t->deadline < next)
                next = t->deadline;
        } else if (t->deadline < next) {
            next = t->deadline;
        }
    }
    return next;
}

uint64_t clock_next(void)
{
    uint64_t next = UINT64_MAX;

    for (unsigned i = 0; i < CLOCK_TIMERS; i++) {
        if (clock_armed[i] != NULL && clock_armed[i]->deadline < next)
            next = clock_armed[i]->deadline;
    }
    return next;
}

void clock_program(uint64_t deadline)
{
    /* 0 would cancel; UINT64_MAX: no timer needed. */
    if (deadline == UINT64_MAX)
        clock_last_rc = hv_set_timer_op(0);
    else
        clock_last_rc = hv_set_timer_op(deadline == 0 ? 1 : deadline);
}
