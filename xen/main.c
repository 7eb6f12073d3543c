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
#include "cmdline.h"
#include "console.h"
#include "cpu.h"
#include "evtchn.h"
#include "fmt.h"
#include "gnttab.h"
#include "hv.h"
#include "libc.h"
#include "log.h"
#include "mm.h"
#include "qwall.h"
#include "xs.h"

#define MAIN_CMDLINE_MAX 2048

void xen_main(uint32_t start_info_pa) __attribute__((noreturn));

extern char __image_start[], __image_end[];

static char main_cmdline[MAIN_CMDLINE_MAX];
static uint64_t main_si_cmdline_pa;
static uint32_t main_si_version;
static uint32_t main_si_pa;
static struct cmdline_opts main_opts;
static uint64_t main_t0; /* system time just after entry */
static uint32_t main_domid;
static unsigned main_stop; /* SHUTDOWN_* + 1 once a shutdown is due */
static struct qw *main_fw __attribute__((unused)); /* next: netfront */

/* Self-tests (--selftest), driven by tests/xen/dom0-test.sh. */
static struct clock_timer main_test_timer;
static uint64_t main_test_armed_at;
static struct {
    int state; /* 0 offered, 1 copied, 2 revoked, -1 failed */
    int ref;
    uint8_t *offer, *in, *out;
} main_gt;
static struct clock_timer main_gt_retry;
static int main_evt_port = -1;
static unsigned main_evt_seen;

/* dom0 notifies the port we allocated for it: answer every event (the
 * helper plays ping-pong, so each round needs one delivered event). */
static void main_evt_handler(uint32_t port, void *arg)
{
    (void)arg;
    if (main_evt_seen++ == 0)
        log_info("evtchn: event from dom0 on port %u, notifying back", port);
    evtchn_send(port);
}

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

static uint64_t main_ms_since_boot(void)
{
    return (clock_now() - main_t0) / 1000000ull;
}

static const char *main_ip(uint32_t a, char *buf, size_t cap)
{
    if (a == 0)
        return "-";
    qw_snprintf(buf, cap, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255,
                (a >> 8) & 255, a & 255);
    return buf;
}

/* ---- lifecycle ---------------------------------------------------- */

static void main_shutdown_watch(void *arg, const char *path)
{
    char v[32];
    int n;

    (void)arg;
    (void)path;
    n = xs_read(0, "control/shutdown", v, sizeof(v));
    if (n <= 0)
        return; /* absent or empty: nothing asked (or our own ack) */
    if (strcmp(v, "poweroff") == 0 || strcmp(v, "halt") == 0 ||
        strcmp(v, "reboot") == 0) {
        /* Qubes sets on_reboot=destroy: a reboot is a power-off too. */
        log_info("lifecycle: %s requested by the toolstack", v);
        n = xs_write(0, "control/shutdown", "");
        if (n < 0)
            log_warn("lifecycle: cannot acknowledge shutdown (%d)", n);
        main_stop = SHUTDOWN_poweroff + 1;
    } else {
        log_warn("lifecycle: ignoring shutdown request \"%s\"", v);
    }
}

static void main_lifecycle_init(void)
{
    int rc = xs_write(0, "control/feature-poweroff", "1");

    if (rc == 0)
        rc = xs_write(0, "control/feature-reboot", "0");
    if (rc < 0)
        log_warn("lifecycle: cannot advertise feature-poweroff (%d)", rc);
    rc = xs_watch("control/shutdown", main_shutdown_watch, NULL);
    if (rc < 0)
        log_err("lifecycle: cannot watch control/shutdown (%d)", rc);
}

