#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mailtrail::domain {

/// A point in time at PostgreSQL's precision (microseconds, UTC).
using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

/// Formats `t` as ISO-8601 UTC the way JavaScript's `toISOString` does:
/// `2022-05-11T16:03:20.974Z`. Three fraction digits, six only when the sub-millisecond digits are
/// non-zero (`2022-05-11T16:03:20.974512Z`). This is the text form of timestamps everywhere in
/// mailtrail (e.g. `order_changes.old_value/new_value`). Pure, thread-safe, never throws except
/// std::bad_alloc.
std::string FormatTimestamp(Timestamp t);

/// Parses an ISO-8601 timestamp as PostGrid writes them. Accepted forms:
///  - `YYYY-MM-DDTHH:MM:SS` followed by an optional fraction `.d` (1 to 9 digits; digits beyond
///    microseconds are truncated) and a zone: `Z`, `+hh:mm`, `-hh:mm`, `+hhmm` or `-hhmm`;
///  - a bare date `YYYY-MM-DD`, read as midnight UTC (PostGrid's `estDeliveryDate` and some
///    `sendDate` values are date-only).
/// Anything else (no zone, lower-case `t`/`z`, a space separator, out-of-range month, day, hour,
/// minute, second or offset, trailing characters) gives std::nullopt. Pure, thread-safe, never
/// throws.
std::optional<Timestamp> ParseTimestamp(std::string_view text);

}  // namespace mailtrail::domain
