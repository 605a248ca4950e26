// The guide's fixed mutability example in C++: WaitTensorFreed before
// writing a tensor that ferry may still be sending.
#include "check.h"

class MyActor {
 public:
  static MyActor* Create() { return new MyActor(); }
  ferry::Tensor RandomTensor() {
    tensor_ = example::RandomTensor(1000, 1000, 9);
    return tensor_;
  }
  double IncrementAndSumStoredTensor() {
    // 1. Wait until ferry released every reference to the tensor before
    //    modifying it in place.
    ferry::WaitTensorFreed(tensor_, std::chrono::seconds(60));
    float* p = tensor_.data<float>();
    for (int64_t i = 0; i < tensor_.numel(); ++i) p[i] += 1;
    return example::Sum(tensor_);
  }
  double IncrementAndSum(const ferry::Tensor& tensor) {
    double s = 0;
    const float* p = tensor.data<float>();
    for (int64_t i = 0; i < tensor.numel(); ++i) s += p[i] + 1.0f;
    return s;
  }

 private:
  ferry::Tensor tensor_;
};
FERRY_REMOTE(MyActor::Create, &MyActor::RandomTensor, &MyActor::IncrementAndSumStoredTensor,
             &MyActor::IncrementAndSum);

int main(int argc, char** argv) {
  ferry::Init(argc, argv);
  auto sender = ferry::Actor(MyActor::Create).Remote();
  auto receiver = ferry::Actor(MyActor::Create).Remote();
  ferry::CreateCollectiveGroup({sender, receiver}, "gloo");

  ferry::ObjectRef<ferry::Tensor> tensor =
      sender.Task(&MyActor::RandomTensor).SetTensorTransport("gloo").Remote();
  ferry::ObjectRef<double> tensor1 = sender.Task(&MyActor::IncrementAndSumStoredTensor).Remote();
  // 2. No Get of tensor1 here: WaitTensorFreed blocks until `tensor` is freed.
  ferry::ObjectRef<double> tensor2 = receiver.Task(&MyActor::IncrementAndSum).Remote(tensor);
  // 3. Drop every reference to `tensor` to unblock WaitTensorFreed.
  tensor = {};

  double s1 = *ferry::Get(tensor1);
  double s2 = *ferry::Get(tensor2);
  std::printf("%f %f\n", s1, s2);
  example::Check(example::Close(s1, s2), "sums match");
  ferry::Shutdown();
  return example::failures == 0 ? 0 : 1;
}