static void main_power_off(void) __attribute__((noreturn));
static void main_power_off(void)
{
    struct xs_stats st;

    /* No unwatching here: xenstored drops a dead domain's watches, and
     * every request would delay the power-off by a dom0 round trip. */
    xs_get_stats(&st);
    log_info("lifecycle: powering off after %llu ms (events %llu, xs "
             "requests %llu errors %llu timeouts %llu, watches %u, grants in "
             "use %u, console lost %llu)",
             (unsigned long long)main_ms_since_boot(),
             (unsigned long long)evtchn_count_events(),
             (unsigned long long)st.requests, (unsigned long long)st.errors,
             (unsigned long long)st.timeouts, st.watches, gnttab_used(),
             (unsigned long long)console_lost());
    cpu_halt_domain(main_stop - 1);
}

/* ---- self-tests ---------------------------------------------------- */

#define MAIN_TICKS 10
#define MAIN_TICK_NS 100000000ull

/* Ten 100 ms single-shot timers in a row: each must fire, none early;
 * the VIRQ_TIMER count shows Xen's timer woke us (under a loaded TCG host
 * another event may come first, so not every tick needs its own VIRQ). */
static void main_test_fired(void *arg, uint64_t now)
{
    static unsigned ticks;
    static uint64_t late_max, early;
    uint64_t due = main_test_armed_at + MAIN_TICK_NS;

    (void)arg;
    if (now < due)
        early++;
    else if (now - due > late_max)
        late_max = now - due;
    if (++ticks < MAIN_TICKS) {
        main_test_armed_at = now;
        clock_timer_arm(&main_test_timer, now + MAIN_TICK_NS, main_test_fired,
                        NULL);
        return;
    }
    log_info("timer: test timer fired %u times every 100 ms, %llu early, "
             "latest %llu us late (VIRQ_TIMER events %llu, upcalls %llu)",
             ticks, (unsigned long long)early,
             (unsigned long long)(late_max / 1000),
             (unsigned long long)clock_virq_count(),
             (unsigned long long)cpu_upcall_count());
}

static int main_ping_id = -1;

static void main_ping_watch(void *arg, const char *path)
{
    char v[128];
    int n = xs_read(0, "data/qwt-ping", v, sizeof(v));
    struct xs_stats st;

    (void)arg;
    if (n < 0) {
        log_info("watch: data/qwt-ping unreadable (%d, event for %s)", n, path);
        return;
    }
    log_info("watch: data/qwt-ping = %s (event for %s)", v, path);
    /* One value is enough: unwatch, so that dom0 can check that later
     * writes are no longer reported and that the slot was freed. */
    if (main_ping_id >= 0 && xs_unwatch(main_ping_id) == 0) {
        main_ping_id = -1;
        xs_get_stats(&st);
        log_info("watch: unwatched data/qwt-ping (%u watches left)",
                 st.watches);
    }
}

/* Transactions, directory listing and error mapping. */
static void main_xs_selftest(void)
{
    const char *names[16];
    char buf[512], v[32];
    uint32_t tx;
    int rc, n, tries = 0;

    do {
        rc = xs_transaction_start(&tx);
        if (rc == 0)
            rc = xs_write(tx, "data/qwt-tx", "committed");
        if (rc == 0)
            rc = xs_transaction_end(tx, true);
    } while (rc == -XS_EAGAIN && ++tries < 5);
    if (rc == 0 && xs_read(0, "data/qwt-tx", v, sizeof(v)) > 0 &&
        strcmp(v, "committed") == 0) {
        rc = xs_transaction_start(&tx);
        if (rc == 0)
            rc = xs_write(tx, "data/qwt-tx-aborted", "1");
        if (rc == 0)
            rc = xs_transaction_end(tx, false);
        n = xs_read(0, "data/qwt-tx-aborted", v, sizeof(v));
        if (rc == 0 && n == -XS_ENOENT)
            log_info("xs: transaction commit ok, abort ok (read after abort "
                     "gives ENOENT)");
        else
            log_err("xs: transaction abort test failed (%d, %d)", rc, n);
    } else {
        log_err("xs: transaction commit test failed (%d)", rc);
    }
    n = xs_directory(0, "control", buf, sizeof(buf), names, 16);
    if (n > 0) {
        char list[128];
        size_t off = 0;

        list[0] = '\0';
        for (int i = 0; i < n && off < sizeof(list); i++)
            off += qw_snprintf(list + off, sizeof(list) - off, "%s%s",
                               i ? "," : "", names[i]);
        log_info("xs: directory control: %d entries (%s)", n, list);
    } else {
        log_err("xs: directory control failed (%d)", n);
    }
    rc = xs_write(0, "/local/domain/0/qwt-forbidden", "x");
    log_info("xs: write outside our tree gives %d (EACCES is %d)", rc,
             -XS_EACCES);
}

