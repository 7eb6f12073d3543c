/*
 * cpu.c: see cpu.h.
 */
#include "cpu.h"

#include <stddef.h>

#include "console.h"
#include "evtchn.h"
#include "fmt.h"
#include "hv.h"

#define APIC_BASE_MSR 0x1b
#define APIC_BASE_ENABLE (1u << 11)
#define APIC_SVR 0xf0
#define APIC_EOI 0xb0
#define APIC_SVR_ENABLE 0x100

struct cpu_idt_entry {
    uint16_t off_lo;
    uint16_t sel;
    uint8_t ist;
    uint8_t type;
    uint16_t off_mid;
    uint32_t off_hi;
    uint32_t zero;
} __attribute__((packed));

struct cpu_idt_desc {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

static struct cpu_idt_entry cpu_idt[256] __attribute__((aligned(16)));
static volatile uint32_t *cpu_lapic;
static bool cpu_rdrand;
static uint64_t cpu_mix;
static uint64_t cpu_upcalls;
static uint64_t cpu_pt0[512] __attribute__((aligned(4096)));

extern uint64_t boot_pd[];
extern uint64_t boot_gdt[];
extern char boot_stack_guard[], boot_df_stack_top[];

/* 64-bit TSS: only IST 1 is used (the double-fault stack). */
static struct {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap;
} __attribute__((packed)) cpu_tss;
extern char __image_start[], __text_end[], __rodata_end[];

#define CPU_PTE_P 0x1ull
#define CPU_PTE_W 0x2ull
#define CPU_PTE_NX (1ull << 63)
#define CPU_EFER 0xc0000080u
#define CPU_EFER_NXE (1ull << 11)
#define CPU_PD_ENTRIES (512u * 5u) /* boot.S maps 5 GiB */

extern char cpu_trap_0[], cpu_trap_1[], cpu_trap_2[], cpu_trap_3[];
extern char cpu_trap_4[], cpu_trap_5[], cpu_trap_6[], cpu_trap_7[];
extern char cpu_trap_8[], cpu_trap_9[], cpu_trap_10[], cpu_trap_11[];
extern char cpu_trap_12[], cpu_trap_13[], cpu_trap_14[], cpu_trap_15[];
extern char cpu_trap_16[], cpu_trap_17[], cpu_trap_18[], cpu_trap_19[];
extern char cpu_trap_20[], cpu_trap_21[];
extern char cpu_upcall_entry[], cpu_spurious_entry[];

static char *const cpu_traps[] = {
    cpu_trap_0,  cpu_trap_1,  cpu_trap_2,  cpu_trap_3,  cpu_trap_4,
    cpu_trap_5,  cpu_trap_6,  cpu_trap_7,  cpu_trap_8,  cpu_trap_9,
    cpu_trap_10, cpu_trap_11, cpu_trap_12, cpu_trap_13, cpu_trap_14,
    cpu_trap_15, cpu_trap_16, cpu_trap_17, cpu_trap_18, cpu_trap_19,
    cpu_trap_20, cpu_trap_21,
};

bool cpu_init_xen(uint32_t *version)
{
    uint32_t r[4];

    /* Xen's leaves move up by 0x100 steps when it also presents Viridian
     * leaves; scan the whole hypervisor range. */
    for (uint32_t base = 0x40000000; base < 0x40010000; base += 0x100) {
        hv_cpuid(base, 0, r);
        if (r[1] != 0x566e6558 || r[2] != 0x65584d4d || r[3] != 0x4d4d566e ||
            r[0] < base + 2)
            continue;
        hv_cpuid(base + 1, 0, r);
        *version = r[0];
        hv_cpuid(base + 2, 0, r);
        if (r[0] < 1)
            return false;
        /* The page is filled with `ret` (0xc3) at link time; Xen replaces
         * it with call stubs, which tells us the MSR write worked. */
        hv_wrmsr(r[1], (uint64_t)(uintptr_t)hypercall_page);
        hv_barrier();
        return *(volatile uint8_t *)hypercall_page != 0xc3;
    }
    return false;
}

static void cpu_set_gate(unsigned vec, void *fn)
{
    uint64_t a = (uint64_t)(uintptr_t)fn;
    struct cpu_idt_entry *e = &cpu_idt[vec];

    e->off_lo = (uint16_t)a;
    e->sel = 0x08;
    e->ist = 0;
    e->type = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
    e->off_mid = (uint16_t)(a >> 16);
    e->off_hi = (uint32_t)(a >> 32);
    e->zero = 0;
}

void cpu_init_idt(void)
{
    struct cpu_idt_desc d;
    uint32_t r[4];

    uint64_t tss = (uint64_t)(uintptr_t)&cpu_tss;
    uint64_t limit = sizeof(cpu_tss) - 1;

    cpu_tss.ist[0] = (uint64_t)(uintptr_t)boot_df_stack_top;
    cpu_tss.iomap = sizeof(cpu_tss); /* no I/O bitmap */
    boot_gdt[3] = (limit & 0xffff) | (tss & 0xffffff) << 16 |
                  0x89ull << 40 | /* present, available 64-bit TSS */
                  ((limit >> 16) & 0xf) << 48 | ((tss >> 24) & 0xff) << 56;
    boot_gdt[4] = tss >> 32;
    __asm__ volatile("ltr %w0" : : "r"(0x18) : "memory");

    for (unsigned i = 0; i < sizeof(cpu_traps) / sizeof(cpu_traps[0]); i++)
        cpu_set_gate(i, cpu_traps[i]);
    cpu_idt[8].ist = 1; /* double fault: known-good stack */
    cpu_set_gate(CPU_UPCALL_VECTOR, cpu_upcall_entry);
    cpu_set_gate(CPU_SPURIOUS_VECTOR, cpu_spurious_entry);
    d.limit = sizeof(cpu_idt) - 1;
    d.base = (uint64_t)(uintptr_t)cpu_idt;
    __asm__ volatile("lidt %0" : : "m"(d));

    hv_cpuid(1, 0, r);
    cpu_rdrand = (r[2] >> 30) & 1;
    cpu_mix = hv_rdtsc();
}

void cpu_protect(void)
{
    uintptr_t text = (uintptr_t)__image_start, etext = (uintptr_t)__text_end;
    uintptr_t erodata = (uintptr_t)__rodata_end;
    uint64_t cr3;

    /* NX must be enabled before any entry carries bit 63. */
    hv_wrmsr(CPU_EFER, hv_rdmsr(CPU_EFER) | CPU_EFER_NXE);
    for (unsigned i = 0; i < 512; i++) {
        uintptr_t a = (uintptr_t)i << 12;

        if (i == 0 || a == (uintptr_t)boot_stack_guard)
            cpu_pt0[i] = 0;
        else if (a >= text && a < etext)
            cpu_pt0[i] = a | CPU_PTE_P;
        else if (a >= etext && a < erodata)
            cpu_pt0[i] = a | CPU_PTE_P | CPU_PTE_NX;
        else
            cpu_pt0[i] = a | CPU_PTE_P | CPU_PTE_W | CPU_PTE_NX;
    }
    for (unsigned i = 1; i < CPU_PD_ENTRIES; i++)
        boot_pd[i] |= CPU_PTE_NX;
    boot_pd[0] = (uint64_t)(uintptr_t)cpu_pt0 | CPU_PTE_P | CPU_PTE_W;
    __asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
}

void cpu_init_lapic(void)
{
    uint64_t base = hv_rdmsr(APIC_BASE_MSR);

    if (!(base & APIC_BASE_ENABLE)) {
        base |= APIC_BASE_ENABLE;
        hv_wrmsr(APIC_BASE_MSR, base);
    }
    /* The identity map covers the LAPIC page below 4 GiB. */
    cpu_lapic = (volatile uint32_t *)(uintptr_t)(base & 0xfffff000u);
    cpu_lapic[APIC_SVR / 4] = APIC_SVR_ENABLE | CPU_SPURIOUS_VECTOR;
}

uint64_t cpu_upcall_count(void)
{
    return cpu_upcalls;
}

void cpu_upcall(void)
{
    cpu_upcalls++;
    evtchn_upcall_ack();
    if (cpu_lapic != NULL)
        cpu_lapic[APIC_EOI / 4] = 0;
}

void cpu_idle(void)
{
    __asm__ volatile("sti; hlt; cli" ::: "memory");
}

bool cpu_has_rdrand(void)
{
    return cpu_rdrand;
}

static uint64_t cpu_splitmix(void)
{
    uint64_t z = (cpu_mix += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t cpu_random(void)
{
    uint64_t v = 0;
    unsigned char ok = 0;

    if (cpu_rdrand) {
        /* RDRAND may transiently fail (CF=0); retry a few times. */
        for (int i = 0; i < 10 && !ok; i++)
            __asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok));
    }
    /* XXX: without RDRAND this is TSC-seeded splitmix, predictable to a
     * patient observer; next step: mix in xenstore/vif timing jitter. */
    cpu_mix ^= hv_rdtsc();
    return (uint32_t)(v ^ cpu_splitmix());
}

void cpu_halt_domain(unsigned reason)
{
    struct sched_shutdown s = {.reason = reason};

    console_drain(2000);
    hv_sched_op(SCHEDOP_shutdown, &s);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void cpu_trap(struct cpu_frame *f)
{
    char line[256];
    uint64_t cr2;
    size_t n;

    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    n = qw_snprintf(line, sizeof(line),
                    "\ncpu: exception %u error 0x%llx rip 0x%llx rsp 0x%llx "
                    "cr2 0x%llx rflags 0x%llx\n",
                    (unsigned)f->vector, (unsigned long long)f->error,
                    (unsigned long long)f->rip, (unsigned long long)f->rsp,
                    (unsigned long long)cr2, (unsigned long long)f->rflags);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    console_e9(line, n);
    if (console_attached()) {
        console_set_e9_mirror(0);
        console_write(line, n);
    }
    n = qw_snprintf(line, sizeof(line),
                    "cpu: rax %llx rbx %llx rcx %llx rdx %llx rsi %llx "
                    "rdi %llx rbp %llx\n",
                    (unsigned long long)f->rax, (unsigned long long)f->rbx,
                    (unsigned long long)f->rcx, (unsigned long long)f->rdx,
                    (unsigned long long)f->rsi, (unsigned long long)f->rdi,
                    (unsigned long long)f->rbp);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    console_e9(line, n);
    if (console_attached())
        console_write(line, n);
    cpu_halt_domain(SHUTDOWN_crash);
}
