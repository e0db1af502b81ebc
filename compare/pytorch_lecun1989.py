"""The paper's experiment (Lecun.Fast's default `lecun1989` recipe) in plain PyTorch, one example at a
time, for timing the two side by side on one machine.

Same network (H1 12x8x8 and H2 12x4x4 locally connected with shared kernels and one bias per unit,
padding with the background value -1, H2's 8-of-12 block table; H3 30; 10 outputs; tanh everywhere),
same data and order (the USPS files, file order), same initialisation rule (U[-2.4/sqrt(F), 2.4/sqrt(F)],
hidden biases 0, output biases -1), same loss (mean squared error over the 10 outputs against +1/-1
targets), same optimizer (SGD, learning rate 0.03, one update per example, 23 passes) and the same
report (loss, error and misses on both splits after every pass). The random draws differ, so the
errors match Lecun.Fast's only statistically.

    python3 compare/pytorch_lecun1989.py [--data DIR] [--passes N] [--threads T]
"""
import argparse
import gzip
import math
import os
import time

import torch
import torch.nn.functional as F


def load_usps(path):
    labels, pixels = [], []
    with gzip.open(path, "rt") as f:
        for line in f:
            values = line.split()
            if values:
                labels.append(int(float(values[0])))
                pixels.append([float(v) for v in values[1:]])
    if any(len(p) != 256 for p in pixels):
        raise SystemExit(f"error: {path}: every line must hold a label and 256 pixel values")
    return torch.tensor(pixels, dtype=torch.float32).view(-1, 1, 16, 16), torch.tensor(labels)


# Which H1 planes each group of four H2 planes reads.
H2_READS = [list(range(0, 8)), list(range(4, 12)), list(range(0, 4)) + list(range(8, 12))]


class Net1989(torch.nn.Module):
    def __init__(self, generator):
        super().__init__()

        def uniform(shape, fan_in):
            bound = 2.4 / math.sqrt(fan_in)
            return torch.nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)

        self.h1w = uniform((12, 1, 5, 5), 25)
        self.h1b = torch.nn.Parameter(torch.zeros(12, 8, 8))
        self.h2w = uniform((12, 8, 5, 5), 200)
        self.h2b = torch.nn.Parameter(torch.zeros(12, 4, 4))
        self.h3w = uniform((192, 30), 192)
        self.h3b = torch.nn.Parameter(torch.zeros(30))
        self.outw = uniform((30, 10), 30)
        self.outb = torch.nn.Parameter(torch.full((10,), -1.0))

    def forward(self, x):
        x = F.pad(x, (2, 2, 2, 2), value=-1.0)
        x = torch.tanh(F.conv2d(x, self.h1w, stride=2) + self.h1b)
        x = F.pad(x, (2, 2, 2, 2), value=-1.0)
        groups = [F.conv2d(x[:, reads], self.h2w[4 * g:4 * g + 4], stride=2) for g, reads in enumerate(H2_READS)]
        x = torch.tanh(torch.cat(groups, dim=1) + self.h2b)
        x = torch.tanh(x.flatten(1) @ self.h3w + self.h3b)
        return torch.tanh(x @ self.outw + self.outb)


def targets_for(labels):
    t = torch.full((len(labels), 10), -1.0)
    t[torch.arange(len(labels)), labels] = 1.0
    return t


@torch.no_grad()
def evaluate(net, images, labels):
    out = net(images)
    loss = torch.mean((out - targets_for(labels)) ** 2, dim=1).mean().item()
    misses = (out.argmax(dim=1) != labels).sum().item()
    return loss, 100.0 * misses / len(labels), misses


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(here, "..", "Lecun.Model", "Data"), help="folder holding usps/zip.{train,test}.gz (default: Lecun.Model/Data, the files embedded in the program)")
    parser.add_argument("--passes", type=int, default=23)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: PyTorch's own choice)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train_x, train_y = load_usps(os.path.join(args.data, "usps", "zip.train.gz"))
    test_x, test_y = load_usps(os.path.join(args.data, "usps", "zip.test.gz"))
    net = Net1989(torch.Generator().manual_seed(1337))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.03)
    train_t = targets_for(train_y)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; {len(train_y)} train, {len(test_y)} test digits")
    training = time.perf_counter()
    for p in range(1, args.passes + 1):
        for i in range(len(train_y)):
            out = net(train_x[i:i + 1])
            loss = torch.mean((out - train_t[i:i + 1]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        tr, te = evaluate(net, train_x, train_y), evaluate(net, test_x, test_y)
        print(f"pass {p:2d}  train loss {tr[0]:.1e} error {tr[1]:.2f}% misses {tr[2]:4d} | "
              f"test loss {te[0]:.1e} error {te[1]:.2f}% misses {te[2]:4d}  ({time.perf_counter() - training:.1f} s)", flush=True)
    done = time.perf_counter()
    presentations = args.passes * len(train_y)
    print(f"{args.passes} passes in {done - training:.1f} s ({presentations / (done - training):.0f} presentations/s including evaluation); "
          f"{done - start:.1f} s with data loading")


if __name__ == "__main__":
    main()
