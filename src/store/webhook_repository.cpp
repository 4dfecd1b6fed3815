#include "store/webhook_repository.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <unordered_map>

namespace mailtrail::store {
namespace {

/// libpqxx 6.4 sends a null `const char*` as SQL NULL.
const char* OrNull(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

// One statement, so one round trip in autocommit: the insert and, for a verified replay, the
// earlier row's id. The SELECT arm sees the statement's snapshot, so a row a concurrent
// transaction committed after it started is not found there (RecordDelivery then asks again).
constexpr const char* kRecordName = "mailtrail_webhook_record";
constexpr const char* kRecord = R"sql(
WITH inserted AS (
  INSERT INTO mailtrail.webhook_deliveries
      (received_at, event_id, event_type, order_id, payload_format, verified, rejection_reason,
       payload, body_sha256)
  VALUES ($1::timestamptz, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
  ON CONFLICT (body_sha256) WHERE verified DO NOTHING
  RETURNING id)
SELECT id, true FROM inserted
UNION ALL
SELECT id, false FROM mailtrail.webhook_deliveries
WHERE verified AND body_sha256 = $9 AND NOT EXISTS (SELECT 1 FROM inserted)
)sql";

constexpr const char* kMarkName = "mailtrail_webhook_mark";
constexpr const char* kMark = R"sql(
UPDATE mailtrail.webhook_deliveries SET processed_at = $2::timestamptz
WHERE id = $1 AND processed_at IS NULL
)sql";

// Rows are numbered by their position in the arrays and inserted in that order, so the serial
// ids ascend with it: that is how refused rows (which may repeat a digest) are matched back.
constexpr const char* kRecordMany = R"sql(
INSERT INTO mailtrail.webhook_deliveries
    (received_at, event_id, event_type, order_id, payload_format, verified, rejection_reason,
     payload, body_sha256)
SELECT received_at, event_id, event_type, order_id, payload_format, verified, rejection_reason,
       payload::jsonb, body_sha256
FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[],
            $7::text[], $8::text[], $9::text[])
     WITH ORDINALITY AS batch(received_at, event_id, event_type, order_id, payload_format,
                              verified, rejection_reason, payload, body_sha256, position)
ORDER BY position
ON CONFLICT (body_sha256) WHERE verified DO NOTHING
RETURNING id, verified, body_sha256
)sql";

