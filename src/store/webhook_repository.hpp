#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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
/// when the server is gone); the caller maps them to kUnavailable. Each call is one statement in
/// autocommit (atomic on its own: nothing is half-recorded), so a delivery costs one round trip;
/// the statements are prepared once per connection (names prefixed `mailtrail_webhook_`).
class WebhookRepository {
 public:
  explicit WebhookRepository(pqxx::connection_base& connection);

  /// Inserts one delivery and returns the new row's id (kRecorded).
  /// A verified delivery whose `body_sha256` is already stored as verified is not inserted again
  /// (the partial unique index; `INSERT ... ON CONFLICT DO NOTHING`): the result is kDuplicate with
  /// the earlier row's id. Refused deliveries are always inserted, repeats included. A payload
  /// PostgreSQL's jsonb refuses (e.g. a `\u0000` escape) is stored as NULL rather than losing the
  /// delivery. Never returns kUnavailable: failures throw.
  domain::DeliveryRecordOutcome RecordDelivery(const domain::WebhookDelivery& delivery);

  /// Group commit: inserts `deliveries` with one multi-row statement (one round trip, one commit)
  /// and returns one outcome per delivery, in order, with RecordDelivery's meaning (a verified
  /// body repeated within the batch is recorded once, its repeats are kDuplicate of that row).
  /// When jsonb refuses one of the payloads the batch is recorded one by one instead, so that
  /// delivery alone loses its payload. All or nothing otherwise: a failure throws and nothing of
  /// the batch is stored.
  std::vector<domain::DeliveryRecordOutcome> RecordDeliveries(
      const std::vector<domain::WebhookDelivery>& deliveries);

  /// Sets `processed_at` of delivery `id` if it is not set yet (the first refresh wins). Returns
  /// true when this call set it.
  bool MarkProcessed(std::int64_t id, domain::Timestamp processed_at);

  /// MarkProcessed for many ids in one statement; returns how many rows this call set.
  std::size_t MarkProcessed(const std::vector<std::int64_t>& ids, domain::Timestamp processed_at);

  /// A verified delivery accepted (answered 2xx) but whose refresh never finished: the process
  /// died first. `payload` is the stored jsonb as text.
  struct Unprocessed {
    std::int64_t id = 0;
    std::string payload;
  };
  /// The oldest `limit` verified deliveries naming an order whose `processed_at` is still NULL
  /// and whose payload was stored, oldest first: what a starting daemon must refresh again.
  std::vector<Unprocessed> LoadUnprocessed(std::size_t limit);

 private:
  pqxx::connection_base& connection_;
};

}  // namespace mailtrail::store
