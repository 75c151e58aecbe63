"""Reproduce Table 1 of Snell et al. (2017) on Omniglot.

    python benchmarks/omniglot.py --profile cpu      # ~45 min on 2 CPU cores
    python benchmarks/omniglot.py --profile paper --device cuda

Writes benchmarks/results/omniglot-<profile>.json and .md; with
--save-weights, also the trained encoder (as shipped in
sklearn_protonet/pretrained/omniglot-conv4.safetensors).
"""

import sys

from sklearn_protonet.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--dataset", "omniglot", *sys.argv[1:]]))
