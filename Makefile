# Entry points of the CoAMD runtime. Every target does its own set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/bandai-namco
DATASET ?= data/processed
JOBS ?= 2

.PHONY: unity-package setup setup-ray setup-native native data demo test test-python bench train ablation clean help

help:
	@echo "make setup   virtualenv in .venv (torch==2.13.0 CPU, the coamd package, test tools)"
	@echo "make data    build the processed dataset from DATA=$(DATA) into $(DATASET)"
	@echo "make demo    the main job, end to end"
	@echo "make test    the whole test suite (does its own set-up)"
	@echo "make setup-ray  the optional Ray Serve extra (coamd deploy; make test installs it)"
	@echo "make native  engine clients: Debian packages (gRPC C++, GoogleTest, Mono) + CMake build in build/"
	@echo "make unity-package  the Unity package with its Linux x86_64 native plugin: dist/com.coamd.motionstream-*.tgz"
	@echo "make bench   latency benchmarks (JSON + markdown under bench_out/)"
	@echo "make train   train the default (small) preset end to end into TRAIN_OUT=runs/checkpoint"
	@echo "make ablation  modality-ablation variants (J, J+B, J+M, J+B+M) into runs/ablation/ for coamd eval"

$(VENV)/.stamp: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.stamp

# Optional extra `ray` (Ray Serve, for `coamd deploy` and tests/test_ray_cluster.py); checks that it
# left the pinned torch alone. Where Ray cannot be installed the cluster tests skip, saying so.
$(VENV)/.ray-stamp: $(VENV)/.stamp pyproject.toml
	@if $(PY) -m pip install -q -e '.[test,ray]'; then touch $@; else \
	  echo "warning: the ray extra could not be installed; tests/test_ray_cluster.py will be skipped"; fi
	$(PY) -c "import importlib.metadata as m; v = m.version('torch'); assert v.startswith('2.13.0'), 'torch changed to ' + v"

setup-ray: $(VENV)/.ray-stamp

# Engine clients (bindings/, unity_client/): Debian packages, installed only when one is missing
# (non-interactive, root or sudo), then an incremental CMake build in build/.
NATIVE_APT := libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler cmake g++ \
	pkg-config libgtest-dev mono-mcs nunit-console libnunit-cil-dev patchelf

