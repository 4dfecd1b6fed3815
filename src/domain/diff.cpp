#include "domain/diff.hpp"

#include <algorithm>
#include <tuple>

namespace mailtrail::domain {
namespace {

using UpdateKey = std::tuple<const Timestamp&, const std::string&, const std::string&>;

UpdateKey KeyOf(const TrackingUpdate& update) {
  return UpdateKey{update.occurred_at, update.status.raw, update.message};
}

bool KeyLess(const TrackingUpdate* a, const TrackingUpdate* b) { return KeyOf(*a) < KeyOf(*b); }

const CarrierTracking* CarrierOf(const OrderSnapshot& snapshot) {
  return snapshot.carrier_tracking ? &*snapshot.carrier_tracking : nullptr;
}

}  // namespace

std::string_view FieldName(Field field) {
  switch (field) {
    case Field::kStatus:
      return "status";
    case Field::kImbStatus:
      return "imb_status";
    case Field::kImbZipCode:
      return "imb_zip_code";
    case Field::kTrackingNumber:
      return "tracking_number";
    case Field::kCarrierStatus:
      return "carrier_status";
    case Field::kCarrierStatusDetail:
      return "carrier_status_detail";
    case Field::kEstDeliveryDate:
      return "est_delivery_date";
    case Field::kSignedBy:
      return "signed_by";
    case Field::kCancellationReason:
      return "cancellation_reason";
  }
  return "unknown_field";  // unreachable: the switch covers every enumerator
}

std::optional<std::string> FieldValue(const OrderSnapshot& snapshot, Field field) {
  const CarrierTracking* carrier = CarrierOf(snapshot);
  switch (field) {
    case Field::kStatus:
      return snapshot.status.raw;
    case Field::kImbStatus:
      if (snapshot.imb_status) return snapshot.imb_status->raw;
      return std::nullopt;
    case Field::kImbZipCode:
      return snapshot.imb_zip_code;
    case Field::kTrackingNumber:
      return snapshot.tracking_number;
    case Field::kCarrierStatus:
      if (carrier != nullptr && carrier->status) return carrier->status->raw;
      return std::nullopt;
    case Field::kCarrierStatusDetail:
      if (carrier != nullptr) return carrier->status_detail;
      return std::nullopt;
    case Field::kEstDeliveryDate:
      if (carrier != nullptr && carrier->est_delivery_date) {
        return FormatTimestamp(*carrier->est_delivery_date);
      }
      return std::nullopt;
    case Field::kSignedBy:
      if (carrier != nullptr) return carrier->signed_by;
      return std::nullopt;
    case Field::kCancellationReason:
      return snapshot.cancellation_reason;
  }
  return std::nullopt;  // unreachable: the switch covers every enumerator
}

OrderDiff Diff(const std::optional<OrderSnapshot>& stored, const OrderSnapshot& fetched) {
  OrderDiff diff;
  if (stored && stored->updated_at && fetched.updated_at &&
      *fetched.updated_at < *stored->updated_at) {
    diff.stale = true;
    return diff;
  }

  for (Field field : kAllFields) {
    std::optional<std::string> old_value;
    if (stored) old_value = FieldValue(*stored, field);
    std::optional<std::string> new_value = FieldValue(fetched, field);
    if (old_value != new_value) {
      diff.changes.push_back(FieldChange{field, std::move(old_value), std::move(new_value)});
    }
  }

  const CarrierTracking* fetched_carrier = CarrierOf(fetched);
  if (fetched_carrier == nullptr || fetched_carrier->updates.empty()) return diff;

  std::vector<const TrackingUpdate*> known;
  if (const CarrierTracking* stored_carrier = stored ? CarrierOf(*stored) : nullptr) {
    known.reserve(stored_carrier->updates.size());
    for (const auto& update : stored_carrier->updates) known.push_back(&update);
    std::sort(known.begin(), known.end(), KeyLess);
  }

  std::vector<const TrackingUpdate*> fresh;
  for (const auto& update : fetched_carrier->updates) {
    if (!std::binary_search(known.begin(), known.end(), &update, KeyLess)) {
      fresh.push_back(&update);
    }
  }
  // stable_sort + unique keeps the first occurrence in API order when a key repeats, so the
  // location recorded for a duplicated update does not depend on sort internals.
  std::stable_sort(fresh.begin(), fresh.end(), KeyLess);
  const auto same_key = [](const TrackingUpdate* a, const TrackingUpdate* b) {
    return KeyOf(*a) == KeyOf(*b);
  };
  fresh.erase(std::unique(fresh.begin(), fresh.end(), same_key), fresh.end());
  diff.new_updates.reserve(fresh.size());
  for (const TrackingUpdate* update : fresh) diff.new_updates.push_back(*update);
  return diff;
}

}  // namespace mailtrail::domain
