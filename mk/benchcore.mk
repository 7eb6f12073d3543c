# bench/core/: cost of the core pipeline per packet, without I/O:
# instructions counted by callgrind inside the measured call, and wall-clock
# ns per packet. `make bench-core` writes bench/results/core.md (machine,
# commit, a table, then one `key: value` line per figure).
BENCHCORE_N ?= 2000
BENCHCORE_NS_N ?= 200000

$(B)/bench/bench_core: bench/core/bench_core.c $(B)/libqwcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_HOST) $(INC) $< $(B)/libqwcore.a -o $@

.PHONY: bench-core
bench-core: $(B)/bench/bench_core
	BIN=$(B)/bench/bench_core N=$(BENCHCORE_N) NS_N=$(BENCHCORE_NS_N) \
	    OUT=bench/results/core.md bench/core/run.sh