static unsigned char main_pattern(unsigned i)
{
    return (unsigned char)(i * 7u + 3u);
}

static void main_gt_finish(void);

static void main_gt_retry_fired(void *arg, uint64_t now)
{
    (void)arg;
    (void)now;
    main_gt_finish();
}

/* Step 3: dom0 unmapped our page; revoking must now work. */
static void main_gt_finish(void)
{
    int rc = gnttab_revoke((uint32_t)main_gt.ref);

    if (rc == -16) {
        /* dom0's unmap may not have reached Xen yet: try again soon. */
        clock_timer_arm(&main_gt_retry, clock_now() + 20000000ull,
                        main_gt_retry_fired, NULL);
        return;
    }
    if (rc < 0) {
        log_err("gnttab: revoke of gref %d failed (%d)", main_gt.ref, rc);
        main_gt.state = -1;
        return;
    }
    main_gt.state = 2;
    mm_free_pages(main_gt.offer, 1);
    if (main_evt_port >= 0) {
        log_info("evtchn: %u events from dom0 answered", main_evt_seen);
        evtchn_close((uint32_t)main_evt_port);
        main_evt_port = -1;
    }
    log_info("gnttab: round trip ok (granted, refused revoke while mapped, "
             "copied 4096 bytes in and out, revoked; %u grants in use)",
             gnttab_used());
    xs_write(0, "data/qwt-gnt/done", "ok");
}

/* Map dom0's src page into the window, check it, unmap it. */
static void main_gt_map(uint32_t ref)
{
    uint32_t handle = 0;
    int err = 0, rc;
    const uint8_t *p = gnttab_map(0, ref, true, &handle, &err);

    if (p == NULL) {
        log_err("gnttab: map of dom0 gref %u failed (%d)", ref, err);
        return;
    }
    for (unsigned i = 0; i < 4096; i++) {
        if (p[i] != main_pattern(i)) {
            log_err("gnttab: mapped byte %u is 0x%02x", i, p[i]);
            gnttab_unmap((void *)(uintptr_t)p, handle);
            return;
        }
    }
    rc = gnttab_unmap((void *)(uintptr_t)p, handle);
    log_info("gnttab: mapped dom0 gref %u at 0x%llx (pattern ok), unmap %d",
             ref, (unsigned long long)(uintptr_t)p, rc);
}

