/*
 * cpu.h: x86 set-up for a single-vCPU PVH guest: Xen detection and the
 * hypercall page, the IDT (exceptions + event upcall vector), the local
 * APIC, idling, randomness.
 */
#ifndef QW_XEN_CPU_H
#define QW_XEN_CPU_H

#include <stdbool.h>
#include <stdint.h>

#define CPU_UPCALL_VECTOR 0xf3
#define CPU_SPURIOUS_VECTOR 0xff

/* Register frame saved by boot.S trap stubs (lowest address first). */
struct cpu_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

/*
 * Find Xen's CPUID leaves and install the hypercall page. Returns false
 * when not running on Xen (then no hypercall may be made). On success
 * *version is Xen's major << 16 | minor.
 */
bool cpu_init_xen(uint32_t *version);

/* Load the IDT: exception stubs that report and crash the domain, the
 * upcall vector and the spurious vector. */
void cpu_init_idt(void);

/*
 * Replace the boot identity map's first 2 MiB with 4 KiB pages: page 0
 * unmapped (NULL dereferences fault), .text read-only and executable,
 * .rodata read-only, everything else writable and never executable (NX
 * on every other 2 MiB mapping too). Call after cpu_init_xen().
 */
void cpu_protect(void);

/* Software-enable the local APIC (needed for the per-vCPU upcall vector,
 * which Xen delivers through the virtual LAPIC and which needs an EOI). */
void cpu_init_lapic(void);

/* Called by the upcall stub: acknowledge, nothing else (the main loop
 * does the work). */
void cpu_upcall(void);

/* Upcall interrupts taken so far. */
uint64_t cpu_upcall_count(void);

/* Called by the exception stubs; reports and never returns. */
void cpu_trap(struct cpu_frame *f) __attribute__((noreturn));

/* With interrupts disabled on entry: enable them and halt in one go
 * (`sti; hlt`: the STI shadow means an interrupt pending at this point
 * still ends the hlt), then disable them again. Never `hlt` with IF=0:
 * on HVM/PVH that takes the vCPU down. */
void cpu_idle(void);

/* Uniform 32-bit random numbers: RDRAND when the CPU has it, mixed with
 * the TSC through a splitmix64 state. */
uint32_t cpu_random(void);
bool cpu_has_rdrand(void);

/* Take the domain down (crash or poweroff reason); never returns. */
void cpu_halt_domain(unsigned reason) __attribute__((noreturn));

#endif /* QW_XEN_CPU_H */
