#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/order.hpp"

namespace mailtrail::domain {

/// The order fields whose changes mailtrail records in `order_changes`, in the order Diff emits
/// them (contract.md).
enum class Field {
  kStatus,
  kImbStatus,
  kImbZipCode,
  kTrackingNumber,
  kCarrierStatus,
  kCarrierStatusDetail,
  kEstDeliveryDate,
  kSignedBy,
  kCancellationReason,
};

/// Every Field, in the order Diff emits changes.
inline constexpr std::array<Field, 9> kAllFields = {
    Field::kStatus,          Field::kImbStatus,     Field::kImbZipCode,
    Field::kTrackingNumber,  Field::kCarrierStatus, Field::kCarrierStatusDetail,
    Field::kEstDeliveryDate, Field::kSignedBy,      Field::kCancellationReason,
};

/// The contract's name for `field`, as stored in `order_changes.field`: `status`, `imb_status`,
/// `imb_zip_code`, `tracking_number`, `carrier_status`, `carrier_status_detail`,
/// `est_delivery_date`, `signed_by`, `cancellation_reason`.
std::string_view FieldName(Field field);

/// The text form of `field` in `snapshot`, as written to `order_changes.old_value/new_value`:
/// raw enum strings verbatim, timestamps via FormatTimestamp, std::nullopt for absent/null (the
/// carrier fields are null when there is no `carrierTracking`). Pure; never throws except
/// std::bad_alloc.
std::optional<std::string> FieldValue(const OrderSnapshot& snapshot, Field field);

/// One changed field. `old_value` is std::nullopt on first observation or when the field was null.
struct FieldChange {
  Field field = Field::kStatus;
  std::optional<std::string> old_value;
  std::optional<std::string> new_value;

  bool operator==(const FieldChange&) const = default;
};

/// What changed between the stored and the fetched snapshot of one order.
struct OrderDiff {
  std::vector<FieldChange> changes;  ///< in kAllFields order, only real changes
  std::vector<TrackingUpdate>
      new_updates;     ///< not yet stored; sorted by (occurred_at, status, message)
  bool stale = false;  ///< fetched is older than stored: nothing to record

  bool operator==(const OrderDiff&) const = default;
};

/// The pure heart of mailtrail: compares what is stored with what the API returned.
///  - `stored == nullopt` (first observation): one change per non-null field, old value null;
///    every tracking update is new.
///  - `fetched.updated_at < stored->updated_at` (both present): the API answered with an older
///    object (a stale replica or a late retry) -> `stale = true`, no changes, no updates. Equal
///    `updated_at` is not stale and is diffed normally.
///  - Tracking updates are identified by (occurred_at, status.raw, message). A fetched update
///    whose key is stored is not new; keys repeated inside `fetched` are reported once (the first
///    occurrence in API order wins); reordering never creates new updates.
/// Deterministic, no I/O, thread-safe; never throws except std::bad_alloc.
OrderDiff Diff(const std::optional<OrderSnapshot>& stored, const OrderSnapshot& fetched);

}  // namespace mailtrail::domain
