/*
 * main.c: boot sequence and the main loop of qwall.xen.
 *
 * Order (see docs/xen.md): copy start_info (command line, memory map)
 * before anything can overwrite it; find Xen and install the hypercall
 * page; IDT and LAPIC; shared_info and upcall delivery; console ring;
 * VIRQ_TIMER; page allocator; xenstore; grant table; lifecycle; core.
 * Then the loop: run ready ports, expired timers, flush the console, and
 * idle with `sti; hlt` until the next event or deadline.
 */
#include <stddef.h>
#include <stdint.h>

#include <xen/arch-x86/hvm/start_info.h>

#include "clock.h"
#include "console.h"
#include "cpu.h"
#include "evtchn.h"
#include "fmt.h"
#include "hv.h"
#include "libc.h"
#include "log.h"
#include "mm.h"

#define MAIN_CMDLINE_MAX 2048

void xen_main(uint32_t start_info_pa) __attribute__((noreturn));

extern char __image_start[], __image_end[];

static char main_cmdline[MAIN_CMDLINE_MAX];
static uint64_t main_si_cmdline_pa;
static uint32_t main_si_version;
static uint32_t main_si_pa;
static struct clock_timer main_test_timer;
static uint64_t main_test_armed_at;

static void main_early(const char *s)
{
    console_e9(s, strlen(s));
}

/* Copy what start_info points to; it may sit in memory we reuse. */
static void main_take_start_info(uint32_t pa)
{
    const struct hvm_start_info *si =
        (const struct hvm_start_info *)(uintptr_t)pa;
    struct mm_region map[MM_MAP_MAX];
    unsigned n = 0;

    if (pa == 0 || si->magic != XEN_HVM_START_MAGIC_VALUE) {
        main_early("qwall: no PVH start_info, stopping\n");
        cpu_halt_domain(SHUTDOWN_crash);
    }
    main_si_pa = pa;
    main_si_cmdline_pa = si->cmdline_paddr;
    main_si_version = si->version;
    if (si->cmdline_paddr != 0 && si->cmdline_paddr < 0x100000000ull) {
        const char *c = (const char *)(uintptr_t)si->cmdline_paddr;
        size_t i = 0;

        while (i < MAIN_CMDLINE_MAX - 1 && c[i] != '\0') {
            main_cmdline[i] = c[i];
            i++;
        }
        main_cmdline[i] = '\0';
    }
    if (si->version >= 1 && si->memmap_paddr != 0 &&
        si->memmap_paddr < 0x100000000ull) {
        const struct hvm_memmap_table_entry *e =
            (const struct hvm_memmap_table_entry *)(uintptr_t)si->memmap_paddr;

        for (unsigned i = 0; i < si->memmap_entries && n < MM_MAP_MAX; i++) {
            map[n].addr = e[i].addr;
            map[n].size = e[i].size;
            map[n].type = e[i].type;
            n++;
        }
    }
    if (n == 0) {
        /* No map in start_info (version 0): ask Xen. */
        struct {
            uint64_t addr, size;
            uint32_t type;
        } __attribute__((packed)) e820[MM_MAP_MAX];
        struct xen_memory_map mm = {.nr_entries = MM_MAP_MAX};

        set_xen_guest_handle(mm.buffer, (void *)e820);
        if (hv_memory_op(XENMEM_memory_map, &mm) == 0) {
            for (unsigned i = 0; i < mm.nr_entries && i < MM_MAP_MAX; i++) {
                map[n].addr = e820[i].addr;
                map[n].size = e820[i].size;
                map[n].type = e820[i].type;
                n++;
            }
        }
    }
    mm_set_map(map, n);
}

static void main_fatal(const char *what, long rc)
{
    log_err("boot: %s failed (%ld)", what, rc);
    cpu_halt_domain(SHUTDOWN_crash);
}

static void main_test_fired(void *arg, uint64_t now)
{
    (void)arg;
    log_info("timer: test timer fired after %llu us",
             (unsigned long long)((now - main_test_armed_at) / 1000));
}

static void main_loop(void) __attribute__((noreturn));
static void main_loop(void)
{
    for (;;) {
        uint64_t next;

        evtchn_poll();
        next = clock_run(clock_now());
        console_flush();
        if (evtchn_pending())
            continue;
        clock_program(next);
        if (evtchn_pending())
            continue;
        cpu_idle();
    }
}

void xen_main(uint32_t start_info_pa)
{
    uint32_t xver = 0;
    uint64_t pfn = 0, port = 0, wsec;
    uint32_t wnsec;
    long rc;
    const struct mm_region *map;
    unsigned nmap;

    main_early("qwall: PVH entry\n");
    if (!cpu_init_xen(&xver)) {
        main_early("qwall: not running on Xen (no hypercall page)\n");
        cpu_halt_domain(SHUTDOWN_crash);
    }
    main_take_start_info(start_info_pa);
    cpu_init_idt();
    cpu_init_lapic();
    rc = evtchn_init();
    if (rc < 0)
        main_fatal("event channels", rc);
    if (hv_get_param(HVM_PARAM_CONSOLE_PFN, &pfn) == 0 && pfn != 0 &&
        hv_get_param(HVM_PARAM_CONSOLE_EVTCHN, &port) == 0) {
        console_attach((void *)(uintptr_t)(pfn << 12), (uint32_t)port);
        evtchn_attach((uint32_t)port, console_event, NULL);
        console_set_e9_mirror(0);
    }
    rc = clock_init();
    if (rc < 0)
        main_fatal("VIRQ_TIMER", rc);
    log_clock_ready();
    log_info("qwall: booting on Xen %u.%u (PVH), console pfn 0x%llx port %u",
             xver >> 16, xver & 0xffff, (unsigned long long)pfn,
             (unsigned)port);
    log_info("boot: start_info at 0x%x v%u, command line at 0x%llx: \"%s\"",
             main_si_pa, main_si_version,
             (unsigned long long)main_si_cmdline_pa, main_cmdline);
    nmap = mm_map(&map);
    for (unsigned i = 0; i < nmap; i++) {
        log_info("boot: memory map %u: 0x%09llx-0x%09llx type %u", i,
                 (unsigned long long)map[i].addr,
                 (unsigned long long)(map[i].addr + map[i].size - 1),
                 map[i].type);
    }
    rc = mm_init((uintptr_t)__image_end);
    if (rc < 0)
        main_fatal("page allocator", rc);
    log_info("mm: image 0x%llx-0x%llx (%llu KiB), %zu of %zu pages free "
             "(%zu KiB), RAM ends at 0x%llx",
             (unsigned long long)(uintptr_t)__image_start,
             (unsigned long long)(uintptr_t)__image_end,
             (unsigned long long)((__image_end - __image_start) / 1024),
             mm_free_count(), mm_total_pages(), mm_free_count() * 4,
             (unsigned long long)mm_ram_end());
    clock_wall(&wsec, &wnsec);
    log_info("clock: system time %llu ns, wall clock %llu.%09u s since 1970",
             (unsigned long long)clock_now(), (unsigned long long)wsec, wnsec);

    main_test_armed_at = clock_now();
    clock_timer_arm(&main_test_timer, main_test_armed_at + 50000000ull,
                    main_test_fired, NULL);
    main_loop();
}
