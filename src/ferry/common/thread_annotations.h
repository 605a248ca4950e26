// Clang thread-safety annotations (no-ops on other compilers), and a Mutex
// that carries them. Use FERRY_GUARDED_BY on every member a mutex protects.
// Clang builds compile with -Wthread-safety as an error (CMakeLists.txt,
// FERRY_THREAD_SAFETY_ERRORS), so the annotations are checked: reading a
// guarded member, or calling a FERRY_REQUIRES function, without the mutex
// fails the build.
//
// A lambda does not inherit the locks held where it is written: one that
// runs under the lock (a condition-variable predicate) says so with
// `[&]() FERRY_REQUIRES(mu_) { ... }`.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define FERRY_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define FERRY_THREAD_ANNOTATION_(x)
#endif

#define FERRY_GUARDED_BY(x) FERRY_THREAD_ANNOTATION_(guarded_by(x))
#define FERRY_PT_GUARDED_BY(x) FERRY_THREAD_ANNOTATION_(pt_guarded_by(x))
#define FERRY_REQUIRES(...) FERRY_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define FERRY_EXCLUDES(...) FERRY_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#define FERRY_CAPABILITY(x) FERRY_THREAD_ANNOTATION_(capability(x))
#define FERRY_ACQUIRE(...) FERRY_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define FERRY_RELEASE(...) FERRY_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define FERRY_ASSERT_CAPABILITY(x) FERRY_THREAD_ANNOTATION_(assert_capability(x))
#define FERRY_SCOPED_CAPABILITY FERRY_THREAD_ANNOTATION_(scoped_lockable)

namespace ferry {

// std::mutex with capability annotations. Not recursive.
class FERRY_CAPABILITY("mutex") Mutex {
 public:
  void Lock() FERRY_ACQUIRE() { mu_.lock(); }
  void Unlock() FERRY_RELEASE() { mu_.unlock(); }
  // Tells the analysis that the calling thread holds this mutex, where it
  // cannot see that: a callback that a library runs under the lock. Not
  // checked at run time.
  void AssertHeld() const FERRY_ASSERT_CAPABILITY(this) {}
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// RAII lock over a Mutex; usable with std::condition_variable via native().
// Unlock() and Lock() drop and re-take the mutex inside the scope; the
// destructor releases it only when held.
class FERRY_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) FERRY_ACQUIRE(mu) : lock_(mu.native()) {}
  ~MutexLock() FERRY_RELEASE() = default;
  void Unlock() FERRY_RELEASE() { lock_.unlock(); }
  void Lock() FERRY_ACQUIRE() { lock_.lock(); }
  std::unique_lock<std::mutex>& native() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace ferry
