# asyncio with `import ferry as ray`: an async actor awaits refs made by
# another actor, a driver coroutine gathers refs, and an RDT return from an
# async method moves directly (Ray's guide lists asyncio as unsupported for
# direct transport; ferry supports it).
import asyncio

import torch
import ferry as ray


@ray.remote
class Producer:
    def square(self, x):
        return x * x

    @ray.method(tensor_transport="nixl")
    async def tensor(self, n):
        await asyncio.sleep(0)
        return torch.ones(n)


@ray.remote
class Consumer:
    async def total(self, refs):
        return sum(await asyncio.gather(*refs))

    async def tensor_sum(self, t):
        return float(t.sum())


producer, consumer = Producer.remote(), Consumer.remote()
squares = [producer.square.remote(i) for i in range(5)]
print("consumer total:", ray.get(consumer.total.remote(squares)))


async def main():
    values = await asyncio.gather(*squares)
    first = await squares[1]
    return values, first, squares[2].future().result(timeout=60)

print("driver gather:", asyncio.run(main()))
ref = producer.tensor.remote(1000)
print("rdt transport:", ref.tensor_transport(), "sum:", ray.get(consumer.tensor_sum.remote(ref)))