/// A PostgreSQL array literal with every element quoted (so any text is safe) and NULLs.
std::string ArrayLiteral(const std::vector<std::optional<std::string>>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    if (!items[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (const char c : *items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

constexpr const char* kFindVerified =
    "SELECT body_sha256, id FROM mailtrail.webhook_deliveries "
    "WHERE verified AND body_sha256 = ANY($1::text[])";

std::optional<domain::DeliveryRecordOutcome> Record(pqxx::connection_base& connection,
                                                    const domain::WebhookDelivery& delivery,
                                                    const std::optional<std::string>& payload) {
  connection.prepare(kRecordName, kRecord);  // a no-op once defined on this connection
  pqxx::nontransaction tx(connection);
  const pqxx::result rows = tx.exec_prepared(
      kRecordName, domain::FormatTimestamp(delivery.received_at), OrNull(delivery.event_id),
      OrNull(delivery.event_type), OrNull(delivery.order_id), OrNull(delivery.payload_format),
      delivery.verified, OrNull(delivery.rejection_reason), OrNull(payload), delivery.body_sha256);
  if (rows.empty()) return std::nullopt;
  const bool inserted = rows[0][1].as<bool>();
  return domain::DeliveryRecordOutcome{
      inserted ? domain::DeliveryRecordStatus::kRecorded : domain::DeliveryRecordStatus::kDuplicate,
      rows[0][0].as<std::int64_t>()};
}

}  // namespace

WebhookRepository::WebhookRepository(pqxx::connection_base& connection) : connection_(connection) {}

domain::DeliveryRecordOutcome WebhookRepository::RecordDelivery(
    const domain::WebhookDelivery& delivery) {
  std::optional<domain::DeliveryRecordOutcome> outcome;
  try {
    outcome = Record(connection_, delivery, delivery.payload);
  } catch (const pqxx::data_exception&) {
    // jsonb refuses some valid JSON (a \u0000 escape, lone surrogates). The delivery itself must
    // still be recorded, so keep everything but the payload.
    if (!delivery.payload) throw;
    outcome = Record(connection_, delivery, std::nullopt);
  }
  if (outcome) return *outcome;

  // A verified replay whose original a concurrent transaction (another replica) committed after
  // the insert's snapshot was taken: nothing was inserted, look the row up with a fresh snapshot.
  pqxx::nontransaction tx(connection_);
  const pqxx::result rows = tx.exec_params(
      "SELECT id FROM mailtrail.webhook_deliveries WHERE verified AND body_sha256 = $1",
      delivery.body_sha256);
  return {domain::DeliveryRecordStatus::kDuplicate,
          rows.empty() ? std::int64_t{0} : rows[0][0].as<std::int64_t>()};
}

std::vector<domain::DeliveryRecordOutcome> WebhookRepository::RecordDeliveries(
    const std::vector<domain::WebhookDelivery>& deliveries) {
  std::vector<domain::DeliveryRecordOutcome> outcomes;
  if (deliveries.empty()) return outcomes;
  if (deliveries.size() == 1) {
    outcomes.push_back(RecordDelivery(deliveries.front()));
    return outcomes;
  }

  // One array parameter per column: nine parameters however large the batch, and no value
  // ever spliced into the SQL text.
  std::vector<std::vector<std::optional<std::string>>> columns(9);
  for (const auto& d : deliveries) {
    columns[0].emplace_back(domain::FormatTimestamp(d.received_at));
    columns[1].push_back(d.event_id);
    columns[2].push_back(d.event_type);
    columns[3].push_back(d.order_id);
    columns[4].push_back(d.payload_format);
    columns[5].emplace_back(d.verified ? "true" : "false");
    columns[6].push_back(d.rejection_reason);
    columns[7].push_back(d.payload);
    columns[8].push_back(d.body_sha256);
  }
  std::vector<std::string> literals;
  literals.reserve(columns.size());
  for (const auto& column : columns) literals.push_back(ArrayLiteral(column));
  pqxx::result rows;
  try {
    pqxx::nontransaction tx(connection_);
    rows = tx.exec_params(kRecordMany, literals[0], literals[1], literals[2], literals[3],
                          literals[4], literals[5], literals[6], literals[7], literals[8]);
  } catch (const pqxx::data_exception&) {
    // One payload jsonb refuses made the whole statement fail (nothing was stored): record the
    // batch one by one, where only that delivery loses its payload.
    for (const auto& d : deliveries) outcomes.push_back(RecordDelivery(d));
    return outcomes;
  }

  std::unordered_map<std::string, std::int64_t> verified_ids;  // digest -> new row
  std::vector<std::int64_t> refused_ids;
  for (const auto& row : rows) {
    const auto id = row[0].as<std::int64_t>();
    if (row[1].as<bool>()) {
      verified_ids.emplace(row[2].c_str(), id);
    } else {
      refused_ids.push_back(id);
    }
  }
  std::sort(refused_ids.begin(), refused_ids.end());

  outcomes.resize(deliveries.size());
  std::size_t next_refused = 0;
  std::unordered_map<std::string, std::int64_t> claimed;  // digest -> row a batch member got
  std::vector<std::string> unresolved;                    // replays of rows stored before
  for (std::size_t i = 0; i < deliveries.size(); ++i) {
    const auto& d = deliveries[i];
    auto& outcome = outcomes[i];
    if (!d.verified) {
      if (next_refused >= refused_ids.size()) {
        throw std::logic_error("webhook_deliveries: fewer refused rows inserted than sent");
      }
      outcome = {domain::DeliveryRecordStatus::kRecorded, refused_ids[next_refused++]};
      continue;
    }
    if (auto it = claimed.find(d.body_sha256); it != claimed.end()) {
      outcome = {domain::DeliveryRecordStatus::kDuplicate, it->second};
      continue;
    }
    if (auto it = verified_ids.find(d.body_sha256); it != verified_ids.end()) {
      outcome = {domain::DeliveryRecordStatus::kRecorded, it->second};
      claimed.emplace(d.body_sha256, it->second);
      continue;
    }
    outcome = {domain::DeliveryRecordStatus::kDuplicate, 0};
    unresolved.push_back(d.body_sha256);
  }
  if (!unresolved.empty()) {
    pqxx::nontransaction tx(connection_);
    std::map<std::string, std::int64_t> earlier;
    const std::vector<std::optional<std::string>> digests(unresolved.begin(), unresolved.end());
    for (const auto& row : tx.exec_params(kFindVerified, ArrayLiteral(digests))) {
      earlier.emplace(row[0].c_str(), row[1].as<std::int64_t>());
    }
    for (std::size_t i = 0; i < deliveries.size(); ++i) {
      if (outcomes[i].status != domain::DeliveryRecordStatus::kDuplicate ||
          outcomes[i].delivery_id != 0) {
        continue;
      }
      if (auto it = earlier.find(deliveries[i].body_sha256); it != earlier.end()) {
        outcomes[i].delivery_id = it->second;
      }
    }
  }
  return outcomes;
}

bool WebhookRepository::MarkProcessed(std::int64_t id, domain::Timestamp processed_at) {
  connection_.prepare(kMarkName, kMark);
  pqxx::nontransaction tx(connection_);
  const pqxx::result rows = tx.exec_prepared(kMarkName, id, domain::FormatTimestamp(processed_at));
  return rows.affected_rows() == 1;
}

std::size_t WebhookRepository::MarkProcessed(const std::vector<std::int64_t>& ids,
                                             domain::Timestamp processed_at) {
  if (ids.empty()) return 0;
  std::string list = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i != 0) list += ',';
    list += std::to_string(ids[i]);
  }
  list += '}';
  pqxx::nontransaction tx(connection_);
  const pqxx::result rows = tx.exec_params(
      "UPDATE mailtrail.webhook_deliveries SET processed_at = $2::timestamptz "
      "WHERE id = ANY($1::bigint[]) AND processed_at IS NULL",
      list, domain::FormatTimestamp(processed_at));
  return static_cast<std::size_t>(rows.affected_rows());
}

std::vector<WebhookRepository::Unprocessed> WebhookRepository::LoadUnprocessed(std::size_t limit) {
  pqxx::read_transaction tx(connection_);
  const pqxx::result rows = tx.exec_params(
      "SELECT id, payload::text FROM mailtrail.webhook_deliveries WHERE verified AND "
      "processed_at IS NULL AND order_id IS NOT NULL AND payload IS NOT NULL ORDER BY id LIMIT $1",
      static_cast<std::int64_t>(limit));
  std::vector<Unprocessed> pending;
  pending.reserve(rows.size());
  for (const auto& row : rows) {
    pending.push_back({row[0].as<std::int64_t>(), row[1].as<std::string>()});
  }
  return pending;
}

}  // namespace mailtrail::store
