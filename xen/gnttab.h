/*
 * gnttab.h: grant tables, version 1.
 *
 * Our table (GNTTAB_FRAMES frames of 512 entries) is mapped with
 * XENMEM_add_to_physmap into the unpopulated window above 4 GiB, so it
 * costs no RAM. Entries 0..7 are reserved for the toolstack.
 *
 * Revoking is refused while the peer still has the page mapped or is
 * copying (GTF_reading / GTF_writing): the caller must then keep the page
 * out of reuse and try again later, or the peer could keep access to
 * memory that has been handed to someone else.
 */
#ifndef QW_XEN_GNTTAB_H
#define QW_XEN_GNTTAB_H

#include <stdbool.h>
#include <stdint.h>

#include <xen/grant_table.h>

#define GNTTAB_FRAMES 4u
/* Guest-physical window for grant frames and foreign mappings (boot.S
 * identity-maps 4-5 GiB; nothing of ours is populated there). */
#define GNTTAB_WINDOW 0x100000000ull

int gnttab_init(void);

/* Grant `domid` access to our page at guest frame `gfn`. Returns the
 * reference or -ENOSPC when every entry is in use. */
int gnttab_grant(uint16_t domid, uint64_t gfn, bool readonly);

/* End a grant: 0, -EBUSY if the peer still maps/copies it (the entry
 * stays valid and the page must not be reused), -EINVAL for a reference
 * we did not hand out. */
int gnttab_revoke(uint32_t ref);

/* One side of a copy: a grant of `domid`, or our own frame. */
struct gnttab_side {
    bool is_ref;
    uint32_t ref;    /* when is_ref */
    uint16_t domid;  /* when is_ref */
    uint64_t gfn;    /* when !is_ref */
    uint16_t offset; /* offset + len must stay within the page */
};

/* Copy len bytes; 0 or -errno (-EINVAL if a side crosses its page, the
 * negative GNTST_* status otherwise). */
int gnttab_copy(const struct gnttab_side *src, const struct gnttab_side *dst,
                uint16_t len);

/*
 * Map a page another domain granted us into the window above our grant
 * frames (GNTTAB_MAP_SLOTS pages; never over RAM, which would replace our
 * frame). Returns the address and sets *handle, or NULL (status in *err:
 * -ENOSPC when the window is full, a negative GNTST_* otherwise).
 */
void *gnttab_map(uint16_t domid, uint32_t ref, bool readonly, uint32_t *handle,
                 int *err);

/* Undo gnttab_map; 0 or a negative GNTST_* (the slot stays reserved on
 * failure: the page may still be mapped). */
int gnttab_unmap(void *addr, uint32_t handle);

#define GNTTAB_MAP_SLOTS 4096u

/* Entries in use / total. */
unsigned gnttab_used(void);
unsigned gnttab_capacity(void);

#endif /* QW_XEN_GNTTAB_H */
