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

# The same with ASan/UBSan over the runtime and the core: the end-to-end
# suite runs it with E2E_SAN=1 (tests/e2e/README.md).
$(B)/hosted-san/%.o: hosted/%.c
	@mkdir -p $(dir $@)
	$(CC) $(HOSTED_CFLAGS) $(SANITIZE) $(INC) -c $< -o $@

HOSTED_SAN_OBJS := $(B)/hosted-san/main.o $(B)/hosted-san/ring.o \
                   $(B)/hosted-san/pcap.o

$(B)/qwall-hosted-san: $(HOSTED_SAN_OBJS) $(B)/libqwcore-san.a
	$(CC) $(OPT) $(SANITIZE) -o $@ $(HOSTED_SAN_OBJS) $(B)/libqwcore-san.a

$(B)/qdb-dom0: $(B)/hosted/qdb_dom0.o $(B)/libqwcore.a
	$(CC) $(OPT) -o $@ $(B)/hosted/qdb_dom0.o $(B)/libqwcore.a

# qwall-hosted needs the pipeline (core/fw.c) to link.
ALL_TARGETS += $(B)/qdb-dom0 $(if $(wildcard core/fw.c),$(B)/qwall-hosted)

.PHONY: hosted demo check-e2e check-e2e-san
hosted: $(B)/qwall-hosted $(B)/qdb-dom0

# The demo installs what it lacks (Debian 12, root), builds, runs and
# tears down; see hosted/demo/demo.sh.
demo:
	B=$(B) hosted/demo/demo.sh

check-e2e: $(B)/qwall-hosted $(B)/qdb-dom0
	B=$(B) tests/e2e/run.sh

# The suite against the ASan/UBSan build (not part of `make check`: it
# repeats the same scenarios).
check-e2e-san: $(B)/qwall-hosted-san $(B)/qdb-dom0
	B=$(B) E2E_SAN=1 tests/e2e/run.sh

CHECK_EXTRA += check-e2e

-include $(B)/hosted/*.d $(B)/hosted-san/*.d
