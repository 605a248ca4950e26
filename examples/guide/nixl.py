# The guide's "Usage with NIXL" example with CPU tensors (this machine has no
# GPU: `.cuda()` is left out and the consumer checks for the CPU instead), with
# `import ferry as ray`. ferry's nixl transport is UCX one-sided get; no
# collective group is needed.
import torch
import ferry as ray


@ray.remote
class MyActor:
    @ray.method(tensor_transport="nixl")
    def random_tensor(self):
        return torch.randn(1000, 1000)

    def sum(self, tensor: torch.Tensor):
        return torch.sum(tensor)

    def produce(self, tensors):
        refs = []
        for t in tensors:
            refs.append(ray.put(t, _tensor_transport="nixl"))
        return refs

    def consume_with_nixl(self, refs):
        # ray.get will also use NIXL to retrieve the
        # result.
        tensors = [ray.get(ref) for ref in refs]
        sum = 0
        for t in tensors:
            assert t.device.type == "cpu"
            sum += t.sum().item()
        return sum


# No collective group is needed. The two actors just need to have NIXL
# installed.
sender, receiver = MyActor.remote(), MyActor.remote()

# The tensor will be stored by the `sender` actor instead of in Ray's object
# store.
tensor = sender.random_tensor.remote()
result = receiver.sum.remote(tensor)
print(ray.get(result))

# ray.put and ray.get with NIXL: ray.get will also use NIXL to retrieve the
# result.
print(ray.get(tensor))
# torch.Tensor(...)

# You can also use NIXL to retrieve the result from references created by
# ray.put.
tensor1 = torch.randn(1000, 1000)
tensor2 = torch.randn(1000, 1000)
refs = sender.produce.remote([tensor1, tensor2])
ref1 = receiver.consume_with_nixl.remote(refs)
print(ray.get(ref1))
expected = tensor1.sum().item() + tensor2.sum().item()
print("sums match" if abs(ray.get(ref1) - expected) < 1e-2 * max(1.0, abs(expected)) else
      f"sums differ: {ray.get(ref1)} vs {expected}")
