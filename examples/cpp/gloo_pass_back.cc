// The guide's "Passing RDT objects to the actor that produced them" and
// "ray.get" examples in C++.
#include <string>

#include "check.h"

class MyActor {
 public:
  static MyActor* Create() { return new MyActor(); }
  ferry::Tensor RandomTensor() {
    tensor_ = example::RandomTensor(1000, 1000, 7);
    return tensor_;
  }
  double Sum(const ferry::Tensor& tensor) { return example::Sum(tensor); }
  // True when `tensor` is the very memory this actor returned.
  bool IsMine(const ferry::Tensor& tensor) { return tensor.SharesMemoryWith(tensor_); }

 private:
  ferry::Tensor tensor_;
};
FERRY_REMOTE(MyActor::Create, &MyActor::RandomTensor, &MyActor::Sum, &MyActor::IsMine);

int main(int argc, char** argv) {
  ferry::Init(argc, argv);
  auto sender = ferry::Actor(MyActor::Create).Remote();
  auto receiver = ferry::Actor(MyActor::Create).Remote();
  ferry::CreateCollectiveGroup({sender, receiver}, "gloo");

  ferry::ObjectRef<ferry::Tensor> tensor =
      sender.Task(&MyActor::RandomTensor).SetTensorTransport("gloo").Remote();
  // Pass the ObjectRef back to the actor that produced it: the same tensor, no copy.
  ferry::ObjectRef<double> sum1 = sender.Task(&MyActor::Sum).Remote(tensor);
  ferry::ObjectRef<double> sum2 = receiver.Task(&MyActor::Sum).Remote(tensor);
  auto sums = ferry::Get(std::vector<ferry::ObjectRef<double>>{sum1, sum2});
  example::Check(example::Close(*sums[0], *sums[1]), "both actors see the same values");
  example::Check(*ferry::Get(sender.Task(&MyActor::IsMine).Remote(tensor)),
                 "the producer got its own memory back");
  example::Check(!*ferry::Get(receiver.Task(&MyActor::IsMine).Remote(tensor)),
                 "the receiver got a copy");

  // Wrong: Get with the method's transport (Gloo); the driver is not in the group.
  try {
    ferry::Get(tensor);
    example::Check(false, "Get over gloo must fail");
  } catch (const ferry::InvalidArgumentError& e) {
    example::Check(std::string(e.what()).find("object_store") != std::string::npos,
                   "the error says to use the object store");
  }
  // Right: fetch the tensor through the object store.
  ferry::GetOptions via_store;
  via_store.tensor_transport = "object_store";
  std::shared_ptr<ferry::Tensor> local = ferry::Get(tensor, via_store);
  std::printf("tensor of %lld x %lld, sum %f\n", static_cast<long long>(local->shape()[0]),
              static_cast<long long>(local->shape()[1]), example::Sum(*local));
  example::Check(example::Close(example::Sum(*local), *sums[0]), "the fetched tensor matches");
  ferry::Shutdown();
  return example::failures == 0 ? 0 : 1;
}
