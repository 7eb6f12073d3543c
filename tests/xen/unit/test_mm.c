/*
 * test_mm.c: the Xen runtime's page allocator and pools (xen/mm.c), run
 * over a host buffer described by a made-up memory map.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "mm.h"
#include "test.h"

#define ARENA_PAGES 64

static uint8_t *arena_mem;

/* A map with RAM over the arena, a 4-page hole in its middle, and
 * entries that must be ignored (reserved, below the image). */
static uintptr_t arena_setup(bool hole)
{
    uintptr_t base;
    struct mm_region map[4];
    unsigned n = 0;

    if (arena_mem == NULL)
        arena_mem = aligned_alloc(MM_PAGE, (ARENA_PAGES + 1) * MM_PAGE);
    base = ((uintptr_t)arena_mem + MM_PAGE - 1) & ~(uintptr_t)(MM_PAGE - 1);
    map[n++] = (struct mm_region){0, 0x9f000, 1};
    if (hole) {
        map[n++] = (struct mm_region){base, 30 * MM_PAGE, 1};
        map[n++] = (struct mm_region){base + 34 * MM_PAGE, 30 * MM_PAGE, 1};
    } else {
        map[n++] = (struct mm_region){base, ARENA_PAGES * MM_PAGE, 1};
    }
    map[n++] = (struct mm_region){base + 10 * MM_PAGE, MM_PAGE, 2};
    mm_set_map(map, n);
    return base;
}

TEST(init_counts_pages)
{
    uintptr_t base = arena_setup(false);

    /* "image end" in the middle of a page: rounded up */
    CHECK_EQ(mm_init(base + 100), 0);
    CHECK_EQ(mm_total_pages(), ARENA_PAGES - 1);
    /* one page holds the bitmap */
    CHECK_EQ(mm_free_count(), ARENA_PAGES - 2);
    CHECK_EQ(mm_ram_end(), base + ARENA_PAGES * MM_PAGE);
}

TEST(alloc_free_contiguous)
{
    uintptr_t base = arena_setup(false);
    uint8_t *a, *b, *c;

    CHECK_EQ(mm_init(base), 0);
    a = mm_alloc_pages(1);
    b = mm_alloc_pages(3);
    CHECK(a != NULL && b != NULL);
    CHECK(((uintptr_t)a & (MM_PAGE - 1)) == 0);
    CHECK(b >= a + MM_PAGE || b + 3 * MM_PAGE <= a);
    memset(b, 0xaa, 3 * MM_PAGE);
    CHECK_EQ(mm_free_count(), ARENA_PAGES - 1 - 4);
    mm_free_pages(b, 3);
    CHECK_EQ(mm_free_count(), ARENA_PAGES - 1 - 1);
    c = mm_alloc_pages(2); /* first fit: reuses b's place, zeroed */
    CHECK(c == b);
    CHECK_EQ(c[0], 0);
    CHECK_EQ(c[2 * MM_PAGE - 1], 0);
    /* double free and foreign pointers are ignored */
    mm_free_pages(a, 1);
    mm_free_pages(a, 1);
    mm_free_pages(a + 1, 1);
    CHECK_EQ(mm_free_count(), ARENA_PAGES - 1 - 2);
}

TEST(exhaustion_and_holes)
{
    uintptr_t base = arena_setup(true);
    void *p;

    CHECK_EQ(mm_init(base), 0);
    /* 60 RAM pages minus the bitmap page; the 4-page hole is never used */
    CHECK_EQ(mm_free_count(), 59);
    CHECK(mm_alloc_pages(31) == NULL); /* no run that long */
    p = mm_alloc_pages(30);
    CHECK(p != NULL);
    CHECK((uintptr_t)p >= base + 34 * MM_PAGE);
    CHECK(mm_alloc_pages(30) == NULL);
    CHECK(mm_alloc_pages(29) != NULL);
    CHECK_EQ(mm_free_count(), 0);
    CHECK(mm_alloc_pages(1) == NULL);
    CHECK(mm_alloc_pages(0) == NULL);
}

TEST(too_little_ram)
{
    struct mm_region map[1] = {{0x100000, 2 * MM_PAGE, 1}};

    mm_set_map(map, 1);
    CHECK_EQ(mm_init(0x100000), -12);
}

TEST(pools)
{
    uintptr_t base = arena_setup(false);
    struct mm_pool pool;
    void *objs[5];

    CHECK_EQ(mm_init(base), 0);
    CHECK_EQ(mm_pool_init(&pool, 1000, 4), 0);
    CHECK_EQ(pool.size, 1008);
    for (int i = 0; i < 4; i++) {
        objs[i] = mm_pool_get(&pool);
        CHECK(objs[i] != NULL);
    }
    CHECK((uint8_t *)objs[1] - (uint8_t *)objs[0] == 1008);
    objs[4] = mm_pool_get(&pool);
    CHECK(objs[4] == NULL);
    CHECK_EQ(pool.fails, 1);
    CHECK_EQ(pool.used, 4);
    memset(objs[2], 0x55, 1000);
    mm_pool_put(&pool, objs[2]);
    CHECK(mm_pool_get(&pool) == objs[2]);
    CHECK_EQ(((uint8_t *)objs[2])[999], 0); /* handed out zeroed */
    CHECK_EQ(mm_pool_init(&pool, 4, 0), -22);
    CHECK_EQ(mm_pool_init(&pool, 4096, 1000), -12);
}

int main(void)
{
    RUN(init_counts_pages);
    RUN(alloc_free_contiguous);
    RUN(exhaustion_and_holes);
    RUN(too_little_ram);
    RUN(pools);
    free(arena_mem);
    return test_summary();
}
