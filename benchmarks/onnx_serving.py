"""Serving without torch: onnxruntime against ``predict`` for the shipped encoder.

The shipped 1-shot Omniglot Conv4 classifies 10,000 images of Omniglot's
``test`` split (its first 500 characters; one drawing of each is the support
set). Two servers are compared:

- ``predict``: a process that imports sklearn-protonet (and so torch), loads
  the classifier saved by :func:`sklearn_protonet.persistence.save_classifier`
  and calls ``predict``;
- onnxruntime: a process that imports onnxruntime only (torch and
  sklearn-protonet are blocked from import) and runs the model written by
  :func:`sklearn_protonet.onnx.to_onnx`.

Measured, each server in a fresh process, the two interleaved over
``--repeats`` rounds (medians reported):

- throughput: images per second over the 10,000 images, in batches of 1,024
  (the classifier's ``batch_size``), after one warm-up batch;
- start: wall time from starting the process to the model ready to serve
  (interpreter start, imports, loading the model file);
- resident memory of the process once ready (the libraries and the model),
  and its peak (``ru_maxrss``) after serving all 10,000 images (the
  activations of a batch of 1,024 images included).

The agreement table exports every metric and normalisation of the shipped
encoder on the shipped Omniglot sample (100-way 5-shot, 1,500 queries) and
compares onnxruntime with ``predict`` and ``predict_proba``; it also records
how far torch's and onnxruntime's float32 embeddings are from float64 ones.

Usage::

    python benchmarks/onnx_serving.py              # writes results/onnx_serving.*
    python benchmarks/onnx_serving.py --repeats 2 --no-agreement   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_IMAGES = 10_000
BATCH = 1024
MB = 2**20

# The serving processes. Each prints "ready" once it can serve, then serves
# the images and prints one JSON line. Torch and sklearn-protonet are
# blocked in the onnxruntime server: an import of either raises.
_RSS = """
import os


def _rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
"""
_TORCH_SERVER = """
import sys, time
from sklearn_protonet.persistence import load_classifier
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
clf = load_classifier(sys.argv[1])
serve = clf.predict
print("ready", _rss(), flush=True)
"""
_ONNX_SERVER = """
import sys
for name in ("torch", "sklearn_protonet", "skorch", "skl2onnx"):
    sys.modules[name] = None
import numpy as np, onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[3])
options.inter_op_num_threads = 1
session = ort.InferenceSession(
    sys.argv[1], options, providers=["CPUExecutionProvider"]
)


def serve(X):
    return session.run(["label"], {"X": X})[0]


print("ready", _rss(), flush=True)
"""
_SERVE = f"""
import json, resource, time
images = np.load(sys.argv[2])
serve(images[:{BATCH}])  # warm-up
start = time.perf_counter()
labels = np.concatenate(
    [serve(images[i : i + {BATCH}]) for i in range(0, len(images), {BATCH})]
)
seconds = time.perf_counter() - start
np.save(sys.argv[2] + ".labels.npy", labels.astype(str))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"seconds": seconds, "peak_bytes": peak}}))
"""


def _serve(kind: str, model: Path, images: Path, threads: int) -> dict:
    """One fresh serving process: time to ready, serving time, peak memory."""
    source = _RSS + (_TORCH_SERVER if kind == "predict" else _ONNX_SERVER) + _SERVE
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", source, str(model), str(images), str(threads)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()
    ready = time.perf_counter() - start
    out, err = child.communicate()
    if child.returncode or not line.startswith("ready"):
        raise RuntimeError(f"{kind} server failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    labels = np.load(str(images) + ".labels.npy")
    return {
        "ready_seconds": ready,
        "ready_mb": int(line.split()[1]) / MB,
        "images_per_second": N_IMAGES / result["seconds"],
        "peak_mb": result["peak_bytes"] / MB,
        "labels": labels,
    }


def _python_start() -> float:
    """Wall time of ``python -c pass``: the interpreter's own share of start."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def serving(repeats: int, threads: int, workdir: Path) -> dict:
    from sklearn_protonet import PrototypicalClassifier
    from sklearn_protonet.datasets import load_omniglot
    from sklearn_protonet.onnx import to_onnx
    from sklearn_protonet.persistence import save_classifier
    from sklearn_protonet.pretrained import load_pretrained

    test = load_omniglot("test", download_if_missing=False)
    images = np.ascontiguousarray(test.data[:N_IMAGES], dtype=np.float32)
    labels = test.target[:N_IMAGES]
    first = np.unique(labels, return_index=True)[1]
    clf = PrototypicalClassifier(load_pretrained("omniglot-conv4-1shot"))
    clf.fit(images[first], labels[first])
    paths = {"predict": workdir / "classifier.safetensors"}
    paths["onnxruntime"] = workdir / "classifier.onnx"
    save_classifier(clf, paths["predict"])
    paths["onnxruntime"].write_bytes(to_onnx(clf, images[:1]).SerializeToString())
    np.save(workdir / "images.npy", images)

    runs = {"predict": [], "onnxruntime": [], "python": []}
    predicted = {}
    for _ in range(repeats):  # interleaved: both see the same machine load
        runs["python"].append(_python_start())
        for kind in ("predict", "onnxruntime"):
            result = _serve(kind, paths[kind], workdir / "images.npy", threads)
            predicted[kind] = result.pop("labels")
            runs[kind].append(result)
            print(
                f"{kind:12s} ready {result['ready_seconds']:5.2f} s, "
                f"{result['images_per_second']:7.0f} images/s, "
                f"peak {result['peak_mb']:6.0f} MB",
                flush=True,
            )
    summary = {
        kind: {
            key: statistics.median(run[key] for run in runs[kind])
            for key in ("ready_seconds", "ready_mb", "images_per_second", "peak_mb")
        }
        for kind in ("predict", "onnxruntime")
    }
    return {
        "n_images": N_IMAGES,
        "n_prototypes": len(clf.classes_),
        "batch_size": BATCH,
        "threads": threads,
        "repeats": repeats,
        "python_start_seconds": statistics.median(runs["python"]),
        "runs": runs,
        "median": summary,
        "label_agreement": float(
            np.mean(predicted["predict"] == predicted["onnxruntime"])
        ),
        "model_file_mb": {k: p.stat().st_size / MB for k, p in paths.items()},
    }


