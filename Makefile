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
include mk/unit.mk
include mk/fuzz.mk
-include mk/hosted.mk
-include mk/xen.mk
-include mk/bench.mk

all: $(ALL_TARGETS)

check: check-unit core-freestanding $(CHECK_EXTRA)
	@echo "make check: all parts passed"

clean:
	rm -rf build qwall.xen
