/*
 * mm.h: memory map and page allocator.
 *
 * The RAM that the memory map gives us above the image is managed as
 * 4 KiB pages with a bitmap (stored in the first pages of that RAM).
 * Allocation is first-fit for n contiguous pages; pages are zeroed on
 * allocation. Fixed pools (mm_pool_*) carve equal objects out of pages
 * once, at start-up, so the steady state never allocates.
 */
#ifndef QW_XEN_MM_H
#define QW_XEN_MM_H

#include <stddef.h>
#include <stdint.h>

#define MM_PAGE 4096u
/* RAM above this is not identity-mapped (boot.S maps 0-4 GiB; 4-5 GiB is
 * the grant window). Host unit tests lift it, their buffers live high. */
#ifndef MM_RAM_LIMIT
#define MM_RAM_LIMIT 0x100000000ull
#endif
#define MM_MAP_MAX 32u

struct mm_region {
    uint64_t addr, size;
    uint32_t type; /* 1 = RAM */
};

/* Copy the start_info memory map (call before anything allocates). */
void mm_set_map(const struct mm_region *r, unsigned n);
unsigned mm_map(const struct mm_region **r);

/* Set up the allocator over RAM above `image_end`. 0 or -ENOMEM. */
int mm_init(uintptr_t image_end);

void *mm_alloc_pages(size_t n);
void mm_free_pages(void *p, size_t n);

size_t mm_total_pages(void);
size_t mm_free_count(void);
/* Highest RAM address + 1 (below MM_RAM_LIMIT). */
uint64_t mm_ram_end(void);

/* A pool of `count` objects of `size` bytes (rounded up to 16). */
struct mm_pool {
    void *free;
    size_t size, count, used, fails;
};
int mm_pool_init(struct mm_pool *p, size_t size, size_t count);
void *mm_pool_get(struct mm_pool *p); /* NULL when empty (counted) */
void mm_pool_put(struct mm_pool *p, void *obj);

#endif /* QW_XEN_MM_H */
