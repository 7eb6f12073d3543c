/*
 * mm.c: see mm.h.
 */
#include "mm.h"

#include <stdbool.h>

#include "libc.h"

static struct mm_region mm_regions[MM_MAP_MAX];
static unsigned mm_nregions;

static uint64_t *mm_bitmap; /* 1 = page in use */
static uintptr_t mm_base;   /* address of page 0 of the bitmap */
static size_t mm_pages, mm_free;
static uint64_t mm_end;

void mm_set_map(const struct mm_region *r, unsigned n)
{
    if (n > MM_MAP_MAX)
        n = MM_MAP_MAX;
    for (unsigned i = 0; i < n; i++)
        mm_regions[i] = r[i];
    mm_nregions = n;
}

unsigned mm_map(const struct mm_region **r)
{
    *r = mm_regions;
    return mm_nregions;
}

static bool mm_used(size_t i)
{
    return (mm_bitmap[i / 64] >> (i % 64)) & 1;
}

static void mm_mark(size_t i, bool used)
{
    if (used)
        mm_bitmap[i / 64] |= 1ull << (i % 64);
    else
        mm_bitmap[i / 64] &= ~(1ull << (i % 64));
}

int mm_init(uintptr_t image_end)
{
    uint64_t lo = (image_end + MM_PAGE - 1) & ~(uint64_t)(MM_PAGE - 1);
    uint64_t hi = 0;
    size_t bitmap_pages;

    /* Span of RAM above the image, below MM_RAM_LIMIT; holes
     * inside it are marked used. */
    for (unsigned i = 0; i < mm_nregions; i++) {
        uint64_t end = mm_regions[i].addr + mm_regions[i].size;

        if (mm_regions[i].type != 1 || end <= lo)
            continue;
        if (end > MM_RAM_LIMIT)
            end = MM_RAM_LIMIT;
        if (end > hi)
            hi = end & ~(uint64_t)(MM_PAGE - 1);
    }
    if (hi <= lo + 4 * MM_PAGE)
        return -12;
    mm_end = hi;
    mm_base = (uintptr_t)lo;
    mm_pages = (size_t)((hi - lo) / MM_PAGE);
    mm_bitmap = (uint64_t *)mm_base;
    bitmap_pages = ((mm_pages + 63) / 64 * 8 + MM_PAGE - 1) / MM_PAGE;
    memset(mm_bitmap, 0xff, bitmap_pages * MM_PAGE);
    mm_free = 0;
    for (size_t p = bitmap_pages; p < mm_pages; p++) {
        uint64_t a = lo + (uint64_t)p * MM_PAGE;
        bool ram = false;

        for (unsigned i = 0; i < mm_nregions && !ram; i++) {
            ram = mm_regions[i].type == 1 && a >= mm_regions[i].addr &&
                  a + MM_PAGE <= mm_regions[i].addr + mm_regions[i].size;
        }
        mm_mark(p, !ram);
        mm_free += ram;
    }
    return 0;
}

void *mm_alloc_pages(size_t n)
{
    size_t run = 0;

    if (n == 0 || n > mm_free)
        return NULL;
    for (size_t p = 0; p < mm_pages; p++) {
        run = mm_used(p) ? 0 : run + 1;
        if (run == n) {
            size_t first = p + 1 - n;
            void *mem = (void *)(mm_base + first * MM_PAGE);

            for (size_t i = first; i <= p; i++)
                mm_mark(i, true);
            mm_free -= n;
            memset(mem, 0, n * MM_PAGE);
            return mem;
        }
    }
    return NULL;
}

void mm_free_pages(void *mem, size_t n)
{
    uintptr_t a = (uintptr_t)mem;
    size_t first;

    if (mem == NULL || a < mm_base || (a - mm_base) % MM_PAGE != 0)
        return;
    first = (a - mm_base) / MM_PAGE;
    for (size_t i = first; i < first + n && i < mm_pages; i++) {
        if (mm_used(i)) {
            mm_mark(i, false);
            mm_free++;
        }
    }
}

size_t mm_total_pages(void)
{
    return mm_pages;
}

size_t mm_free_count(void)
{
    return mm_free;
}

uint64_t mm_ram_end(void)
{
    return mm_end;
}

int mm_pool_init(struct mm_pool *p, size_t size, size_t count)
{
    size_t sz = (size + 15) & ~(size_t)15;
    size_t pages = (sz * count + MM_PAGE - 1) / MM_PAGE;
    uint8_t *mem;

    if (sz < sizeof(void *) || count == 0)
        return -22;
    mem = mm_alloc_pages(pages);
    if (mem == NULL)
        return -12;
    p->free = NULL;
    for (size_t i = count; i-- > 0;) {
        void **obj = (void **)(mem + i * sz);

        *obj = p->free;
        p->free = obj;
    }
    p->size = sz;
    p->count = count;
    p->used = 0;
    p->fails = 0;
    return 0;
}

void *mm_pool_get(struct mm_pool *p)
{
    void **obj = p->free;

    if (obj == NULL) {
        p->fails++;
        return NULL;
    }
    p->free = *obj;
    p->used++;
    memset(obj, 0, p->size);
    return obj;
}

void mm_pool_put(struct mm_pool *p, void *obj)
{
    if (obj == NULL)
        return;
    *(void **)obj = p->free;
    p->free = obj;
    p->used--;
}
