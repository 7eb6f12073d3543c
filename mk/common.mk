# Shared compiler settings.
CC       ?= gcc
CLANG    ?= clang
B        := build
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
            -Wwrite-strings -Wstrict-prototypes -Wmissing-prototypes
CSTD     := -std=c11
OPT      ?= -O2 -g
CFLAGS_HOST := $(CSTD) $(WARN) $(OPT) -D_DEFAULT_SOURCE -MMD -MP
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
INC      := -Icore -Ilib
