# The RDT API around the guide's examples, with `import ferry as ray`:
# enable_tensor_transport, ObjectRef.tensor_transport(), named actors,
# unnamed collective groups and their listing.
import torch
import ferry as ray
from ferry.experimental.collective import (create_collective_group,
                                           destroy_all_collective_groups,
                                           get_collective_groups)


@ray.remote(enable_tensor_transport=True)
class Worker:
    def make(self, n):
        return torch.ones(n)

    def total(self, t):
        return float(t.sum())


a = Worker.options(name="worker-a").remote()
b = Worker.remote()
ref = a.make.options(tensor_transport="nixl").remote(4)
print("transport:", ref.tensor_transport())
print("total via get_actor:", ray.get(ray.get_actor("worker-a").total.remote(ref)))

g1 = create_collective_group([a, b], backend="torch_gloo")
g2 = create_collective_group([b, a], backend="gloo")
print("distinct names:", g1.name != g2.name)
print("groups with a:", len(get_collective_groups([a])))
gloo_ref = a.make.options(tensor_transport="gloo").remote(8)
print("gloo total:", ray.get(b.total.remote(gloo_ref)))
destroy_all_collective_groups()
print("left:", get_collective_groups())
try:
    Worker.remote().make.options(tensor_transport="pigeon")
except ValueError as e:
    print("error:", str(e).split(";")[0])
