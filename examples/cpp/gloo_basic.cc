// The guide's "Passing objects to other actors" example in C++: the tensor
// stays in `sender` and moves to `receiver` over Gloo, never through the
// object store.
#include "check.h"

class MyActor {
 public:
  static MyActor* Create() { return new MyActor(); }
  ferry::Tensor RandomTensor() { return example::RandomTensor(1000, 1000, 42); }
  double Sum(const ferry::Tensor& tensor) { return example::Sum(tensor); }
};
FERRY_REMOTE(MyActor::Create, &MyActor::RandomTensor, &MyActor::Sum);

int main(int argc, char** argv) {
  ferry::Init(argc, argv);  // an actor worker never returns from here
  auto sender = ferry::Actor(MyActor::Create).Remote();
  auto receiver = ferry::Actor(MyActor::Create).Remote();
  ferry::CreateCollectiveGroup({sender, receiver}, "gloo");

  // The tensor will be stored by the `sender` actor instead of in the object store.
  ferry::ObjectRef<ferry::Tensor> tensor =
      sender.Task(&MyActor::RandomTensor).SetTensorTransport("gloo").Remote();
  ferry::ObjectRef<double> result = receiver.Task(&MyActor::Sum).Remote(tensor);
  double sum = *ferry::Get(result);
  std::printf("%f\n", sum);

  example::Check(example::Close(sum, example::Sum(example::RandomTensor(1000, 1000, 42))),
                 "the receiver summed the sender's tensor");
  ferry::Shutdown();
  return example::failures == 0 ? 0 : 1;
}
