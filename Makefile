# One build configuration for binaries and tests, so `make test` after `make build` rebuilds nothing.
SWIFT_FLAGS := -c release -Xswiftc -enable-testing
BIN := .build/release
DATA ?= ../shared/datasets/scenes6

.PHONY: setup build test demo bench clean

setup:
	@scripts/setup

build:
	swift build $(SWIFT_FLAGS)

test: setup build
	swift test $(SWIFT_FLAGS) --disable-swift-testing

demo: setup build
	scripts/demo

bench: build
	tools/bench/compare.sh --no-build --backbone efficientnet_lite0

clean:
	rm -rf .build
