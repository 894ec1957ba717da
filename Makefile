# `make demo`: set up and generate one image with the embedded model. `make test`: set up and run every test.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1

.PHONY: demo test install browser clean model cpu-model serve

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps open-clip-torch==3.3.0  # CLIP's BPE vocabulary, for single-file SD checkpoints
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium fonts-dejavu-core >/dev/null)

demo: install
	$(VENV)/bin/glassdiff generate "two blue squares above a red circle" -o demo.png --trajectory demo_strip.png
	@echo "demo image: $(CURDIR)/demo.png  (noise-to-image strip: $(CURDIR)/demo_strip.png)"

# the live page and A1111's API on http://127.0.0.1:7860/ (glassdiff serve --help for the options)
serve: install
	$(VENV)/bin/glassdiff serve

test: install browser
	$(VENV)/bin/ruff check glassdiff tests
	$(PY) -m pytest -q

# The embedded model's whole recipe, from scratch, in stages (see glassdiff/weights/MODEL_CARD.md): stages 1-11 about
# 16 hours on 2 cores; stage 12 (batch 512) ran on a GPU, DEVICE=cuda: 6 minutes on one H200 (on 2 cores about 14 hours);
# stage 13, the third decoder fine-tune (runs/ae_dec3), about 70 minutes on 2 cores; stage 15, stage 12 again on new
# scenes, on a GPU as well: 7 minutes on one H200, caching included; stage 16, the image-to-image UNet (stage 15's
# fine-tuned on recoloured pairs), about 30 minutes on 2 cores; stage 17, the distilled student `default-fast`
# (glassdiff/weights/fast, 4 steps), about 3 hours on 2 cores.
# Its UNet has 32 attention heads per block (4-6 channels each: `--heads 32`); --init keeps a model's own layout.
# Each model folder records the steps its weights took (training.json), and a stage that continues one (--init) draws
# the batches after them; the stages with --step-offset 0 drew the first batches again, as they were shipped.
FINAL_STEPS ?= 4200
DEVICE ?= cpu
model: install
	$(VENV)/bin/glassdiff train autoencoder --out runs/autoencoder --steps 2000 --seed 0
	$(VENV)/bin/glassdiff train autoencoder --out runs/ae_dec --init runs/autoencoder/vae --decoder-only \
		--batch 16 --lr 5e-4 --steps 1200 --seed 0
	$(VENV)/bin/glassdiff train autoencoder --out runs/ae_dec2 --init runs/ae_dec/vae --decoder-only \
		--batch 16 --lr 3e-4 --steps 1600 --seed 1
	$(VENV)/bin/glassdiff train autoencoder --out runs/ae_dec3 --init runs/ae_dec2/vae --decoder-only \
		--batch 32 --lr 3e-4 --warmup 100 --decay-to 0.1 --steps 6000 --examples 40000 --data-chunks 2 --seed 3
	$(VENV)/bin/glassdiff train denoiser --out runs/denoiser --vae runs/autoencoder/vae --heads 32 --steps 3250 \
		--grad-clip 0 --seed 0
	mkdir -p runs/d2 runs/d3 runs/d4 runs/d5 && for d in d2 d3 d4 d5; do cp runs/denoiser/cache.pt runs/$$d/; done
	$(VENV)/bin/glassdiff train denoiser --out runs/d2 --vae runs/autoencoder/vae --init runs/denoiser/model \
		--step-offset 0 --lr 1e-3 --warmup 200 --steps 1250 --seed 0
	$(VENV)/bin/glassdiff train denoiser --out runs/d3 --vae runs/autoencoder/vae --init runs/d2/model \
		--step-offset 0 --lr 1e-3 --warmup 100 --min-snr-gamma 0 --steps 3500 --seed 0
	$(VENV)/bin/glassdiff train denoiser --out runs/d4 --vae runs/autoencoder/vae --init runs/d3/model \
		--lr 1e-3 --warmup 100 --min-snr-gamma 0 --steps 4500 --seed 0
	$(VENV)/bin/glassdiff train denoiser --out runs/d5 --vae runs/autoencoder/vae --init runs/d4/model \
		--lr 1e-3 --warmup 100 --min-snr-gamma 0 --decay-to 0.1 --steps 4500 --seed 0
	$(VENV)/bin/glassdiff train denoiser --out runs/d6 --vae runs/autoencoder/vae --init runs/d5/model --caption-colors 0.5 \
		--lr 5e-4 --warmup 100 --min-snr-gamma 0 --decay-to 0.1 --steps 4500 --seed 0
	$(VENV)/bin/glassdiff train denoiser --out runs/d7 --vae runs/autoencoder/vae --init runs/d6/model --caption-colors 0.4 \
		--lr 3e-4 --warmup 100 --min-snr-gamma 0 --decay-to 0.1 --steps 4800 --seed 1
	$(VENV)/bin/glassdiff train denoiser --out runs/d8 --vae runs/autoencoder/vae --init runs/d7/model --coordinates \
		--caption-colors 0.4 --lr 5e-4 --warmup 100 --min-snr-gamma 0 --decay-to 0.1 \
		--steps 4500 --seed 2
	$(VENV)/bin/glassdiff train denoiser --out runs/d9 --vae runs/autoencoder/vae --init runs/d8/model --coordinates \
		--caption-colors 0.4 --lr 3e-4 --warmup 100 --min-snr-gamma 0 --decay-to 0.1 \
		--steps 7000 --seed 3
	$(VENV)/bin/glassdiff train denoiser --out runs/d10 --vae runs/autoencoder/vae --init runs/d9/model --coordinates \
		--caption-colors 0.4 --lr 3e-4 --warmup 100 --min-snr-gamma 0 --decay-to 0.1 \
		--steps 7000 --seed 4
	$(VENV)/bin/glassdiff train denoiser --out runs/d11 --vae runs/autoencoder/vae --init runs/d10/model --coordinates \
		--caption-colors 0.4 --caption-cells 0.7 --lr 3e-4 --warmup 100 --min-snr-gamma 0 \
		--decay-to 0.1 --steps 8000 --seed 5
	$(VENV)/bin/glassdiff train denoiser --out runs/d12 --vae runs/autoencoder/vae --init runs/d11/model --coordinates \
		--caption-colors 0.4 --caption-cells 0.7 --captions 150000 --data-chunks 16 --batch 512 --lr 5e-4 --warmup 200 \
		--min-snr-gamma 0 --step-offset 0 --decay-to 0.1 --steps $(FINAL_STEPS) --seed 12 --checkpoint-every 1000 \
		--sample-every 1000000 --device $(DEVICE)
	$(VENV)/bin/glassdiff train denoiser --out runs/d15 --vae runs/autoencoder/vae --init runs/d12/model --coordinates \
		--caption-colors 0.4 --caption-cells 0.7 --captions 150000 --data-chunks 16 --batch 512 --lr 5e-4 --warmup 200 \
		--min-snr-gamma 0 --step-offset 0 --decay-to 0.1 --steps 3400 --seed 15 --checkpoint-every 500 \
		--sample-every 1000000 --device $(DEVICE)
	$(VENV)/bin/glassdiff train denoiser --out runs/d16 --vae runs/autoencoder/vae --init runs/d15/model --coordinates \
		--caption-colors 0.4 --caption-cells 0.7 --captions 8000 --scenes-per-caption 2 --recolor-pairs 2000 --batch 32 \
		--lr 5e-5 --warmup 50 --min-snr-gamma 0 --ema-decay 0.995 --steps 600 --seed 22 --step-offset 0 \
		--checkpoint-every 100 --sample-every 100000
	$(PY) -m glassdiff.train.ship runs/d15/model glassdiff/weights runs/ae_dec3/vae --img2img runs/d16/model
	$(VENV)/bin/glassdiff train distill --out runs/distill --teacher glassdiff/weights --steps 6000 --anneal 3600 --lr 5e-5 \
		--checkpoint-every 100 --sample-every 500 --resume --device $(DEVICE)
	$(PY) -m glassdiff.train.ship runs/distill/model glassdiff/weights/fast

