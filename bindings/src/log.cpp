#include "coamd/log.hpp"

#include <grpc/support/log.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace coamd {

namespace {

struct LogState {
  std::recursive_mutex mu;  // held while a callback runs; recursive: a callback that logs
  coamd_log_callback callback = nullptr;
  void* user_data = nullptr;
  std::atomic<int32_t> min_level{COAMD_LOG_ERROR};
};

// Never destroyed: gRPC threads may still log while the process exits.
LogState& state() {
  static LogState* s = new LogState;
  return *s;
}

const char* level_name(int32_t level) {
  switch (level) {
    case COAMD_LOG_DEBUG: return "debug";
    case COAMD_LOG_INFO: return "info";
    case COAMD_LOG_WARNING: return "warning";
    default: return "error";
  }
}

void grpc_log_hook(gpr_log_func_args* args) {
  const int32_t level = args->severity == GPR_LOG_SEVERITY_DEBUG  ? COAMD_LOG_DEBUG
                        : args->severity == GPR_LOG_SEVERITY_INFO ? COAMD_LOG_INFO
                                                                  : COAMD_LOG_ERROR;
  if (!log_enabled(level)) return;
  const char* file = args->file ? args->file : "";
  const char* slash = std::strrchr(file, '/');
  std::string msg = "grpc: ";
  msg += args->message ? args->message : "";
  msg += " (";
  msg += slash ? slash + 1 : file;
  msg += ":" + std::to_string(args->line) + ")";
  log_message(level, msg);
}

}  // namespace

bool log_enabled(int32_t level) {
  return level < COAMD_LOG_OFF && level >= state().min_level.load(std::memory_order_relaxed);
}

void log_message(int32_t level, const std::string& message) {
  LogState& s = state();
  if (!log_enabled(level)) return;
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (!log_enabled(level)) return;
  if (s.callback) {
    s.callback(level, message.c_str(), s.user_data);
  } else {
    std::fprintf(stderr, "coamd [%s] %s\n", level_name(level), message.c_str());
  }
}

void set_log_callback(coamd_log_callback callback, int32_t min_level, void* user_data) {
  static std::once_flag hooked;
  std::call_once(hooked, [] { gpr_set_log_function(grpc_log_hook); });
  LogState& s = state();
  {
    std::lock_guard<std::recursive_mutex> lock(s.mu);
    s.callback = callback;
    s.user_data = user_data;
    s.min_level.store(min_level, std::memory_order_relaxed);
  }
  // gRPC formats only messages at or above its verbosity (it has no warning level).
  gpr_set_log_verbosity(min_level <= COAMD_LOG_DEBUG  ? GPR_LOG_SEVERITY_DEBUG
                        : min_level <= COAMD_LOG_INFO ? GPR_LOG_SEVERITY_INFO
                                                      : GPR_LOG_SEVERITY_ERROR);
}

}  // namespace coamd
