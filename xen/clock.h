/*
 * clock.h: time and timers.
 *
 * Monotonic time is Xen system time (ns since the host booted) read from
 * vcpu_info.time (pvclock). Wall-clock time is shared_info's wall clock at
 * system time zero plus the monotonic time. Timers: a small fixed table;
 * the one Xen single-shot timer (set_timer_op, raising VIRQ_TIMER) is
 * armed for the earliest deadline before each idle.
 */
#ifndef QW_XEN_CLOCK_H
#define QW_XEN_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define CLOCK_TIMERS 32u

typedef void (*clock_fn)(void *arg, uint64_t now);

struct clock_timer {
    uint64_t deadline; /* absolute ns; 0 = not armed */
    clock_fn fn;
    void *arg;
};

/* Bind VIRQ_TIMER. Needs evtchn_init(). 0 or -errno. */
int clock_init(void);

/* Monotonic ns (Xen system time). */
uint64_t clock_now(void);

/* Wall clock: seconds and ns since the Unix epoch. */
void clock_wall(uint64_t *sec, uint32_t *nsec);

/* Arm t to run fn(arg, now) once at `deadline` (re-arming moves it).
 * t must stay valid while armed. Returns -ENOSPC when the table is full. */
int clock_timer_arm(struct clock_timer *t, uint64_t deadline, clock_fn fn,
                    void *arg);
void clock_timer_cancel(struct clock_timer *t);

/* Run expired timers; returns the earliest remaining deadline, or
 * UINT64_MAX. */
uint64_t clock_run(uint64_t now);

/* Earliest armed deadline, UINT64_MAX if none. */
uint64_t clock_next(void);

/* Program Xen's single-shot timer (VIRQ_TIMER) for `deadline`. */
void clock_program(uint64_t deadline);

uint64_t clock_virq_count(void);
int clock_virq_port(void);
/* Result of the last set_timer_op (0 = ok). */
long clock_program_rc(void);

#endif /* QW_XEN_CLOCK_H */
