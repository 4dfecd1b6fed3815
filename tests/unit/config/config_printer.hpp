#pragma once

#include <ostream>

#include "config/config.hpp"

namespace mailtrail::config {

/// GoogleTest printer, so a failed EXPECT_EQ on a Config shows its values rather than bytes. Test
/// data only: the secrets are printed as they are.
inline void PrintTo(const Config& config, std::ostream* os) {
  *os << "\n" << DescribeRedacted(config) << "api_key: " << config.postgrid.api_key << "\nsecrets:";
  for (const auto& secret : config.webhook.secrets) *os << " " << secret;
  *os << "\ndatabase.url: " << config.database.url << "\nsource_path: " << config.source_path
      << "\n";
}

}  // namespace mailtrail::config
