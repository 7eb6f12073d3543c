/*
 * gnttab.c: see gnttab.h.
 */
#include "gnttab.h"

#include <stddef.h>

#include "hv.h"

#define GNTTAB_ENTRIES (GNTTAB_FRAMES * 4096u / sizeof(grant_entry_v1_t))
#define GNTTAB_NONE 0xffffffffu

static grant_entry_v1_t *gnttab_table;
static uint32_t gnttab_next[GNTTAB_ENTRIES]; /* free list links */
static uint32_t gnttab_free_head = GNTTAB_NONE;
static unsigned gnttab_in_use;
static uint8_t gnttab_ours[GNTTAB_ENTRIES];          /* handed out by us */
static uint64_t gnttab_slots[GNTTAB_MAP_SLOTS / 64]; /* window pages used */

/* First window page for foreign mappings: right after our frames. */
#define GNTTAB_MAP_BASE (GNTTAB_WINDOW + GNTTAB_FRAMES * 4096ull)

int gnttab_init(void)
{
    struct gnttab_query_size q = {.dom = DOMID_SELF};
    struct gnttab_set_version v = {.version = 1};
    long rc;

    rc = hv_grant_table_op(GNTTABOP_query_size, &q, 1);
    if (rc < 0 || q.status != GNTST_okay)
        return rc < 0 ? (int)rc : -5;
    if (q.max_nr_frames < GNTTAB_FRAMES)
        return -28;
    /* v1 is the default; say so in case the toolstack chose otherwise. */
    hv_grant_table_op(GNTTABOP_set_version, &v, 1);
    for (unsigned i = 0; i < GNTTAB_FRAMES; i++) {
        struct xen_add_to_physmap xatp = {
            .domid = DOMID_SELF,
            .space = XENMAPSPACE_grant_table,
            .idx = i,
            .gpfn = (GNTTAB_WINDOW >> 12) + i,
        };

        rc = hv_memory_op(XENMEM_add_to_physmap, &xatp);
        if (rc < 0)
            return (int)rc;
    }
    gnttab_table = (grant_entry_v1_t *)(uintptr_t)GNTTAB_WINDOW;
    for (uint32_t r = GNTTAB_ENTRIES; r-- > GNTTAB_NR_RESERVED_ENTRIES;) {
        gnttab_next[r] = gnttab_free_head;
        gnttab_free_head = r;
    }
    return 0;
}

int gnttab_grant(uint16_t domid, uint64_t gfn, bool readonly)
{
    uint32_t ref = gnttab_free_head;
    grant_entry_v1_t *e;

    if (ref == GNTTAB_NONE || gfn > UINT32_MAX)
        return -28;
    gnttab_free_head = gnttab_next[ref];
    e = &gnttab_table[ref];
    e->domid = domid;
    e->frame = (uint32_t)gfn;
    /* The peer may use the entry as soon as flags say so: frame and
     * domid must be visible first. */
    hv_wmb();
    __atomic_store_n(
        &e->flags,
        (uint16_t)(GTF_permit_access | (readonly ? GTF_readonly : 0)),
        __ATOMIC_RELEASE);
    gnttab_ours[ref] = 1;
    gnttab_in_use++;
    return (int)ref;
}

int gnttab_revoke(uint32_t ref)
{
    grant_entry_v1_t *e;
    uint16_t flags;

    if (ref >= GNTTAB_ENTRIES || !gnttab_ours[ref])
        return -22;
    e = &gnttab_table[ref];
    flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
    do {
        if (flags & (GTF_reading | GTF_writing))
            return -16;
        /* Xen sets the reading/writing bits with a locked cmpxchg as it
         * maps: only a cmpxchg from a state without them is safe. */
    } while (!__atomic_compare_exchange_n(&e->flags, &flags, 0, false,
                                          __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE));
    gnttab_ours[ref] = 0;
    gnttab_next[ref] = gnttab_free_head;
    gnttab_free_head = ref;
    gnttab_in_use--;
    return 0;
}

static void gnttab_side(const struct gnttab_side *s, struct gnttab_copy_ptr *p,
                        uint16_t *flags, uint16_t flag)
{
    if (s->is_ref) {
        p->u.ref = s->ref;
        p->domid = s->domid;
        *flags |= flag;
    } else {
        p->u.gmfn = s->gfn;
        p->domid = DOMID_SELF;
    }
    p->offset = s->offset;
}

int gnttab_copy(const struct gnttab_side *src, const struct gnttab_side *dst,
                uint16_t len)
{
    struct gnttab_copy op = {0};
    long rc;

    if ((uint32_t)src->offset + len > 4096 ||
        (uint32_t)dst->offset + len > 4096)
        return -22;
    gnttab_side(src, &op.source, &op.flags, GNTCOPY_source_gref);
    gnttab_side(dst, &op.dest, &op.flags, GNTCOPY_dest_gref);
    op.len = len;
    rc = hv_grant_table_op(GNTTABOP_copy, &op, 1);
    if (rc < 0)
        return (int)rc;
    return op.status == GNTST_okay ? 0 : op.status;
}

void *gnttab_map(uint16_t domid, uint32_t ref, bool readonly, uint32_t *handle,
                 int *err)
{
    struct gnttab_map_grant_ref op = {0};
    unsigned slot = GNTTAB_MAP_SLOTS;
    long rc;

    for (unsigned w = 0; w < GNTTAB_MAP_SLOTS / 64 && slot == GNTTAB_MAP_SLOTS;
         w++) {
        if (gnttab_slots[w] != ~0ull)
            slot = w * 64 + (unsigned)__builtin_ctzll(~gnttab_slots[w]);
    }
    if (slot == GNTTAB_MAP_SLOTS) {
        *err = -28;
        return NULL;
    }
    op.host_addr = GNTTAB_MAP_BASE + (uint64_t)slot * 4096;
    op.flags = GNTMAP_host_map | (readonly ? GNTMAP_readonly : 0);
    op.ref = ref;
    op.dom = domid;
    rc = hv_grant_table_op(GNTTABOP_map_grant_ref, &op, 1);
    if (rc < 0 || op.status != GNTST_okay) {
        *err = rc < 0 ? (int)rc : op.status;
        return NULL;
    }
    gnttab_slots[slot / 64] |= 1ull << (slot % 64);
    *handle = op.handle;
    *err = 0;
    return (void *)(uintptr_t)op.host_addr;
}

int gnttab_unmap(void *addr, uint32_t handle)
{
    struct gnttab_unmap_grant_ref op = {0};
    uint64_t a = (uint64_t)(uintptr_t)addr;
    unsigned slot;
    long rc;

    if (a < GNTTAB_MAP_BASE || (a - GNTTAB_MAP_BASE) % 4096 != 0 ||
        (a - GNTTAB_MAP_BASE) / 4096 >= GNTTAB_MAP_SLOTS)
        return -22;
    slot = (unsigned)((a - GNTTAB_MAP_BASE) / 4096);
    op.host_addr = a;
    op.handle = handle;
    rc = hv_grant_table_op(GNTTABOP_unmap_grant_ref, &op, 1);
    if (rc < 0 || op.status != GNTST_okay)
        return rc < 0 ? (int)rc : op.status;
    gnttab_slots[slot / 64] &= ~(1ull << (slot % 64));
    return 0;
}

unsigned gnttab_used(void)
{
    return gnttab_in_use;
}

unsigned gnttab_capacity(void)
{
    return (unsigned)(GNTTAB_ENTRIES - GNTTAB_NR_RESERVED_ENTRIES);
}
