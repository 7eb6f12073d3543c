# core/: the portable firewall core, built as a static archive for the
# hosted platform and the tests (plain and sanitized), and once
# freestanding to prove it needs nothing from an OS.
CORE_SRCS := $(sort $(wildcard core/*.c)) lib/fmt.c
CORE_OBJS := $(CORE_SRCS:%.c=$(B)/plain/%.o)
CORE_SAN_OBJS := $(CORE_SRCS:%.c=$(B)/san/%.o)

$(B)/plain/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_HOST) $(INC) -c $< -o $@

$(B)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_HOST) $(SANITIZE) $(INC) -c $< -o $@

$(B)/libqwcore.a: $(CORE_OBJS)
	rm -f $@ && ar rcs $@ $^

$(B)/libqwcore-san.a: $(CORE_SAN_OBJS)
	rm -f $@ && ar rcs $@ $^

# Freestanding proof: compile core/ with no OS headers and no libc, link it
# with only lib/string.c (mem*/str*) and lib/fmt.c, refusing undefined
# symbols. The entry point is qw_create so that everything reachable from
# the public API is linked.
FREE_CFLAGS := $(CSTD) $(WARN) -O2 -ffreestanding -nostdlib -nostdinc \
               -isystem $(shell $(CC) -print-file-name=include) \
               -fno-stack-protector -fno-pic -mno-red-zone
FREE_OBJS := $(CORE_SRCS:%.c=$(B)/free/%.o) $(B)/free/lib/string.o

$(B)/free/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(FREE_CFLAGS) $(INC) -c $< -o $@

.PHONY: core-freestanding
core-freestanding: $(FREE_OBJS)
	$(CC) $(FREE_CFLAGS) -static -no-pie -Wl,--no-undefined -Wl,-e,qw_create \
	    -Wl,--gc-sections -o $(B)/core-freestanding.elf $(FREE_OBJS) -lgcc
	@echo "core-freestanding: core/ links with no OS and no libc" \
	    "($$(size -A $(B)/core-freestanding.elf | awk '/^\.text/{print $$2}') bytes of text)"

-include $(CORE_OBJS:.o=.d) $(CORE_SAN_OBJS:.o=.d)