/* Step 2: dom0 mapped our page and shared src/dst pages with us. */
static void main_gt_copy(const char *peer)
{
    uint32_t src, dst;
    struct gnttab_side a = {0}, b = {0};
    const char *sp = peer;
    int rc;

    rc = gnttab_revoke((uint32_t)main_gt.ref);
    if (rc == -16) {
        log_info("gnttab: revoke refused while dom0 maps gref %d (ok)",
                 main_gt.ref);
    } else {
        log_err("gnttab: revoke of a mapped grant returned %d", rc);
        main_gt.state = -1;
        return;
    }
    src = 0;
    while (*sp >= '0' && *sp <= '9')
        src = src * 10 + (uint32_t)(*sp++ - '0');
    if (*sp++ != ' ') {
        log_err("gnttab: bad peer key \"%s\"", peer);
        main_gt.state = -1;
        return;
    }
    dst = 0;
    while (*sp >= '0' && *sp <= '9')
        dst = dst * 10 + (uint32_t)(*sp++ - '0');

    a.is_ref = true;
    a.ref = src;
    a.domid = 0;
    b.gfn = (uintptr_t)main_gt.in >> 12;
    rc = gnttab_copy(&a, &b, 4096);
    if (rc < 0) {
        log_err("gnttab: copy from dom0 gref %u failed (%d)", src, rc);
        main_gt.state = -1;
        return;
    }
    for (unsigned i = 0; i < 4096; i++) {
        if (main_gt.in[i] != main_pattern(i)) {
            log_err("gnttab: byte %u from dom0 is 0x%02x", i, main_gt.in[i]);
            main_gt.state = -1;
            return;
        }
        main_gt.out[i] = (uint8_t)(main_gt.in[i] ^ 0xff);
    }
    a.is_ref = false;
    a.gfn = (uintptr_t)main_gt.out >> 12;
    b.is_ref = true;
    b.ref = dst;
    b.domid = 0;
    rc = gnttab_copy(&a, &b, 4096);
    if (rc < 0) {
        log_err("gnttab: copy to dom0 gref %u failed (%d)", dst, rc);
        main_gt.state = -1;
        return;
    }
    main_gt.state = 1;
    log_info("gnttab: copied 4096 bytes from dom0 gref %u (pattern ok) and "
             "back to gref %u",
             src, dst);
    main_gt_map(src);
    xs_write(0, "data/qwt-gnt/result", "copied 4096");
}

static void main_gt_watch(void *arg, const char *path)
{
    char v[64];

    (void)arg;
    (void)path;
    if (main_gt.state == 0 && xs_read(0, "data/qwt-gnt/peer", v, sizeof(v)) > 0)
        main_gt_copy(v);
    if (main_gt.state == 1 &&
        xs_read(0, "data/qwt-gnt/unmapped", v, sizeof(v)) > 0)
        main_gt_finish();
}

static void main_selftest_start(void)
{
    char v[32];
    int rc;

    main_xs_selftest();
    rc = xs_watch("data/qwt-ping", main_ping_watch, NULL);
    main_ping_id = rc;
    if (rc < 0)
        log_err("selftest: cannot watch data/qwt-ping (%d)", rc);

    main_gt.offer = mm_alloc_pages(1);
    main_gt.in = mm_alloc_pages(1);
    main_gt.out = mm_alloc_pages(1);
    if (main_gt.offer == NULL || main_gt.in == NULL || main_gt.out == NULL) {
        log_err("selftest: no pages for the grant test");
        return;
    }
    qw_snprintf((char *)main_gt.offer, 64, "qwall grant page %u", main_domid);
    main_gt.ref = gnttab_grant(0, (uintptr_t)main_gt.offer >> 12, true);
    if (main_gt.ref < 0) {
        log_err("selftest: cannot grant a page (%d)", main_gt.ref);
        return;
    }
    xs_rm(0, "data/qwt-gnt");
    main_evt_port = evtchn_alloc_unbound(0, main_evt_handler, NULL);
    if (main_evt_port < 0) {
        log_err("selftest: alloc_unbound failed (%d)", main_evt_port);
    } else {
        qw_snprintf(v, sizeof(v), "%d", main_evt_port);
        xs_write(0, "data/qwt-gnt/evtchn", v);
    }
    rc = xs_watch("data/qwt-gnt", main_gt_watch, NULL);
    qw_snprintf(v, sizeof(v), "%d", main_gt.ref);
    if (rc >= 0)
        rc = xs_write(0, "data/qwt-gnt/offer", v);
    if (rc < 0)
        log_err("selftest: cannot publish the grant (%d)", rc);
    else
        log_info("gnttab: offered gref %d (read-only) to dom0", main_gt.ref);
    /* Last, so that nothing but idling separates arming and firing. */
    main_test_armed_at = clock_now();
    clock_timer_arm(&main_test_timer, main_test_armed_at + MAIN_TICK_NS,
                    main_test_fired, NULL);
}