setup-native:
	@missing=$$(for p in $(NATIVE_APT); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	  grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "apt-get install" $$missing; \
	  $$sudo apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

native: setup setup-native
	test -f build/CMakeCache.txt || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
	  -DCOAMD_PYTHON=$(abspath $(PY)) -DCOAMD_DATASET=$(abspath $(DATASET))
	nice -n 10 cmake --build build -j $(JOBS)

# The Unity package (UPM tarball, installable with "Add package from tarball"): the package folder
# with its committed .meta files plus the shipped native plugin (CMake target unity_package; checked
# by ctest's unity_package_check).
unity-package: native
	nice -n 10 cmake --build build --target unity_package -j $(JOBS)
	@v=$$($(PY) -c "import json; print(json.load(open('unity_client/package.json'))['version'])"); \
	  mkdir -p dist && cp build/dist/com.coamd.motionstream-$$v.tgz dist/ && echo '*' > dist/.gitignore && \
	  ls -l dist/com.coamd.motionstream-$$v.tgz

$(DATASET)/dataset_card.json: | $(VENV)/.stamp
	$(VENV)/bin/coamd data build --source $(DATA) --out $(DATASET)

data: $(DATASET)/dataset_card.json

test: setup setup-ray data native
	ctest --test-dir build --output-on-failure
	COAMD_DATA=$(DATA) COAMD_DATASET=$(DATASET) $(PY) -m pytest -q -x --timeout=1800

# Needs only the shipped weights: with the processed dataset (DATASET) the edit keeps the start of
# a real held-out clip, without it the start of a generated motion.
demo: setup
	rm -rf demo_out && mkdir -p demo_out
	$(PY) -m coamd.demo --out demo_out --dataset $(DATASET) $(DEMO_ARGS)
	@echo "demo outputs in demo_out/ (npz, bvh, gif, latency.json, server.log)"

bench: setup
	mkdir -p bench_out
	nice -n 10 $(VENV)/bin/coamd bench latency --json bench_out/latency.json

# Default (small) preset end to end on the CPU; weights go to coamd/checkpoints/default/.
# TRAIN_ARGS adds arguments to every trainer (e.g. TRAIN_ARGS=--resume).
TRAIN_ARGS ?=
# Trains into TRAIN_OUT (a checkpoint folder: --checkpoint TRAIN_OUT), never over the shipped
# weights unless asked: make train TRAIN_OUT=coamd/checkpoints/default
TRAIN_OUT ?= runs/checkpoint
train: setup data
	mkdir -p $(TRAIN_OUT)
	$(VENV)/bin/coamd train ae --preset small --dataset $(DATASET) --max-minutes 15 \
	  --out $(TRAIN_OUT)/autoencoder.pt $(TRAIN_ARGS)
	cp $(TRAIN_OUT)/autoencoder.pt $(TRAIN_OUT)/autoencoder_reconstruction.pt  # before the decoder is made robust
	$(VENV)/bin/coamd train ae --preset small --dataset $(DATASET) --init $(TRAIN_OUT)/autoencoder.pt \
	  --decoder-only --train-set latent_noise=0.8 --train-set crop=160 --run-dir runs/ae_decoder --max-minutes 15 \
	  --out $(TRAIN_OUT)/autoencoder.pt $(TRAIN_ARGS)
	$(VENV)/bin/coamd train recognizer --preset small --dataset $(DATASET) --max-minutes 20 \
	  --out $(TRAIN_OUT)/recognizer.pt $(TRAIN_ARGS)
	$(VENV)/bin/coamd train generator --preset small --dataset $(DATASET) --autoencoder $(TRAIN_OUT)/autoencoder.pt \
	  --out $(TRAIN_OUT)/generator.pt $(TRAIN_ARGS)
	$(PY) -m coamd.data.vocabulary --dataset $(DATASET) --out $(TRAIN_OUT)
	$(PY) -m coamd.models.understanding fit --dataset $(DATASET) --out $(TRAIN_OUT)/understanding.npz
	@echo "trained into $(TRAIN_OUT); try it: $(VENV)/bin/coamd generate 'a person walks' --checkpoint $(TRAIN_OUT) --out walk.npz"

# Modality ablation (paper Table 7): autoencoders and recognizers on stream subsets, each with the
# same step budget and seed, into runs/ablation/ where `coamd eval` finds them.
ABLATION_AE_STEPS ?= 1500
ABLATION_REC_STEPS ?= 400
ABLATION_STREAMS := j:joint jb:joint,bone jm:joint,motion jbm:joint,bone,motion
ablation: setup data
	@set -e; for v in $(ABLATION_STREAMS); do name=$${v%%:*}; streams=$${v#*:}; \
	  $(VENV)/bin/coamd train ae --preset small --dataset $(DATASET) --streams $$streams \
	    --steps $(ABLATION_AE_STEPS) --run-dir runs/ablation/ae_$$name --out runs/ablation/autoencoder_$$name.pt; \
	  $(VENV)/bin/coamd train recognizer --preset small --dataset $(DATASET) --streams $$streams \
	    --steps $(ABLATION_REC_STEPS) --run-dir runs/ablation/recognizer_$$name --out runs/ablation/recognizer_$$name.pt; \
	done

clean:
	rm -rf demo_out bench_out build

# Validators the test suite calls on exported files (tests/test_gltf_export.py): the Khronos glTF
# validator from the npm registry, pinned, into build/validators (needs node and npm).
VALIDATORS ?= build/validators
GLTF_VALIDATOR_VERSION ?= 2.0.0-dev.3.10
.PHONY: setup-validators
setup-validators:
	@test -f $(VALIDATORS)/node_modules/gltf-validator/package.json || \
	  npm install --prefix $(VALIDATORS) --no-save --no-audit --no-fund --loglevel=error \
	    gltf-validator@$(GLTF_VALIDATOR_VERSION)
