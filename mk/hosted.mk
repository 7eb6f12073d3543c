# hosted/: the Linux platform. qwall-hosted (the core over AF_PACKET rings
# in a network namespace) and qdb-dom0 (dom0's side of QubesDB over a Unix
# socket), plus `make demo` and `make check-e2e` (both need root).
HOSTED_CFLAGS := $(CFLAGS_HOST) -D_GNU_SOURCE -Ihosted
HOSTED_COMMON := $(B)/hosted/ring.o $(B)/hosted/pcap.o

$(B)/hosted/%.o: hosted/%.c
	@mkdir -p $(dir $@)
	$(CC) $(HOSTED_CFLAGS) $(INC) -c $< -o $@

$(B)/qwall-hosted: $(B)/hosted/main.o $(HOSTED_COMMON) $(B)/libqwcore.a
	$(CC) $(OPT) -o $@ $(B)/hosted/main.o $(HOSTED_COMMON) $(B)/libqwcore.a

$(B)/qdb-dom0: $(B)/hosted/qdb_dom0.o $(B)/libqwcore.a
	$(CC) $(OPT) -o $@ $(B)/hosted/qdb_dom0.o $(B)/libqwcore.a

# qwall-hosted needs the pipeline (core/fw.c) to link.
ALL_TARGETS += $(B)/qdb-dom0 $(if $(wildcard core/fw.c),$(B)/qwall-hosted)

.PHONY: hosted demo check-e2e
hosted: $(B)/qwall-hosted $(B)/qdb-dom0

# The demo installs what it lacks (Debian 12, root), builds, runs and
# tears down; see hosted/demo/demo.sh.
demo:
	hosted/demo/demo.sh

check-e2e: $(B)/qwall-hosted $(B)/qdb-dom0
	B=$(B) tests/e2e/run.sh

CHECK_EXTRA += check-e2e

-include $(B)/hosted/*.d
