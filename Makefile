# The two commands of the README: `make demo` (set up, build, run the main job) and `make test`.
SWIFT ?= swift
BIN := .build/release/dipviz

.PHONY: setup build demo test bench fixtures clean

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build -c release

# The main job: for now the engine benchmark.
demo: build
	$(BIN) bench

bench: build
	$(BIN) bench

test: setup
	$(SWIFT) test

# Regenerates the committed reference numbers (needs numpy only).
fixtures:
	python3 Tests/DipvizTensorTests/Fixtures/make_fixtures.py

clean:
	rm -rf .build
