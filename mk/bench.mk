# bench/: `make bench` compares qwall-hosted with Linux kernel forwarding
# + nftables and a null forwarder using qwall-hosted's own I/O, in network
# namespaces (root). Results: bench/results/hosted.md.
BENCH_RUNS ?= 3
BENCH_SECS ?= 5

$(B)/bench/nullfwd: bench/hosted/nullfwd.c $(HOSTED_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(HOSTED_CFLAGS) $(INC) -o $@ $< $(HOSTED_COMMON)

$(B)/bench/tapfwd: bench/hosted/tapfwd.c
	@mkdir -p $(dir $@)
	$(CC) $(HOSTED_CFLAGS) $(INC) -o $@ $<

.PHONY: bench
bench: $(B)/qwall-hosted $(B)/qdb-dom0 $(B)/bench/nullfwd $(B)/bench/tapfwd
	B=$(B) RUNS=$(BENCH_RUNS) SECS=$(BENCH_SECS) bench/hosted/bench.sh
