#pragma once

#include "config/config.hpp"

namespace mailtrail::app {

/// Installs the process-wide spdlog logger on stderr with the configured level and format.
/// `json` writes one JSON object per line ({"time","level","logger","message"}) for journald/Loki;
/// `text` writes `time level message`. Call once, before any thread logs.
void SetUpLogging(const config::LogConfig& log);

}  // namespace mailtrail::app
