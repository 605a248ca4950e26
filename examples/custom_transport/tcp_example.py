"""A tensor transport of your own, in Python: register TcpTransport (a plain
TCP socket, tcp_transport.py) and use it like a built-in transport."""
import torch

import ferry as ray
from ferry.experimental import register_tensor_transport
from tcp_transport import TcpTransport

# Before creating the actors that use it, in the process that creates them.
register_tensor_transport("tcp", ["cpu"], TcpTransport)


@ray.remote
class MyActor:
    @ray.method(tensor_transport="tcp")
    def random_tensor(self):
        return torch.ones(1000, 1000)

    def sum(self, tensor: torch.Tensor):
        return torch.sum(tensor).item()


sender, receiver = MyActor.remote(), MyActor.remote()
tensor = sender.random_tensor.remote()  # stays in `sender`
print(ray.get(receiver.sum.remote(tensor)))  # `receiver` pulls it over TCP: 1000000.0
print(ray.get(tensor).shape)  # so does the driver: torch.Size([1000, 1000])
