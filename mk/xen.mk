# xen/: the PVH runtime, linked with a freestanding copy of core/ into
# qwall.xen (Qubes boots it from /var/lib/qubes/vm-kernels/qwall/vmlinuz).
#
#   make xen          build qwall.xen and print its size
#   make check-xen    boot it on Debian's Xen 4.17 under QEMU (tests/xen/)
#
# Host unit tests of xen/ (xenstore codec and client, command line, ring
# arithmetic, page allocator, formatter) are tests/xen/unit/test_*.c,
# built with ASan/UBSan; check-unit runs them.
XEN_ASM := xen/boot.S
XEN_SRCS := $(sort $(wildcard xen/*.c)) lib/string.c lib/fmt.c
XEN_CORE_SRCS := $(filter-out lib/fmt.c,$(CORE_SRCS))
XEN_GCC_INC := $(shell $(CC) -print-file-name=include)
XEN_INC_DIR := /usr/include/xen
# The runtime proper: no SSE anywhere (the upcall stub saves only integer
# registers), no red zone (interrupts land on the same stack).
XEN_CFLAGS := $(CSTD) $(WARN) -O2 -g -ffreestanding -nostdlib -nostdinc \
              -isystem $(XEN_GCC_INC) -isystem $(B)/xen/inc \
              -D__XEN_INTERFACE_VERSION__=0x00040e00 \
              -mno-red-zone -mgeneral-regs-only -fno-stack-protector \
              -fno-pic -fno-pie -fno-asynchronous-unwind-tables \
              -fno-omit-frame-pointer -MMD -MP -Ixen $(INC)
# The core: the project's freestanding flags. It may use SSE (the boot
# code enables it); it never runs in interrupt context.
XEN_CORE_CFLAGS := $(FREE_CFLAGS) -fno-pie -fno-asynchronous-unwind-tables \
                   -MMD -MP
# The core is linked in once the pipeline (core/fw.c) provides qw_create;
# XEN_WITH_CORE=0 builds the runtime alone (runtime work while core/ is
# being edited).
XEN_WITH_CORE ?= $(if $(shell grep -ls '^struct qw \*qw_create' core/*.c),1,0)
XEN_OBJS := $(XEN_ASM:%.S=$(B)/xen/%.o) $(XEN_SRCS:%.c=$(B)/xen/%.o)
ifeq ($(XEN_WITH_CORE),1)
XEN_CFLAGS += -DQW_XEN_HAVE_CORE
XEN_CORE_OBJS := $(XEN_CORE_SRCS:%.c=$(B)/xen/core-free/%.o)
else
XEN_CORE_OBJS :=
endif

# Objects depend on the flags they were built with (XEN_WITH_CORE flips
# a define): the stamp changes only when the flags do.
XEN_STAMP := $(B)/xen/cflags.stamp
ifneq ($(filter xen qwall.xen check-xen check,$(MAKECMDGOALS)),)
$(shell mkdir -p $(B)/xen && echo '$(XEN_CFLAGS) | $(XEN_CORE_CFLAGS)' | \
    cmp -s - $(XEN_STAMP) || \
    echo '$(XEN_CFLAGS) | $(XEN_CORE_CFLAGS)' >$(XEN_STAMP))
endif
$(XEN_STAMP):
	@mkdir -p $(dir $@)
	@echo '$(XEN_CFLAGS) | $(XEN_CORE_CFLAGS)' >$@

$(B)/xen/inc/xen:
	@mkdir -p $(dir $@)
	@ln -sfn $(XEN_INC_DIR) $@

$(B)/xen/%.o: %.S $(XEN_STAMP) | $(B)/xen/inc/xen
	@mkdir -p $(dir $@)
	@echo "  CC (xen) $<"
	@$(CC) $(XEN_CFLAGS) -c $< -o $@

$(B)/xen/%.o: %.c $(XEN_STAMP) | $(B)/xen/inc/xen
	@mkdir -p $(dir $@)
	@echo "  CC (xen) $<"
	@$(CC) $(XEN_CFLAGS) -c $< -o $@

$(B)/xen/core-free/%.o: %.c $(XEN_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC (xen core) $<"
	@$(CC) $(XEN_CORE_CFLAGS) $(INC) -c $< -o $@

$(B)/xen/qwall.elf: $(XEN_OBJS) $(XEN_CORE_OBJS) xen/xen.ld
	@echo "  LD $@ ($(if $(filter 1,$(XEN_WITH_CORE)),with,without) the firewall core)"
	@$(CC) -nostdlib -static -no-pie -Wl,-T,xen/xen.ld -Wl,--build-id=none \
	    -Wl,-z,max-page-size=4096 -Wl,--gc-sections -Wl,--no-undefined \
	    -o $@ $(XEN_OBJS) $(XEN_CORE_OBJS) -lgcc

qwall.xen: $(B)/xen/qwall.elf
	@strip -o $@ $<

.PHONY: xen check-xen
xen: qwall.xen
	@echo "xen: qwall.xen $$(stat -c %s qwall.xen) bytes" \
	    "($$(size -A qwall.xen | awk '/^\.text /{t=$$2} /^\.bss /{b=$$2} \
	    END{printf "text %d, bss %d", t, b}'))"

check-xen: qwall.xen $(B)/xen/gnthelper
	tests/xen/check-xen.sh $(B)/xen-lab qwall.xen $(B)/xen/gnthelper \
	    $(B)/xen-logs

# dom0 side of the grant round trip, static so the initramfs needs no
# extra libraries.
$(B)/xen/gnthelper: tests/xen/gnthelper.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -static -o $@ $< \
	    -lxenevtchn -lxengnttab -lxenstore -lxentoolcore -lxentoollog \
	    -lpthread

# Host unit tests of xen/ code (modules without hypercalls; xs.c with stubs).
XEN_UNIT_SRCS := $(sort $(wildcard tests/xen/unit/test_*.c))
XEN_UNIT_BINS := $(XEN_UNIT_SRCS:tests/xen/unit/%.c=$(B)/xen-unit/%)
XEN_PURE_SRCS := xen/xs_msg.c xen/cmdline.c xen/mm.c lib/fmt.c

# test_xs_client also compiles xen/xs.c (its neighbours are stubs in the
# test) and so sees Xen's headers.
XEN_UNIT_EXTRA_test_xs_client := xen/xs.c

$(B)/xen-unit/%: tests/xen/unit/%.c $(XEN_PURE_SRCS) xen/xs.c \
                 $(wildcard xen/*.h) | $(B)/xen/inc/xen
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_HOST) $(SANITIZE) $(INC) -Ixen -Itests/unit \
	    -isystem $(B)/xen/inc -D__XEN_INTERFACE_VERSION__=0x00040e00 \
	    -DMM_RAM_LIMIT=0xffffffffffffffffull $< $(XEN_PURE_SRCS) \
	    $(XEN_UNIT_EXTRA_$*) -o $@

EXTRA_UNIT_BINS += $(XEN_UNIT_BINS)
CHECK_EXTRA += check-xen

-include $(XEN_OBJS:.o=.d) $(XEN_CORE_OBJS:.o=.d)
