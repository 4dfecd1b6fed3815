#pragma once

#include <cstdint>

#include "domain/timestamp.hpp"
#include "domain/webhook_delivery.hpp"

namespace pqxx {
class connection_base;
}

namespace mailtrail::store {

/// The `mailtrail.webhook_deliveries` table: every webhook delivery, refused ones included.
///
/// Blocking (libpqxx): use it on the database thread only, with a connection no other thread
/// uses at the same time. Database errors are thrown as pqxx exceptions (pqxx::broken_connection
/// when the server is gone); the caller maps them to kUnavailable.
class WebhookRepository {
 public:
  explicit WebhookRepository(pqxx::connection_base& connection);

  /// Inserts one delivery in its own transaction and returns the new row's id (kRecorded).
  /// A verified delivery whose `body_sha256` is already stored as verified is not inserted again
  /// (the partial unique index; `INSERT ... ON CONFLICT DO NOTHING`): the result is kDuplicate with
  /// the earlier row's id. Refused deliveries are always inserted, repeats included. A payload
  /// PostgreSQL's jsonb refuses (e.g. a `\u0000` escape) is stored as NULL rather than losing the
  /// delivery. Never returns kUnavailable: failures throw.
  domain::DeliveryRecordOutcome RecordDelivery(const domain::WebhookDelivery& delivery);

  /// Sets `processed_at` of delivery `id` if it is not set yet (the first refresh wins). Returns
  /// true when this call set it.
  bool MarkProcessed(std::int64_t id, domain::Timestamp processed_at);

 private:
  pqxx::connection_base& connection_;
};

}  // namespace mailtrail::store
