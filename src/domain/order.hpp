#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/order_ref.hpp"
#include "domain/timestamp.hpp"

namespace mailtrail::domain {

/// An order's PostGrid `status`. `raw` is always the exact string PostGrid sent; `kind` is its
/// reading, `kUnknown` for values this build does not know (PostGrid adds values). An unknown
/// value is carried verbatim and never replaced by a default. Return envelope order statuses
/// (`placed`, `filled`, `cancelled`) are ordinary statuses.
struct OrderStatus {
  enum class Kind {
    kReady,
    kPrinting,
    kProcessedForDelivery,
    kCompleted,
    kCancelled,
    kPlaced,
    kFilled,
    kUnknown,
  };
  Kind kind = Kind::kUnknown;
  std::string raw;

  /// Reads `raw`; never throws except std::bad_alloc.
  static OrderStatus FromRaw(std::string raw);

  bool operator==(const OrderStatus&) const = default;
};

/// An order's `imbStatus` (USPS Intelligent Mail barcode scans, seed 001), raw string kept.
struct ImbStatus {
  enum class Kind {
    kEnteredMailStream,
    kOutForDelivery,
    kReturnedToSender,
    kUnknown,
  };
  Kind kind = Kind::kUnknown;
  std::string raw;

  /// Reads `raw`; never throws except std::bad_alloc.
  static ImbStatus FromRaw(std::string raw);

  bool operator==(const ImbStatus&) const = default;
};

/// `carrierTracking.status` and each tracking update's `status` (seed 002), raw string kept.
/// Note the two "unknown"s: `kCarrierUnknown` is PostGrid's documented value `"unknown"` (the
/// carrier gave no usable status), `kUnknown` is a value this build does not recognise.
struct CarrierStatus {
  enum class Kind {
    kCarrierUnknown,
    kPreTransit,
    kInTransit,
    kOutForDelivery,
    kAvailableForPickup,
    kDelivered,
    kReturnToSender,
    kFailure,
    kCancelled,
    kError,
    kUnknown,
  };
  Kind kind = Kind::kUnknown;
  std::string raw;

  /// Reads `raw`; never throws except std::bad_alloc.
  static CarrierStatus FromRaw(std::string raw);

  bool operator==(const CarrierStatus&) const = default;
};

/// True for the carrier statuses after which nothing more will happen (postgrid-api.md section 4):
/// `delivered`, `return_to_sender`, `failure`, `cancelled`, `error`. Exact, case-sensitive match.
bool IsTerminalCarrierStatus(std::string_view raw);

/// One `carrierTracking.trackingUpdates[]` entry. Identified by (occurred_at, status.raw,
/// message): that triple is the unique key of `carrier_tracking_events`. `status` and `message`
/// are empty strings when PostGrid omits them, so the key never holds a NULL.
struct TrackingUpdate {
  Timestamp occurred_at;  ///< the update's `createdAt`
  CarrierStatus status;
  std::string message;
  std::optional<std::string> source;  ///< the carrier that reported it
  std::optional<std::string> city;
  std::optional<std::string> province_or_state;
  std::optional<std::string> country_code;
  std::optional<std::string> postal_or_zip;

  bool operator==(const TrackingUpdate&) const = default;
};

/// An order's `carrierTracking` object (beta, seed 002). Present only once a tracking number is
/// assigned and the carrier has reported.
struct CarrierTracking {
  std::optional<std::string> carrier;
  std::optional<CarrierStatus> status;
  std::optional<std::string> status_detail;  ///< 30 documented values, kept verbatim
  std::optional<Timestamp> est_delivery_date;
  std::optional<std::string> signed_by;
  std::vector<TrackingUpdate> updates;  ///< in the order PostGrid sent them

  bool operator==(const CarrierTracking&) const = default;
};

/// What mailtrail knows about one order at one moment: the API object reduced to the fields that
/// are tracked, diffed or reported on. A plain value; absent and null API fields are both
/// std::nullopt. The raw API object is not here (callers keep it for `orders.raw`).
struct OrderSnapshot {
  OrderRef ref;  ///< type, id, and for return envelope orders the envelope id
  bool live = false;
  OrderStatus status;
  std::optional<ImbStatus> imb_status;
  std::optional<Timestamp> imb_date;
  std::optional<std::string> imb_zip_code;
  std::optional<std::string> tracking_number;
  std::optional<std::string> mailing_class;
  std::optional<std::string> extra_service;
  std::optional<Timestamp> send_date;
  std::optional<CarrierTracking> carrier_tracking;
  std::optional<std::string> cancellation_reason;
  std::optional<std::string> description;
  std::optional<std::string> metadata_json;        ///< `metadata` serialized compactly
  std::optional<std::string> destination_state;    ///< `to.provinceOrState` (expanded `to` only)
  std::optional<std::string> destination_country;  ///< `to.countryCode` (expanded `to` only)
  std::optional<Timestamp> created_at;
  std::optional<Timestamp> updated_at;

  bool operator==(const OrderSnapshot&) const = default;
};

}  // namespace mailtrail::domain
