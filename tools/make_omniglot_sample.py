"""Write the Omniglot sample shipped with the package, from the data home.

    python tools/make_omniglot_sample.py [--data-home DIR] [--check]

Reads the Vinyals ``test`` characters with the package's own loader
(``load_omniglot("test")``), keeps ``N_CHARACTERS`` of them drawn with a fixed
seed, unrotated, with all 20 drawings each, and writes them as 28x28 uint8
images to ``sklearn_protonet/datasets/data/omniglot_sample.npz``, next to the
Omniglot licence. ``--check`` compares the shipped file with a fresh
extraction instead of writing (exit status 1 when they differ).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from sklearn_protonet.datasets import get_data_home, load_omniglot
from sklearn_protonet.datasets._base import atomic_writer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sklearn_protonet" / "datasets" / "data"
SAMPLE = DATA / "omniglot_sample.npz"
LICENSE = DATA / "OMNIGLOT_LICENSE.txt"
N_CHARACTERS = 100
SEED = 0


def extract(data_home: str | None = None) -> dict[str, np.ndarray]:
    """The sample's arrays: ``images`` (n, 28, 28) uint8 and ``target``."""
    omniglot = load_omniglot("test", data_home=data_home, download_if_missing=False)
    # Only the unrotated classes: each character as it was drawn.
    upright = sorted(name for name in omniglot.target_names if name.endswith("/rot000"))
    rng = np.random.default_rng(SEED)
    chosen = sorted(rng.choice(upright, size=N_CHARACTERS, replace=False).tolist())
    keep = np.isin(omniglot.target, chosen)
    # The loader's pixels are multiples of 1/255: back to the exact uint8 values.
    images = np.rint(omniglot.images[keep] * 255).astype(np.uint8)
    target = np.array([name.removesuffix("/rot000") for name in omniglot.target[keep]])
    return {"images": images, "target": target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", help="Omniglot data home (default: the loader's)"
    )
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    arrays = extract(args.data_home)
    if args.check:
        with np.load(SAMPLE, allow_pickle=False) as shipped:
            same = all(np.array_equal(shipped[k], v) for k, v in arrays.items())
        print("up to date" if same else f"{SAMPLE} differs from the data home")
        return 0 if same else 1
    with atomic_writer(SAMPLE) as out:
        np.savez_compressed(out, **arrays)
    # The licence travels with the images (MIT: keep the notice with copies).
    licence = get_data_home(args.data_home) / "omniglot" / "LICENSE.txt"
    if not licence.is_file():
        raise SystemExit(f"{licence} not found: put Omniglot's LICENSE file there.")
    shutil.copyfile(licence, LICENSE)
    print(f"wrote {SAMPLE} ({SAMPLE.stat().st_size:,} bytes) and {LICENSE.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
