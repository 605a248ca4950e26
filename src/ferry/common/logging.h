// Minimal leveled logging to stderr and FERRY_CHECK for broken invariants.
//
// Level comes from FERRY_LOG_LEVEL (debug, info, warning, error; default
// warning). Thread-safe: each message is written with one write(2) call.
//
//   FERRY_LOG(INFO) << "worker " << id << " registered";
//   FERRY_CHECK(fd >= 0) << "bad fd";
#pragma once

#include <sstream>

namespace ferry {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

bool LogEnabled(LogLevel level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();  // writes; aborts for kFatal
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Swallows a stream expression when logging is disabled.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace ferry

#define FERRY_LOG_LEVEL_DEBUG ::ferry::LogLevel::kDebug
#define FERRY_LOG_LEVEL_INFO ::ferry::LogLevel::kInfo
#define FERRY_LOG_LEVEL_WARNING ::ferry::LogLevel::kWarning
#define FERRY_LOG_LEVEL_ERROR ::ferry::LogLevel::kError
#define FERRY_LOG_LEVEL_FATAL ::ferry::LogLevel::kFatal

#define FERRY_LOG(level)                        \
  !::ferry::LogEnabled(FERRY_LOG_LEVEL_##level) \
      ? (void)0                                 \
      : ::ferry::LogVoidify() &                 \
            ::ferry::LogMessage(FERRY_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#define FERRY_CHECK(cond)                                                                  \
  (cond) ? (void)0                                                                         \
         : ::ferry::LogVoidify() &                                                         \
               ::ferry::LogMessage(::ferry::LogLevel::kFatal, __FILE__, __LINE__).stream() \
                   << "Check failed: " #cond " "
