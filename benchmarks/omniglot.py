"""Reproduce Table 1 of Snell et al. (2017) on Omniglot.

    python benchmarks/omniglot.py --profile cpu      # ~45 min on 2 CPU cores
    python benchmarks/omniglot.py --profile paper --device cuda

Writes benchmarks/results/omniglot-<profile>.json and .md; with
--save-weights DIR, also the trained encoders as
DIR/omniglot-conv4-<shot>shot.safetensors (the shipped ones were made with
--save-weights sklearn_protonet/pretrained).
"""

import sys

from sklearn_protonet.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--dataset", "omniglot", *sys.argv[1:]]))
