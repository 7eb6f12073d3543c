/*
 * hv.h: hypercalls, memory barriers and the few x86 instructions the
 * runtime needs. Xen's public headers (Debian libxen-dev) describe the
 * argument structures.
 *
 * Hypercalls go through the hypercall page that cpu_init() installs: the
 * stub for hypercall n sits at offset 32 * n. Arguments travel in rdi, rsi,
 * rdx, r10, r8, the result comes back in rax. A debug Xen may scribble on
 * the argument registers, so they are declared as clobbered outputs.
 */
#ifndef QW_XEN_HV_H
#define QW_XEN_HV_H

#include <stdint.h>

#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>
#include <xen/xen.h>

extern char hypercall_page[4096];

static inline long hv_call5(unsigned nr, uint64_t a1, uint64_t a2, uint64_t a3,
                            uint64_t a4, uint64_t a5)
{
    register uint64_t r10 __asm__("r10") = a4;
    register uint64_t r8 __asm__("r8") = a5;
    long ret;

    __asm__ volatile("call *%[fn]"
                     : "=a"(ret), "+D"(a1), "+S"(a2), "+d"(a3), "+r"(r10),
                       "+r"(r8)
                     : [fn] "r"(hypercall_page + 32 * nr)
                     : "memory", "rcx", "r11", "r9");
    return ret;
}

static inline long hv_memory_op(unsigned cmd, void *arg)
{
    return hv_call5(__HYPERVISOR_memory_op, cmd, (uint64_t)arg, 0, 0, 0);
}

static inline long hv_set_timer_op(uint64_t deadline_ns)
{
    return hv_call5(__HYPERVISOR_set_timer_op, deadline_ns, 0, 0, 0, 0);
}

static inline long hv_xen_version(unsigned cmd, void *arg)
{
    return hv_call5(__HYPERVISOR_xen_version, cmd, (uint64_t)arg, 0, 0, 0);
}

static inline long hv_grant_table_op(unsigned cmd, void *arg, unsigned count)
{
    return hv_call5(__HYPERVISOR_grant_table_op, cmd, (uint64_t)arg, count, 0,
                    0);
}

static inline long hv_sched_op(unsigned cmd, void *arg)
{
    return hv_call5(__HYPERVISOR_sched_op, cmd, (uint64_t)arg, 0, 0, 0);
}

static inline long hv_event_channel_op(unsigned cmd, void *arg)
{
    return hv_call5(__HYPERVISOR_event_channel_op, cmd, (uint64_t)arg, 0, 0, 0);
}

static inline long hv_hvm_op(unsigned op, void *arg)
{
    return hv_call5(__HYPERVISOR_hvm_op, op, (uint64_t)arg, 0, 0, 0);
}

/* HVMOP_get_param for our own domain; returns 0 and sets *val, or < 0. */
static inline long hv_get_param(uint32_t index, uint64_t *val)
{
    struct xen_hvm_param p = {.domid = DOMID_SELF, .index = index};
    long rc = hv_hvm_op(HVMOP_get_param, &p);

    *val = p.value;
    return rc;
}

/* Barriers. x86 keeps loads ordered with loads and stores with stores, so
 * rmb/wmb only stop the compiler; mb (store then load) needs a fence. */
#define hv_mb() __asm__ volatile("mfence" ::: "memory")
#define hv_rmb() __asm__ volatile("" ::: "memory")
#define hv_wmb() __asm__ volatile("" ::: "memory")
#define hv_barrier() __asm__ volatile("" ::: "memory")

static inline void hv_outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint64_t hv_rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void hv_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static inline uint64_t hv_rdmsr(uint32_t msr)
{
    uint32_t lo, hi;

    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void hv_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr"
                     :
                     : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
                     : "memory");
}

#endif /* QW_XEN_HV_H */
