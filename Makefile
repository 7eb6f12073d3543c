# qwall: top-level build. Each part has its own fragment under mk/.
#
#   make            build the hosted firewall and tools
#   make check      everything: unit (plain + ASan/UBSan), fuzz smoke,
#                   freestanding core, end-to-end namespaces, real Xen
#   make demo       the hosted demo in network namespaces (needs root)
#   make xen        the PVH unikernel image qwall.xen
#   make bench      benchmarks, results under bench/results/

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
	@MAKE="$(MAKE)" tools/check-all.sh check-unit core-freestanding \
	    $(CHECK_EXTRA)

clean:
	rm -rf build qwall.xen