def agreement() -> dict:
    """Every metric and normalisation on the shipped sample: onnxruntime
    against predict / predict_proba, and the encoders' float32 errors."""
    import copy

    import onnxruntime as ort
    import torch
    from skl2onnx import get_latest_tested_opset_version

    from sklearn_protonet import PrototypicalClassifier
    from sklearn_protonet._encoders import encoder_module
    from sklearn_protonet.covariance import GaussianEncoder, ShrunkCovariance
    from sklearn_protonet.datasets import load_omniglot_sample
    from sklearn_protonet.onnx import _export_module, to_onnx
    from sklearn_protonet.pretrained import load_pretrained

    sample = load_omniglot_sample()
    shot = np.arange(len(sample.target)) % 20 < 5
    X, y, queries = sample.data[shot], sample.target[shot], sample.data[~shot]
    encoder = load_pretrained("omniglot-conv4-1shot")
    module = encoder_module(encoder)
    torch.manual_seed(0)
    gaussian = GaussianEncoder(module, 64)
    torch.nn.init.normal_(gaussian.head.weight, std=0.1)
    configurations = [
        (metric, normalization)
        for metric in ("sqeuclidean", "euclidean", "cosine", "mahalanobis")
        for normalization in (None, "l2", "cl2n")
    ]
    configurations += [("mahalanobis (full)", n) for n in (None, "l2", "cl2n")]
    # Centring [embedding, precision] makes precisions negative: no cl2n.
    configurations += [("gaussian", None), ("gaussian", "l2")]
    rows = []
    for metric, normalization in configurations:
        clf = PrototypicalClassifier(
            gaussian if metric == "gaussian" else encoder,
            metric=metric.split()[0],
            normalization=normalization,
            covariance=ShrunkCovariance("full") if "full" in metric else None,
        ).fit(X, y)
        session = ort.InferenceSession(to_onnx(clf, X[:1]).SerializeToString())
        labels, probabilities = session.run(None, {"X": queries})
        difference = np.abs(probabilities - clf.predict_proba(queries))
        rows.append(
            {
                "metric": metric,
                "normalization": normalization,
                "label_agreement": float(np.mean(labels == clf.predict(queries))),
                "max_probability_difference": float(difference.max()),
                "share_beyond_1e-5": float(np.mean(difference > 1e-5)),
            }
        )
        print(rows[-1], flush=True)
    # How far each engine's float32 embeddings are from float64's.
    exact = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        e64 = exact(torch.from_numpy(queries).double()).numpy()
        e32 = module.eval()(torch.from_numpy(queries)).numpy()
    graph = _export_module(module, (784,), get_latest_tested_opset_version())
    session = ort.InferenceSession(graph.SerializeToString())
    e_ort = session.run(None, {"X": queries})[0]
    return {
        "configurations": rows,
        "n_queries": len(queries),
        "n_classes": len(np.unique(y)),
        "embedding_error_vs_float64": {
            "torch": float(np.abs(e32 - e64).max()),
            "onnxruntime": float(np.abs(e_ort - e64).max()),
            "largest_embedding_value": float(np.abs(e64).max()),
        },
    }


