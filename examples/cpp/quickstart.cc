// The C++ quick start of the README: two actors, a Gloo group, a tensor
// passed by reference from one to the other.
#include "check.h"

class Trainer {
 public:
  static Trainer* Create(int seed) { return new Trainer(seed); }
  explicit Trainer(int seed) : seed_(seed) {}
  ferry::Tensor Weights() { return example::RandomTensor(256, 256, seed_); }
  double Sum(const ferry::Tensor& t) { return example::Sum(t); }

 private:
  int seed_;
};
FERRY_REMOTE(Trainer::Create, &Trainer::Weights, &Trainer::Sum);

int main(int argc, char** argv) {
  ferry::Init(argc, argv);  // in a worker process this runs the worker loop and never returns
  auto a = ferry::Actor(Trainer::Create).Remote(1);
  auto b = ferry::Actor(Trainer::Create).Remote(2);
  ferry::CreateCollectiveGroup({a, b}, "gloo");
  ferry::ObjectRef<ferry::Tensor> w = a.Task(&Trainer::Weights).SetTensorTransport("gloo").Remote();
  double s = *ferry::Get(b.Task(&Trainer::Sum).Remote(w));
  std::printf("sum of a's weights, computed by b: %f\n", s);
  example::Check(example::Close(s, example::Sum(example::RandomTensor(256, 256, 1))), "sum");
  ferry::Shutdown();
  return example::failures == 0 ? 0 : 1;
}
