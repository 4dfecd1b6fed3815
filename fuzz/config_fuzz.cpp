// Fuzzes the config loader (config/config.hpp): any bytes as the YAML file, with an empty
// environment. Bad input may only throw config::ConfigError; an accepted config must describe
// itself (the `check-config` output) without throwing.
//
// Known bug (reported to the lead, regression in regressions/config/): yaml-cpp 0.7's LoadAll,
// which config.cpp calls, loops forever while allocating on inputs such as "," or ",{a"
// (jbeder/yaml-cpp#1040, fixed upstream by PR #1319 after 0.8.0). By default the target calls the
// loader on every input, so such an input is reported as a timeout. With
// MAILTRAIL_FUZZ_SKIP_YAML_CPP_1040=1 it first replays the input through yaml-cpp's own
// Parser with a bounded document count and skips the inputs that would loop, so a campaign
// can look for other bugs until config.cpp stops calling the looping LoadAll.

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "fuzz_support.hpp"

namespace {

using mailtrail::fuzz::Check;
using mailtrail::fuzz::FailUnexpected;
namespace config = mailtrail::config;

std::optional<std::string> NoEnv(const char* /*name*/) { return std::nullopt; }

class IgnoreEvents : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& /*mark*/) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}
  void OnAlias(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}
  void OnScalar(const YAML::Mark& /*mark*/, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                const std::string& /*value*/) override {}
  void OnSequenceStart(const YAML::Mark& /*mark*/, const std::string& /*tag*/,
                       YAML::anchor_t /*anchor*/, YAML::EmitterStyle::value /*style*/) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& /*mark*/, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  YAML::EmitterStyle::value /*style*/) override {}
  void OnMapEnd() override {}
};

// True when yaml-cpp's document loop (the loop inside LoadAll) yields more documents than the
// text can hold, i.e. LoadAll would never return.
bool HitsYamlCpp1040(std::string_view yaml) {
  std::istringstream in{std::string(yaml)};
  YAML::Parser parser(in);
  IgnoreEvents events;
  const std::size_t max_documents = yaml.size() + 1;  // each document takes at least one byte
  try {
    for (std::size_t documents = 0; parser.HandleNextDocument(events);) {
      if (++documents > max_documents) return true;
    }
  } catch (const YAML::Exception&) {
    // A parse error ends LoadAll too (as an exception the loader maps to ConfigError).
  }
  return false;
}

const bool kSkipYamlCpp1040 = [] {
  const char* value = std::getenv("MAILTRAIL_FUZZ_SKIP_YAML_CPP_1040");
  return value != nullptr && std::string_view(value) == "1";
}();

void FuzzOne(std::string_view yaml) {
  if (kSkipYamlCpp1040 && HitsYamlCpp1040(yaml)) return;
  config::Config loaded;
  try {
    loaded = config::LoadConfigFromString(yaml, "fuzz.yaml", NoEnv);
  } catch (const config::ConfigError& error) {
    Check(std::string_view(error.what()).starts_with("fuzz.yaml"),
          "ConfigError message does not start with the file name");
    return;
  }
  Check(loaded.source_path == "fuzz.yaml", "Config::source_path is not the display name");
  (void)config::DescribeRedacted(loaded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    FuzzOne(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& error) {
    FailUnexpected("config LoadConfigFromString", error);
  }
  return 0;
}
