// The library's log: its own messages and gRPC's, routed to one callback (coamd_set_log_callback)
// or to stderr. Thread-safe; callbacks run one at a time.
#pragma once

#include <string>

#include "coamd/coamd_client.h"

namespace coamd {

// Whether a message of this level would go anywhere (cheap: no lock).
bool log_enabled(int32_t level);
// Logs message at level (coamd_log_level) when enabled.
void log_message(int32_t level, const std::string& message);
// Installs callback (nullptr: stderr) for levels >= min_level; also routes gRPC's log here.
// When it returns, the previous callback is not running and will not run again.
void set_log_callback(coamd_log_callback callback, int32_t min_level, void* user_data);

}  // namespace coamd
