#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// Small helpers shared by the simulator's parts. Nothing here knows about HTTP or orders.
namespace mailtrail::sim {

/// Renders epoch milliseconds like JavaScript's Date.prototype.toISOString:
/// `2022-05-11T16:03:20.974Z`. Thread-safe, never throws.
std::string FormatIso(int64_t epoch_ms);

/// Parses `YYYY-MM-DDTHH:MM:SS[.mmm]Z`; nullopt when malformed.
std::optional<int64_t> ParseIso(std::string_view text);

/// Parses a duration such as `500ms`, `2s`, `15m`, `1h`, `14d` (a bare number means seconds)
/// into milliseconds; nullopt when malformed or negative.
std::optional<int64_t> ParseDurationMs(std::string_view text);

/// Current wall-clock time in epoch milliseconds.
int64_t WallNowMs();

/// SplitMix64: a tiny, seedable, reproducible generator (identical on every platform).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  /// Uniform integer in [lo, hi] (inclusive).
  int64_t Range(int64_t lo, int64_t hi);
  /// Uniform double in [0, 1).
  double Unit();
  /// True with probability p.
  bool Chance(double p) { return Unit() < p; }

 private:
  uint64_t state_;
};

/// Stateless 64-bit mix (splitmix64 finaliser).
uint64_t Mix64(uint64_t x);

/// Fixed-width (11 chars) base62 encoding of a 64-bit value, and its inverse.
std::string Base62Encode64(uint64_t value);
std::optional<uint64_t> Base62Decode64(std::string_view text);

/// Reversible id codec: index -> opaque 11-character suffix, keyed by the world seed so that
/// different seeds give different ids. Decode returns nullopt for anything Encode never produced.
class IdCodec {
 public:
  explicit IdCodec(uint64_t seed);
  std::string Encode(uint64_t index) const;
  std::optional<uint64_t> Decode(std::string_view suffix) const;

 private:
  uint64_t key_;
};

/// Splits `a=1&b=2` into decoded pairs ('+' is a space, %XX decoded).
std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query);

/// Percent-decodes; invalid escapes are kept verbatim.
std::string PercentDecode(std::string_view text, bool plus_is_space);

/// Appends `text` as a JSON string literal (with quotes and escapes) to `out`.
void AppendJsonString(std::string& out, std::string_view text);

/// Lower-cases ASCII.
std::string AsciiLower(std::string_view text);

}  // namespace mailtrail::sim
