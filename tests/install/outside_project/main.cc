// An actor program built against an installed ferry: one actor, two calls
// (one takes the other's ObjectRef), checked end to end. Exits non-zero on a
// wrong value; ferry's typed exceptions end it with a message otherwise.
#include <ferry/ferry.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

class Greeter {
 public:
  static Greeter* Create(std::string name) { return new Greeter(std::move(name)); }
  explicit Greeter(std::string name) : name_(std::move(name)) {}
  int Add(int a, int b) { return a + b; }
  std::string Greet(int n) { return name_ + " " + std::to_string(n); }

 private:
  std::string name_;
};
FERRY_REMOTE(Greeter::Create, &Greeter::Add, &Greeter::Greet);

int main(int argc, char** argv) {
  ferry::Init(argc, argv);  // in an actor worker: serves the actor, never returns
  auto greeter = ferry::Actor(Greeter::Create).Remote(std::string("installed"));
  ferry::ObjectRef<int> sum = greeter.Task(&Greeter::Add).Remote(40, 2);
  std::string got = *ferry::Get(greeter.Task(&Greeter::Greet).Remote(sum), std::chrono::seconds(60));
  ferry::Shutdown();
  std::printf("ferry_outside: %s\n", got.c_str());
  return got == "installed 42" ? 0 : 1;
}
