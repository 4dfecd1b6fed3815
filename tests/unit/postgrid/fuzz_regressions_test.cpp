// Every input the fuzzers found that once broke the JSON mapping (fuzz/regressions/json_mapping)
// must now be refused with MappingError, the one error callers handle per order.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "postgrid/json_mapping.hpp"

namespace mailtrail::postgrid {
namespace {

TEST(FuzzRegressions, JsonMappingRefusesEveryFoundInputWithMappingError) {
  const auto directory =
      std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "fuzz" / "regressions" / "json_mapping";
  std::size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    ++inputs;
    EXPECT_THROW(MapOrderText(bytes.str()), MappingError) << entry.path();
    EXPECT_THROW(ParseJsonText(bytes.str(), "list page"), MappingError) << entry.path();
  }
  EXPECT_GE(inputs, 1u) << "no regression inputs found in " << directory;
}

}  // namespace
}  // namespace mailtrail::postgrid
