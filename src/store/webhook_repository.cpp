#include "store/webhook_repository.hpp"

#include <optional>
#include <pqxx/pqxx>
#include <string>

namespace mailtrail::store {
namespace {

/// libpqxx 6.4 sends a null `const char*` as SQL NULL.
const char* OrNull(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

constexpr const char* kInsert = R"sql(
INSERT INTO mailtrail.webhook_deliveries
    (received_at, event_id, event_type, order_id, payload_format, verified, rejection_reason,
     payload, body_sha256)
VALUES ($1::timestamptz, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
ON CONFLICT (body_sha256) WHERE verified DO NOTHING
RETURNING id
)sql";

std::optional<std::int64_t> Insert(pqxx::connection_base& connection,
                                   const domain::WebhookDelivery& delivery,
                                   const std::optional<std::string>& payload) {
  pqxx::work tx(connection);
  const pqxx::result rows = tx.exec_params(
      kInsert, domain::FormatTimestamp(delivery.received_at), OrNull(delivery.event_id),
      OrNull(delivery.event_type), OrNull(delivery.order_id), OrNull(delivery.payload_format),
      delivery.verified, OrNull(delivery.rejection_reason), OrNull(payload), delivery.body_sha256);
  tx.commit();
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::int64_t>();
}

}  // namespace

WebhookRepository::WebhookRepository(pqxx::connection_base& connection) : connection_(connection) {}

domain::DeliveryRecordOutcome WebhookRepository::RecordDelivery(
    const domain::WebhookDelivery& delivery) {
  std::optional<std::int64_t> id;
  try {
    id = Insert(connection_, delivery, delivery.payload);
  } catch (const pqxx::data_exception&) {
    // jsonb refuses some valid JSON (a \u0000 escape, lone surrogates). The delivery itself must
    // still be recorded, so keep everything but the payload.
    if (!delivery.payload) throw;
    id = Insert(connection_, delivery, std::nullopt);
  }
  if (id) return {domain::DeliveryRecordStatus::kRecorded, *id};

  pqxx::read_transaction tx(connection_);
  const pqxx::result rows = tx.exec_params(
      "SELECT id FROM mailtrail.webhook_deliveries WHERE verified AND body_sha256 = $1",
      delivery.body_sha256);
  return {domain::DeliveryRecordStatus::kDuplicate,
          rows.empty() ? std::int64_t{0} : rows[0][0].as<std::int64_t>()};
}

bool WebhookRepository::MarkProcessed(std::int64_t id, domain::Timestamp processed_at) {
  pqxx::work tx(connection_);
  const pqxx::result rows = tx.exec_params(
      "UPDATE mailtrail.webhook_deliveries SET processed_at = $2::timestamptz "
      "WHERE id = $1 AND processed_at IS NULL",
      id, domain::FormatTimestamp(processed_at));
  tx.commit();
  return rows.affected_rows() == 1;
}

}  // namespace mailtrail::store
