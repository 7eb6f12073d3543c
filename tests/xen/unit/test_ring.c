/*
 * test_ring.c: shared-ring index arithmetic (xen/ring.h), including
 * wrapping of the free-running 32-bit indices and indices a hostile peer
 * made up.
 */
#include "ring.h"
#include "test.h"

TEST(used_and_space)
{
    CHECK_EQ(ring_used(10, 4), 6);
    CHECK_EQ(ring_space(10, 4, 1024), 1018);
    CHECK_EQ(ring_space(1028, 4, 1024), 0);
    CHECK(ring_sane(1028, 4, 1024));
}

TEST(wrapping_indices)
{
    uint32_t cons = 0xfffffff0u, prod = 0x10u; /* 32 bytes across 2^32 */

    CHECK(ring_sane(prod, cons, 1024));
    CHECK_EQ(ring_used(prod, cons), 32);
    CHECK_EQ(ring_space(prod, cons, 1024), 992);
}

TEST(insane_indices)
{
    /* prod behind cons, or more than a ring's worth ahead */
    CHECK(!ring_sane(4, 10, 1024));
    CHECK(!ring_sane(1029, 4, 1024));
    CHECK_EQ(ring_space(4, 10, 1024), 0);
    CHECK_EQ(ring_space(0x80000000u, 0, 2048), 0);
}

TEST(copy_across_the_end)
{
    uint8_t ring[16], out[8];
    const uint8_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8};

    memset(ring, 0, sizeof(ring));
    ring_copy_in(ring, 16, 0xfffffffcu, in, 8); /* offsets 12..15, 0..3 */
    CHECK_EQ(ring[12], 1);
    CHECK_EQ(ring[15], 4);
    CHECK_EQ(ring[0], 5);
    CHECK_EQ(ring[3], 8);
    CHECK_EQ(ring[4], 0);
    ring_copy_out(out, ring, 16, 0xfffffffcu, 8);
    CHECK_MEM(out, in, 8);
}

TEST(full_ring_round_trip)
{
    uint8_t ring[1024], big[1024], back[1024];
    uint32_t prod = 1000, cons = 1000;

    for (unsigned i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 13);
    CHECK_EQ(ring_space(prod, cons, 1024), 1024);
    ring_copy_in(ring, 1024, prod, big, 1024);
    prod += 1024;
    CHECK_EQ(ring_space(prod, cons, 1024), 0);
    ring_copy_out(back, ring, 1024, cons, ring_used(prod, cons));
    CHECK_MEM(back, big, 1024);
}

int main(void)
{
    RUN(used_and_space);
    RUN(wrapping_indices);
    RUN(insane_indices);
    RUN(copy_across_the_end);
    RUN(full_ring_round_trip);
    return test_summary();
}
