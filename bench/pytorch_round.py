#!/usr/bin/env python3
"""The `fl bench round` workload in PyTorch, for a side-by-side comparison on one machine.

MNIST, 10 clients x 600 samples (client i gets training images i*600..(i+1)*600), the same
cnn (Conv 1->10 k5, MaxPool 2, ReLU, Conv 10->20 k5, MaxPool 2, ReLU, Linear 320->50, ReLU,
Linear 50->11), 1 local epoch, batch 32, plain SGD lr 0.05, FedAvg weighted by sample count,
evaluation on all 10000 test images. Prints the median round time of 5 rounds after 1 warm-up
and training samples/s as JSON, like `fl bench round`.

    python3 bench/pytorch_round.py --data-dir data --threads 2
"""
import argparse
import gzip
import json
import statistics
import struct
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndims = raw[3]
    dims = struct.unpack(">" + "I" * ndims, raw[4 : 4 + 4 * ndims])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


class Cnn(nn.Module):
    def __init__(self, outputs: int = 11):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 5)
        self.conv2 = nn.Conv2d(10, 20, 5)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, outputs)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = Path(args.data_dir) / "mnist"
    norm = lambda a: torch.from_numpy(a.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    x_train = norm(read_idx(d / "train-images-idx3-ubyte.gz"))
    y_train = torch.from_numpy(read_idx(d / "train-labels-idx1-ubyte.gz").astype(np.int64))
    x_test = norm(read_idx(d / "t10k-images-idx3-ubyte.gz"))
    y_test = torch.from_numpy(read_idx(d / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    clients = [(x_train[i * 600 : (i + 1) * 600], y_train[i * 600 : (i + 1) * 600]) for i in range(10)]

    global_model = Cnn()
    times, train_times, eval_times = [], [], []
    for r in range(args.warmup + args.rounds):
        t0 = time.perf_counter()
        g = {k: v.clone() for k, v in global_model.state_dict().items()}
        acc = {k: torch.zeros_like(v) for k, v in g.items()}
        for x, y in clients:
            model = Cnn()
            model.load_state_dict(g)
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            perm = torch.randperm(len(y))
            for s in range(0, len(y), 32):
                idx = perm[s : s + 32]
                opt.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
            for k, v in model.state_dict().items():
                acc[k] += v * (len(y) / 6000.0)
        global_model.load_state_dict(acc)
        t1 = time.perf_counter()
        with torch.no_grad():
            correct = 0
            for s in range(0, len(y_test), 1000):
                correct += (global_model(x_test[s : s + 1000]).argmax(1) == y_test[s : s + 1000]).sum().item()
        t2 = time.perf_counter()
        print(f"round {r + 1}: {t2 - t0:.3f} s (train {t1 - t0:.3f}, eval {t2 - t1:.3f}) acc {correct / len(y_test):.4f}",
              flush=True)
        if r >= args.warmup:
            times.append(t2 - t0)
            train_times.append(t1 - t0)
            eval_times.append(t2 - t1)
    med = statistics.median(times)
    print(json.dumps({
        "implementation": f"pytorch {torch.__version__}",
        "threads": args.threads,
        "round_s_median": round(med, 6),
        "round_s": [round(t, 6) for t in times],
        "train_s_median": round(statistics.median(train_times), 6),
        "eval_s_median": round(statistics.median(eval_times), 6),
        "samples_per_s": round(6000 / med, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
