# tests/fuzz/fuzz_*.c: libFuzzer targets (clang, ASan + UBSan) over the
# core. Seed corpora live in tests/fuzz/corpus/<target>/ (committed).
# check-unit runs each for FUZZ_SMOKE_SECONDS; `make fuzz` runs longer.
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZ_CORE_SRCS := $(CORE_SRCS)
FUZZ_FLAGS := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all -Wall -Wextra -Werror \
              -D_DEFAULT_SOURCE
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_SECONDS ?= 600

$(B)/fuzz/%: tests/fuzz/%.c $(FUZZ_CORE_SRCS) $(wildcard core/*.h lib/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) $(INC) $< $(FUZZ_CORE_SRCS) -o $@

.PHONY: fuzz
fuzz: $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tools/run-suite.sh fuzz $(FUZZ_BINS)
