# qwall: top-level build. Each part has its own fragment under mk/.
# `make help` lists the targets.

.DEFAULT_GOAL := all
.PHONY: all check clean

include mk/common.mk
include mk/core.mk
-include mk/hosted.mk
-include mk/xen.mk
-include mk/bench.mk
-include mk/benchcore.mk
include mk/fuzz.mk
include mk/unit.mk

all: $(ALL_TARGETS)

# Fragments add their own targets to ALL_TARGETS and CHECK_EXTRA, and host
# unit-test binaries of their own (closing line "N passed, N failed") to
# EXTRA_UNIT_BINS so that check-unit runs them too.
# Each part runs even when an earlier one failed; the last line sums them.
check:
	@MAKE="$(MAKE)" tools/check-all.sh format-check check-unit \
	    core-freestanding $(CHECK_EXTRA)

# Every tracked C file must be as clang-format (.clang-format) leaves it.
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
.PHONY: format format-check
format:
	clang-format -i --style=file $(FORMAT_FILES)
format-check:
	@bad=0; for f in $(FORMAT_FILES); do \
	    clang-format --style=file "$$f" | cmp -s - "$$f" || \
	        { echo "format-check: $$f differs (make format)"; bad=1; }; \
	done; [ $$bad -eq 0 ] && echo "format-check: $(words $(FORMAT_FILES)) files clean"

.PHONY: help
help:
	@echo "make                  build/qwall-hosted and build/qdb-dom0"
	@echo "make demo             hosted demo in network namespaces (root)"
	@echo "make check            every suite below, one closing line"
	@echo "make check-unit       unit (plain + ASan/UBSan) and fuzz smoke"
	@echo "make format-check     C files as .clang-format leaves them"
	@echo "make core-freestanding  link core/ with no OS and no libc"
	@echo "make check-e2e        namespace scenarios (root)"
	@echo "make check-xen        boot qwall.xen on Xen under QEMU (root)"
	@echo "make xen              build the unikernel image qwall.xen"
	@echo "make fuzz             fuzz targets, FUZZ_SECONDS each (600)"
	@echo "make bench-core       instructions per packet -> bench/results/"
	@echo "make bench            hosted vs nftables -> bench/results/"
	@echo "make clean            remove build/ and qwall.xen"

clean:
	rm -rf build qwall.xen