def markdown(record: dict) -> str:
    from _common import machine_line, markdown_table

    s = record["serving"]
    p, o = s["median"]["predict"], s["median"]["onnxruntime"]
    rows = [
        [
            "throughput (images/s)",
            f"{p['images_per_second']:,.0f}",
            f"{o['images_per_second']:,.0f}",
            f"{o['images_per_second'] / p['images_per_second']:.2f}x",
        ],
        [
            "start to ready (s)",
            f"{p['ready_seconds']:.2f}",
            f"{o['ready_seconds']:.2f}",
            f"{o['ready_seconds'] / p['ready_seconds']:.2f}x",
        ],
        [
            "resident memory when ready (MB)",
            f"{p['ready_mb']:,.0f}",
            f"{o['ready_mb']:,.0f}",
            f"{o['ready_mb'] / p['ready_mb']:.2f}x",
        ],
        [
            "peak resident memory, serving (MB)",
            f"{p['peak_mb']:,.0f}",
            f"{o['peak_mb']:,.0f}",
            f"{o['peak_mb'] / p['peak_mb']:.2f}x",
        ],
        [
            "model file (MB)",
            f"{s['model_file_mb']['predict']:.2f}",
            f"{s['model_file_mb']['onnxruntime']:.2f}",
            "",
        ],
    ]
    text = [
        f"Serving the shipped `omniglot-conv4-1shot` classifier "
        f"({s['n_prototypes']} prototypes) on {s['n_images']:,} Omniglot test "
        f"images, batches of {s['batch_size']:,}, {s['threads']} threads; each "
        f"server in a fresh process, medians of {s['repeats']} interleaved rounds. "
        f"Labels agree on {100 * s['label_agreement']:.2f} % of the images. "
        f"`python -c pass` alone takes {s['python_start_seconds']:.2f} s.",
        "",
        markdown_table(
            ["", "`predict` (torch)", "onnxruntime", "onnxruntime / predict"], rows
        ),
    ]
    agreement = record.get("agreement")
    if agreement:
        error = agreement["embedding_error_vs_float64"]
        text += [
            "",
            f"Agreement of onnxruntime with `predict` and `predict_proba` on the "
            f"shipped Omniglot sample ({agreement['n_classes']}-way 5-shot, "
            f"{agreement['n_queries']:,} queries). Float32 embeddings are "
            f"{error['torch']:.1e} (torch) and {error['onnxruntime']:.1e} "
            f"(onnxruntime) from float64's, for values up to "
            f"{error['largest_embedding_value']:.1f}.",
            "",
            markdown_table(
                [
                    "metric",
                    "normalization",
                    "labels equal",
                    "largest probability difference",
                    "cells beyond 1e-5",
                ],
                [
                    [
                        f"`{row['metric']}`",
                        f"`{row['normalization']}`",
                        f"{100 * row['label_agreement']:.2f} %",
                        f"{row['max_probability_difference']:.1e}",
                        f"{100 * row['share_beyond_1e-5']:.3f} %",
                    ]
                    for row in agreement["configurations"]
                ],
            ),
        ]
    text += ["", f"Machine: {machine_line(record['environment'])}; {record['note']}"]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-agreement", action="store_true")
    parser.add_argument(
        "--note",
        default="measured on a quiet machine",
        help="how busy the machine was, written under the tables",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import environment, write_results

    with tempfile.TemporaryDirectory() as folder:
        record = {"serving": serving(args.repeats, args.threads, Path(folder))}
    if not args.no_agreement:
        record["agreement"] = agreement()
    record["environment"] = environment()
    record["note"] = args.note
    for run in record["serving"]["runs"].values():
        for row in run:
            if isinstance(row, dict):
                row.pop("labels", None)
    path = write_results("onnx_serving", record, markdown(record))
    print(f"wrote {path}")
    print(json.dumps(record["serving"]["median"], indent=2))


if __name__ == "__main__":
    main()
