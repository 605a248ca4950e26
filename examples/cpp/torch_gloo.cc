// The guide's Gloo example with libtorch tensors (ferry/torch.h): at::Tensor
// results stay in the producer and move to the receiver over Gloo; a
// dict of tensors works the same; passed back, the producer sees its own
// torch tensor's memory.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "ferry/ferry.h"
#include "ferry/torch.h"

class MyActor {
 public:
  static MyActor* Create() { return new MyActor(); }
  at::Tensor RandomTensor() {
    at::manual_seed(0);
    tensor_ = at::randn({1000, 1000});
    return tensor_;
  }
  std::map<std::string, at::Tensor> RandomTensorDict() {
    return {{"tensor1", at::ones({100, 100})}, {"tensor2", at::full({10}, 2.0)}};
  }
  double Sum(const at::Tensor& tensor) { return tensor.sum().item<double>(); }
  double SumDict(const std::map<std::string, at::Tensor>& d) {
    return d.at("tensor1").sum().item<double>() + d.at("tensor2").sum().item<double>();
  }
  bool IsMine(const at::Tensor& tensor) { return tensor.data_ptr() == tensor_.data_ptr(); }

 private:
  at::Tensor tensor_;
};
FERRY_REMOTE(MyActor::Create, &MyActor::RandomTensor, &MyActor::RandomTensorDict, &MyActor::Sum,
             &MyActor::SumDict, &MyActor::IsMine);

int main(int argc, char** argv) {
  ferry::Init(argc, argv);
  auto sender = ferry::Actor(MyActor::Create).Remote();
  auto receiver = ferry::Actor(MyActor::Create).Remote();
  ferry::CreateCollectiveGroup({sender, receiver}, "gloo");

  ferry::ObjectRef<at::Tensor> tensor =
      sender.Task(&MyActor::RandomTensor).SetTensorTransport("gloo").Remote();
  double s1 = *ferry::Get(receiver.Task(&MyActor::Sum).Remote(tensor));
  double s2 = *ferry::Get(sender.Task(&MyActor::Sum).Remote(tensor));
  bool mine = *ferry::Get(sender.Task(&MyActor::IsMine).Remote(tensor));
  auto dict = sender.Task(&MyActor::RandomTensorDict).SetTensorTransport("gloo").Remote();
  double sd = *ferry::Get(receiver.Task(&MyActor::SumDict).Remote(dict));
  ferry::GetOptions via_store;
  via_store.tensor_transport = "object_store";
  at::Tensor local = *ferry::Get(tensor, via_store);
  std::printf("%f %f %d %f %f\n", s1, s2, mine, sd, local.sum().item<double>());

  at::manual_seed(0);
  double expected = at::randn({1000, 1000}).sum().item<double>();
  bool ok = std::abs(s1 - expected) < 1e-3 && std::abs(s2 - expected) < 1e-3 && mine &&
            sd == 10020.0 && std::abs(local.sum().item<double>() - expected) < 1e-3;
  if (!ok) std::fprintf(stderr, "CHECK FAILED: torch tensors over gloo\n");
  ferry::Shutdown();
  return ok ? 0 : 1;
}