/* Deliberate faults for check-xen: the trap report must come out and the
 * domain must crash (not hang, not triple-fault silently). */
static volatile uint64_t main_sink;

/* Stops only at a limit no stack reaches (the compiler rejects plain
 * infinite recursion). */
static uint64_t main_recurse(uint64_t n)
{
    volatile uint8_t pad[256];

    pad[0] = (uint8_t)n;
    if (n > (1ull << 40))
        return n;
    return main_recurse(n + 1) + pad[0];
}

static void main_crashtest(unsigned what)
{
    log_info("selftest: crash test %s", what == 1 ? "stack" : "null");
    console_drain(200);
    if (what == 1)
        main_sink = main_recurse(0);
    else
        main_sink = *(volatile uint64_t *)(uintptr_t)main_sink;
    log_err("selftest: crash test survived");
}

/* ---- core ---------------------------------------------------------- */

static void main_core_log(void *ctx, enum qw_log_level level, const char *line)
{
    (void)ctx;
    log_line(level, line);
}

static uint32_t main_core_random(void *ctx)
{
    (void)ctx;
    return cpu_random();
}

static void main_core_start(void)
{
#ifdef QW_XEN_HAVE_CORE
    static const struct qw_platform plat = {
        .log = main_core_log,
        .random = main_core_random,
    };
    size_t need = qw_mem_size(&main_opts.cfg);
    size_t pages = (need + MM_PAGE - 1) / MM_PAGE;
    void *mem = mm_alloc_pages(pages);

    if (mem == NULL) {
        log_err("core: need %zu KiB for the configuration, only %zu KiB "
                "free",
                need / 1024, mm_free_count() * 4);
        return;
    }
    main_fw = qw_create(mem, pages * MM_PAGE, &main_opts.cfg, &plat);
    log_info("core: qw_create %s (%zu KiB, nat table %u), %zu KiB left",
             main_fw != NULL ? "ok" : "FAILED", need / 1024,
             main_opts.cfg.nat_table_size, mm_free_count() * 4);
#else
    (void)main_core_log;
    (void)main_core_random;
    log_warn("core: not linked into this build (no qw_create yet)");
#endif
}

/* ---- fixed pools --------------------------------------------------- */

#define MAIN_FRAME_BUF 2048u
#define MAIN_FRAMES_MAX 1024u

/* Frame buffers for the netfront/netback rings to come: a quarter of what
 * is left after the core, at most MAIN_FRAMES_MAX, carved once now so that
 * the data path never allocates. */
static struct mm_pool main_frames;

static void main_pools_init(void)
{
    size_t n = mm_free_count() / 4 * (MM_PAGE / MAIN_FRAME_BUF);
    int rc;

    if (n > MAIN_FRAMES_MAX)
        n = MAIN_FRAMES_MAX;
    if (n == 0) {
        log_warn("mm: no memory left for frame buffers");
        return;
    }
    rc = mm_pool_init(&main_frames, MAIN_FRAME_BUF, n);
    if (rc < 0) {
        log_warn("mm: frame pool of %zu buffers failed (%d)", n, rc);
        return;
    }
    log_info("mm: pools: %zu frame buffers of %u bytes (%zu KiB); %zu KiB "
             "free",
             main_frames.count, MAIN_FRAME_BUF,
             main_frames.count * MAIN_FRAME_BUF / 1024, mm_free_count() * 4);
}

/* ---- main loop ------------------------------------------------------ */

/* A wake-up far behind the programmed deadline means a lost timer
 * interrupt (or a starved host): count it and say so, rate-limited. */
static uint64_t main_late_wakes;

