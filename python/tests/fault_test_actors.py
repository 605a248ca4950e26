"""Actors for the fault-injection tests (test_faults.py). Importable by name
so worker processes can load them."""
import os

import torch

import ferry


@ferry.remote
class Node:
    """Produces and consumes RDT tensors; reports its pid."""

    def pid(self):
        return os.getpid()

    @ferry.method(tensor_transport="gloo")
    def make(self, n):
        # Above FERRY_INLINE_TENSOR_BYTES: moves through the collective group.
        return torch.ones(n, dtype=torch.float32)

    def consume(self, t):
        return float(t.sum())

    def ping(self):
        return "pong"
