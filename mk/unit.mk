# tests/unit/test_*.c: one binary per file, linked against the core
# archive; built plain and with ASan/UBSan. check-unit runs both, then the
# fuzz smoke run, and prints one closing line for all of it.
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/unit/%)
UNIT_SAN_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/unit-san/%)

$(B)/unit/%: tests/unit/%.c $(B)/libqwcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_HOST) $(INC) -Itests/unit $< $(B)/libqwcore.a -o $@

$(B)/unit-san/%: tests/unit/%.c $(B)/libqwcore-san.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_HOST) $(SANITIZE) $(INC) -Itests/unit $< \
	    $(B)/libqwcore-san.a -o $@

.PHONY: unit unit-san check-unit
unit: $(UNIT_BINS)
unit-san: $(UNIT_SAN_BINS)

# T=name runs one test binary: make unit-one T=test_rules
.PHONY: unit-one
unit-one: $(B)/unit/$(T) $(B)/unit-san/$(T)
	$(B)/unit/$(T) && $(B)/unit-san/$(T)

check-unit: $(UNIT_BINS) $(UNIT_SAN_BINS) $(FUZZ_BINS) $(EXTRA_UNIT_BINS)
	tools/run-suite.sh unit $(UNIT_BINS) $(EXTRA_UNIT_BINS) -- \
	    unit-asan $(UNIT_SAN_BINS) -- \
	    fuzz-smoke $(FUZZ_BINS)

-include $(UNIT_BINS:=.d) $(UNIT_SAN_BINS:=.d)
