#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "domain/timestamp.hpp"

namespace mailtrail::domain {

/// One webhook delivery as it is recorded in `mailtrail.webhook_deliveries` (contract.md), refused
/// ones included. A plain value: the webhook listener builds it, the store writes it.
struct WebhookDelivery {
  Timestamp received_at{};
  /// Lower-case hex SHA-256 of the raw request body; a byte-for-byte replay has the same digest.
  std::string body_sha256;
  /// `jwt` or `json`; nullopt when the body matched neither format.
  std::optional<std::string> payload_format;
  bool verified = false;
  /// A short stable code (`bad_signature`, `stale_timestamp`, ...); nullopt when verified.
  std::optional<std::string> rejection_reason;
  /// The JSON format's event `id`; JWT deliveries carry none.
  std::optional<std::string> event_id;
  std::optional<std::string> event_type;
  std::optional<std::string> order_id;
  /// JSON text for the `payload jsonb` column: the decoded event for a verified delivery, what
  /// could be kept of the body for a refused one; nullopt for SQL NULL.
  std::optional<std::string> payload;

  bool operator==(const WebhookDelivery&) const = default;
};

/// What became of an attempt to record a delivery.
enum class DeliveryRecordStatus {
  kRecorded,     ///< A new row was written.
  kDuplicate,    ///< A byte-for-byte replay of a delivery already recorded as verified.
  kUnavailable,  ///< It could not be recorded (database down); the sender should retry.
};

/// The result of recording one delivery: the status and the row id (the new row for kRecorded,
/// the earlier row for kDuplicate, 0 for kUnavailable).
struct DeliveryRecordOutcome {
  DeliveryRecordStatus status = DeliveryRecordStatus::kUnavailable;
  std::int64_t delivery_id = 0;

  bool operator==(const DeliveryRecordOutcome&) const = default;
};

}  // namespace mailtrail::domain
