# One build configuration for binaries and tests, so `make test` after `make build` rebuilds nothing.
SWIFT_FLAGS := -c release -Xswiftc -enable-testing
BIN := .build/release
DATA ?= ../shared/datasets/scenes6

.PHONY: setup build test demo bench clean

setup:
	@scripts/setup

build:
	swift build $(SWIFT_FLAGS)

# The backbone and command-line tests run twice: on this CPU, then as one without AVX-512 would run
# them (oneDNN capped at AVX2, as on Haswell to Zen 3: no bf16 convolutions, no VNNI, 8-channel blocks);
# the int8 tests a third time on AVX-512 kernels without VNNI.
test: setup build
	swift test $(SWIFT_FLAGS) --disable-swift-testing
	@echo "== again with ONEDNN_MAX_CPU_ISA=AVX2 (a CPU without AVX-512): the backbone and command-line tests"
	ONEDNN_MAX_CPU_ISA=AVX2 swift test $(SWIFT_FLAGS) --disable-swift-testing --skip-build --filter '^(BackboneTests|CLITests)\.'
	@echo "== and the int8 tests with ONEDNN_MAX_CPU_ISA=AVX512_CORE (AVX-512 without VNNI, Skylake-X)"
	ONEDNN_MAX_CPU_ISA=AVX512_CORE swift test $(SWIFT_FLAGS) --disable-swift-testing --skip-build --filter '^BackboneTests\.Int8Tests'

demo: setup build
	scripts/demo

bench: build
	tools/bench/compare.sh --no-build --backbone efficientnet_lite0

clean:
	rm -rf .build