# The 3-hour recipe on 2 CPU cores, from scratch (MODEL_CARD.md, "The 3-hour CPU recipe"): an autoencoder, a decoder
# fine-tune, and a small UNet (`--preset small`) on captions that mostly name one object in a cell, which is what
# layout planning asks of it; then the pipeline in $(CPU_RUN)/model. Each stage resumes a killed run (`--resume`).
CPU_RUN ?= runs/cpu
CPU_STEPS ?= 7000
cpu-model: install
	$(VENV)/bin/glassdiff train autoencoder --out $(CPU_RUN)/autoencoder --steps 2000 --seed 0 --resume
	$(VENV)/bin/glassdiff train autoencoder --out $(CPU_RUN)/ae_dec --init $(CPU_RUN)/autoencoder/vae --decoder-only \
		--batch 16 --lr 5e-4 --steps 1200 --seed 0 --resume
	$(VENV)/bin/glassdiff train denoiser --out $(CPU_RUN)/denoiser --vae $(CPU_RUN)/autoencoder/vae --preset small \
		--coordinates --caption-colors 0.4 --caption-cells 0.9 --caption-tasks single_object=5 --lr 1e-3 --warmup 200 \
		--min-snr-gamma 0 --decay-to 0.1 --steps $(CPU_STEPS) --seed 0 --checkpoint-every 500 --sample-every 2000 --resume
	$(PY) -m glassdiff.train.ship $(CPU_RUN)/denoiser/model $(CPU_RUN)/model $(CPU_RUN)/ae_dec/vae

clean:
	rm -rf $(VENV) demo.png demo_strip.png
