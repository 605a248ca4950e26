// The guide's nested-structure example in C++: a map of tensors (here one
// level deeper: a vector of tensors inside it too) over Gloo. Every tensor
// stays in the sender; only the map's skeleton travels through the owner.
#include <map>
#include <string>
#include <vector>

#include "check.h"

using TensorDict = std::map<std::string, std::vector<ferry::Tensor>>;

class MyActor {
 public:
  static MyActor* Create() { return new MyActor(); }
  TensorDict RandomTensorDict() {
    return {{"tensor1", {example::RandomTensor(1000, 1000, 1)}},
            {"tensor2", {example::RandomTensor(1000, 1000, 2), example::RandomTensor(10, 10, 3)}}};
  }
  double Sum(const TensorDict& tensor_dict) {
    return example::Sum(tensor_dict.at("tensor1")[0]) + example::Sum(tensor_dict.at("tensor2")[0]) +
           example::Sum(tensor_dict.at("tensor2")[1]);
  }
};
FERRY_REMOTE(MyActor::Create, &MyActor::RandomTensorDict, &MyActor::Sum);

int main(int argc, char** argv) {
  ferry::Init(argc, argv);
  auto sender = ferry::Actor(MyActor::Create).Remote();
  auto receiver = ferry::Actor(MyActor::Create).Remote();
  ferry::CreateCollectiveGroup({sender, receiver}, "gloo");

  // All three tensors in the map are stored by the `sender` actor.
  ferry::ObjectRef<TensorDict> tensor_dict =
      sender.Task(&MyActor::RandomTensorDict).SetTensorTransport("gloo").Remote();
  double sum = *ferry::Get(receiver.Task(&MyActor::Sum).Remote(tensor_dict));
  std::printf("%f\n", sum);

  double expected = example::Sum(example::RandomTensor(1000, 1000, 1)) +
                    example::Sum(example::RandomTensor(1000, 1000, 2)) +
                    example::Sum(example::RandomTensor(10, 10, 3));
  example::Check(example::Close(sum, expected), "the receiver summed every tensor of the map");
  ferry::Shutdown();
  return example::failures == 0 ? 0 : 1;
}
