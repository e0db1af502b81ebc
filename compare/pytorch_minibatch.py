"""Minibatch training of the 1989 network in plain PyTorch, for timing beside Lecun.Fast's batched
training (`lecun bench`'s "training" rows, or `lecun train --batch-size B`) on one machine.

The network, data, initialisation, loss and targets of compare/pytorch_lecun1989.py; SGD on the mean
gradient of B examples per step (Lecun.Fast's --batch-size B), the digits in file order. Reports the
training presentations/s of the timed passes alone (no evaluation inside them), after one untimed
warm-up pass, so the figure compares with bench's training rows.

    python3 compare/pytorch_minibatch.py [--data DIR] [--batch-size B] [--threads T] [--passes N]
"""
import argparse
import os
import statistics
import time

import torch

from pytorch_lecun1989 import Net1989, evaluate, load_usps, targets_for


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(here, "..", "Lecun.Model", "Data"), help="folder holding usps/zip.{train,test}.gz (default: Lecun.Model/Data, the files embedded in the program)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes (the median is reported)")
    parser.add_argument("--lr", type=float, default=0.03)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_x, train_y = load_usps(os.path.join(args.data, "usps", "zip.train.gz"))
    test_x, test_y = load_usps(os.path.join(args.data, "usps", "zip.test.gz"))
    net = Net1989(torch.Generator().manual_seed(1337))
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr)
    train_t = targets_for(train_y)
    b = args.batch_size
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}; {len(train_y)} train digits")

    def one_pass():
        for i in range(0, len(train_y), b):
            out = net(train_x[i:i + b])
            loss = torch.mean((out - train_t[i:i + b]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    one_pass()  # warm-up
    rates = []
    for p in range(args.passes):
        start = time.perf_counter()
        one_pass()
        rates.append(len(train_y) / (time.perf_counter() - start))
    te = evaluate(net, test_x, test_y)
    print(f"test error after {args.passes + 1} passes: {te[1]:.2f}%")
    print(f"training presentations/s, batch {b}, {args.threads} thread(s): median {statistics.median(rates):.0f} "
          f"(passes: {', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
