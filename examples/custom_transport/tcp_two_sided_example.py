"""A two-sided tensor transport of your own, in Python: register
TcpTwoSidedTransport (tcp_two_sided.py) and use it as the guide uses gloo,
with a collective group whose backend is its name."""
import torch

import ferry as ray
from ferry.experimental import register_tensor_transport
from ferry.experimental.collective import create_collective_group
from tcp_two_sided import TcpTwoSidedTransport

register_tensor_transport("tcp2", ["cpu"], TcpTwoSidedTransport)


@ray.remote
class MyActor:
    @ray.method(tensor_transport="tcp2")
    def random_tensor(self):
        return torch.ones(1000, 1000)

    def sum(self, tensor: torch.Tensor):
        return torch.sum(tensor).item()


sender, receiver = MyActor.remote(), MyActor.remote()
group = create_collective_group([sender, receiver], backend="tcp2")
tensor = sender.random_tensor.remote()  # stays in `sender`
print(ray.get(receiver.sum.remote(tensor)))  # sent over the group's sockets: 1000000.0
print(ray.get(tensor, _tensor_transport="object_store").shape)  # torch.Size([1000, 1000])