static void main_check_wake(uint64_t deadline)
{
    uint64_t now = clock_now();
    struct shared_info *si = evtchn_shared_info();
    int p = clock_virq_port();

    if (deadline == UINT64_MAX || now < deadline + 1000000000ull)
        return;
    if (main_late_wakes++ < 5)
        log_warn("idle: woke %llu ms after the timer deadline (virq port %d "
                 "pending %d mask %d, sel 0x%llx, upcalls %llu, virqs %llu, "
                 "set_timer_op %ld)",
                 (unsigned long long)((now - deadline) / 1000000), p,
                 (int)((si->evtchn_pending[p / 64] >> (p % 64)) & 1),
                 (int)((si->evtchn_mask[p / 64] >> (p % 64)) & 1),
                 (unsigned long long)si->vcpu_info[0].evtchn_pending_sel,
                 (unsigned long long)cpu_upcall_count(),
                 (unsigned long long)clock_virq_count(), clock_program_rc());
}

static void main_loop(void) __attribute__((noreturn));
static void main_loop(void)
{
    for (;;) {
        uint64_t next;

        evtchn_poll();
        xs_dispatch();
        if (main_stop != 0)
            main_power_off();
        next = clock_run(clock_now());
        console_flush();
        if (evtchn_pending() || xs_events_pending())
            continue;
        clock_program(next);
        if (evtchn_pending())
            continue;
        cpu_idle();
        main_check_wake(next);
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
    char name[64], a[16], b[16], c[16], d[16];
    struct qw_config *cfg = &main_opts.cfg;

    main_early("qwall: PVH entry\n");
    if (!cpu_init_xen(&xver)) {
        main_early("qwall: not running on Xen (no hypercall page)\n");
        cpu_halt_domain(SHUTDOWN_crash);
    }
    main_take_start_info(start_info_pa);
    cpu_protect();
    cmdline_parse(main_cmdline, &main_opts);
    log_set_level(cfg->log_level);
    cpu_init_idt();
    cpu_init_lapic();
    rc = evtchn_init();
    if (rc < 0)
        main_fatal("event channels", rc);
    main_t0 = clock_now();
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
    log_info("boot: start_info at 0x%x v%u, command line \"%s\"", main_si_pa,
             main_si_version, main_cmdline);
    log_info("cmdline: ipv4 %s gw %s dns %s %s nat %u log-level %u "
             "drop-silently %u selftest %u unknown %u",
             main_ip(cfg->ipv4, a, sizeof(a)),
             main_ip(cfg->ipv4_gw, b, sizeof(b)),
             main_ip(cfg->ipv4_dns, c, sizeof(c)),
             main_ip(cfg->ipv4_dns2, d, sizeof(d)), cfg->nat_table_size,
             (unsigned)cfg->log_level, (unsigned)cfg->drop_silently,
             (unsigned)main_opts.selftest, main_opts.unknown);
    if (main_opts.errors != 0)
        log_warn("cmdline: %u bad option(s), first \"%s\": defaults kept",
                 main_opts.errors, main_opts.bad);
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

    rc = gnttab_init();
    if (rc < 0)
        main_fatal("grant table", rc);
    log_info("gnttab: %u frames at 0x%llx, %u entries", GNTTAB_FRAMES,
             (unsigned long long)GNTTAB_WINDOW, gnttab_capacity());
    rc = xs_init();
    if (rc < 0)
        main_fatal("xenstore", rc);
    rc = xs_read_uint(0, "domid", &main_domid);
    if (rc < 0)
        main_fatal("xenstore read of domid", rc);
    rc = xs_read(0, "name", name, sizeof(name));
    if (rc < 0)
        qw_snprintf(name, sizeof(name), "?(%ld)", rc);
    log_info("xs: domid %u name %s", main_domid, name);
    log_info("xs: ready %llu ms after entry",
             (unsigned long long)main_ms_since_boot());
    main_lifecycle_init();
    main_core_start();
    main_pools_init();
    if (main_opts.crashtest != 0)
        main_crashtest(main_opts.crashtest);
    if (main_opts.selftest)
        main_selftest_start();
    main_loop();
}
