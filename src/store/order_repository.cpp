#include "store/order_repository.hpp"

#include <pqxx/pqxx>

#include "store/sql_params.hpp"

namespace mailtrail::store {
namespace {

using detail::MicrosToTimestamp;
using detail::SqlParams;

// Timestamps leave PostgreSQL as integer microseconds, so no text format is parsed on the way back.
constexpr const char* kSelectOrderColumns = R"sql(
  SELECT id, order_type, live, status, imb_status,
         (extract(epoch FROM imb_date) * 1000000)::bigint,
         imb_zip_code, tracking_number, mailing_class, extra_service,
         (extract(epoch FROM send_date) * 1000000)::bigint,
         carrier, carrier_status, carrier_status_detail,
         (extract(epoch FROM est_delivery_date) * 1000000)::bigint,
         signed_by, cancellation_reason, description, metadata::text,
         (extract(epoch FROM created_at) * 1000000)::bigint,
         (extract(epoch FROM updated_at) * 1000000)::bigint,
         envelope_id
  FROM mailtrail.orders WHERE id = $1
)sql";

constexpr const char* kInsertIfNew = R"sql(
  INSERT INTO mailtrail.orders (
      id, order_type, live, status, imb_status, imb_date, imb_zip_code, tracking_number,
      mailing_class, extra_service, send_date, carrier, carrier_status, carrier_status_detail,
      est_delivery_date, signed_by, cancellation_reason, description, metadata, created_at,
      updated_at, raw, envelope_id, first_seen_at, last_checked_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
          $19::jsonb, $20, $21, $22::jsonb, $23, $24, $24)
  ON CONFLICT (id) DO NOTHING
  RETURNING 1
)sql";

constexpr const char* kUpdateAll = R"sql(
  UPDATE mailtrail.orders SET
      order_type = $2, live = $3, status = $4, imb_status = $5, imb_date = $6,
      imb_zip_code = $7, tracking_number = $8, mailing_class = $9, extra_service = $10,
      send_date = $11, carrier = $12, carrier_status = $13, carrier_status_detail = $14,
      est_delivery_date = $15, signed_by = $16, cancellation_reason = $17, description = $18,
      metadata = $19::jsonb, created_at = $20, updated_at = $21, raw = $22::jsonb,
      envelope_id = coalesce($23, envelope_id),
      last_checked_at = $24,
      last_changed_at = CASE WHEN $25::boolean THEN $24 ELSE last_changed_at END,
      next_check_at = $26, terminal = $27, check_reason = $28
  WHERE id = $1
)sql";

constexpr const char* kUpdateChecked = R"sql(
  UPDATE mailtrail.orders SET last_checked_at = $2, next_check_at = $3, terminal = $4,
                              check_reason = $5
  WHERE id = $1
)sql";

constexpr const char* kInsertChange = R"sql(
  INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at,
                                       source, api_updated_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
)sql";

constexpr const char* kInsertTrackingEvent = R"sql(
  INSERT INTO mailtrail.carrier_tracking_events (order_id, occurred_at, status, message, source,
      city, province_or_state, country_code, postal_or_zip, first_seen_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
  ON CONFLICT (order_id, occurred_at, status, message) DO NOTHING
)sql";

constexpr const char* kSelectTrackingEvents = R"sql(
  SELECT (extract(epoch FROM occurred_at) * 1000000)::bigint, status, message, source, city,
         province_or_state, country_code, postal_or_zip
  FROM mailtrail.carrier_tracking_events WHERE order_id = $1
  ORDER BY occurred_at, status, message
)sql";

constexpr const char* kCompletedSince = R"sql(
  SELECT (extract(epoch FROM min(coalesce(api_updated_at, observed_at))) * 1000000)::bigint
  FROM mailtrail.order_changes
  WHERE order_id = $1 AND field = 'status' AND new_value = 'completed'
)sql";

std::optional<std::string> OptionalText(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return field.as<std::string>();
}

std::optional<std::string> NonEmpty(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text;
}

// The typed columns $1..$23 of kInsertIfNew and kUpdateAll, in that order.
SqlParams TypedColumns(const domain::OrderSnapshot& order, std::string_view raw_json) {
  SqlParams params;
  const auto& carrier = order.carrier_tracking;
  params.Add(order.ref.id)
      .Add(domain::EndpointName(order.ref.type))
      .Add(order.live)
      .Add(order.status.raw)
      .Add(order.imb_status ? std::optional<std::string>(order.imb_status->raw) : std::nullopt)
      .Add(order.imb_date)
      .Add(order.imb_zip_code)
      .Add(order.tracking_number)
      .Add(order.mailing_class)
      .Add(order.extra_service)
      .Add(order.send_date)
      .Add(carrier ? carrier->carrier : std::nullopt)
      .Add(carrier && carrier->status ? std::optional<std::string>(carrier->status->raw)
                                      : std::nullopt)
      .Add(carrier ? carrier->status_detail : std::nullopt)
      .Add(carrier ? carrier->est_delivery_date : std::nullopt)
      .Add(carrier ? carrier->signed_by : std::nullopt)
      .Add(order.cancellation_reason)
      .Add(order.description)
      .Add(order.metadata_json)
      .Add(order.created_at)
      .Add(order.updated_at)
      .Add(std::string(raw_json))
      .Add(NonEmpty(order.ref.envelope_id));
  return params;
}

domain::OrderSnapshot RowToSnapshot(const pqxx::row& row) {
  domain::OrderSnapshot order;
  order.ref.id = row[0].as<std::string>();
  order.ref.type =
      domain::OrderTypeFromEndpoint(row[1].as<std::string>()).value_or(domain::OrderType::kLetter);
  order.live = row[2].as<bool>();
  order.status = domain::OrderStatus::FromRaw(row[3].is_null() ? "" : row[3].as<std::string>());
  if (!row[4].is_null()) order.imb_status = domain::ImbStatus::FromRaw(row[4].as<std::string>());
  order.imb_date = MicrosToTimestamp(row[5]);
  order.imb_zip_code = OptionalText(row[6]);
  order.tracking_number = OptionalText(row[7]);
  order.mailing_class = OptionalText(row[8]);
  order.extra_service = OptionalText(row[9]);
  order.send_date = MicrosToTimestamp(row[10]);
  domain::CarrierTracking carrier;
  carrier.carrier = OptionalText(row[11]);
  if (!row[12].is_null())
    carrier.status = domain::CarrierStatus::FromRaw(row[12].as<std::string>());
  carrier.status_detail = OptionalText(row[13]);
  carrier.est_delivery_date = MicrosToTimestamp(row[14]);
  carrier.signed_by = OptionalText(row[15]);
  if (carrier.carrier || carrier.status || carrier.status_detail || carrier.est_delivery_date ||
      carrier.signed_by) {
    order.carrier_tracking = std::move(carrier);
  }
  order.cancellation_reason = OptionalText(row[16]);
  order.description = OptionalText(row[17]);
  order.metadata_json = OptionalText(row[18]);
  order.created_at = MicrosToTimestamp(row[19]);
  order.updated_at = MicrosToTimestamp(row[20]);
  if (!row[21].is_null()) order.ref.envelope_id = row[21].as<std::string>();
  return order;
}

std::vector<domain::TrackingUpdate> LoadTrackingEvents(pqxx::transaction_base& tx,
                                                       const std::string& id) {
  std::vector<domain::TrackingUpdate> updates;
  for (const auto& row : SqlParams().Add(id).Exec(tx, kSelectTrackingEvents)) {
    domain::TrackingUpdate update;
    update.occurred_at = *MicrosToTimestamp(row[0]);
    update.status = domain::CarrierStatus::FromRaw(row[1].as<std::string>());
    update.message = row[2].as<std::string>();
    update.source = OptionalText(row[3]);
    update.city = OptionalText(row[4]);
    update.province_or_state = OptionalText(row[5]);
    update.country_code = OptionalText(row[6]);
    update.postal_or_zip = OptionalText(row[7]);
    updates.push_back(std::move(update));
  }
  return updates;
}

std::optional<domain::OrderSnapshot> LoadLocked(pqxx::transaction_base& tx, const std::string& id,
                                                bool for_update) {
  const std::string sql = std::string(kSelectOrderColumns) + (for_update ? " FOR UPDATE" : "");
  const pqxx::result rows = SqlParams().Add(id).Exec(tx, sql);
  if (rows.empty()) return std::nullopt;
  domain::OrderSnapshot order = RowToSnapshot(rows[0]);
  auto updates = LoadTrackingEvents(tx, id);
  if (!updates.empty()) {
    if (!order.carrier_tracking) order.carrier_tracking.emplace();
    order.carrier_tracking->updates = std::move(updates);
  }
  return order;
}

}  // namespace

std::string_view SourceName(Source source) {
  switch (source) {
    case Source::kDiscovery:
      return "discovery";
    case Source::kPoll:
      return "poll";
    case Source::kWebhook:
      return "webhook";
    case Source::kBackfill:
      return "backfill";
    case Source::kManual:
      return "manual";
  }
  return "poll";
}

OrderRepository::OrderRepository(pqxx::connection_base& connection, domain::PollPolicy policy,
                                 std::function<double()> random01)
    : connection_(connection), policy_(policy), random01_(std::move(random01)) {}

ApplyResult OrderRepository::Apply(const domain::OrderSnapshot& fetched, std::string_view raw_json,
                                   Source source, domain::Timestamp observed_at) {
  pqxx::work tx(connection_);
  ApplyResult result;

  // Inserting first means a brand-new order's row exists, and is locked by us, before anything
  // is diffed: a concurrent first observation waits on it and then sees our committed row.
  SqlParams insert = TypedColumns(fetched, raw_json);
  insert.Add(observed_at);
  result.first_observation = !insert.Exec(tx, kInsertIfNew).empty();

  std::optional<domain::OrderSnapshot> stored;
  if (!result.first_observation) stored = LoadLocked(tx, fetched.ref.id, /*for_update=*/true);
  const domain::OrderDiff diff = domain::Diff(stored, fetched);
  result.stale = diff.stale;
  const domain::OrderSnapshot& current = diff.stale ? *stored : fetched;

  std::optional<domain::Timestamp> completed_since;
  if (current.status.kind == domain::OrderStatus::Kind::kCompleted) {
    completed_since =
        MicrosToTimestamp(SqlParams().Add(fetched.ref.id).Exec(tx, kCompletedSince)[0][0]);
    if (!completed_since) completed_since = fetched.updated_at.value_or(observed_at);
  }
  result.schedule = domain::DecideSchedule(current, observed_at, policy_, completed_since,
                                           result.first_observation, random01_());
  const std::string reason(domain::CheckReasonName(result.schedule.reason));

  if (diff.stale) {
    SqlParams()
        .Add(fetched.ref.id)
        .Add(observed_at)
        .Add(result.schedule.next_check_at)
        .Add(result.schedule.terminal)
        .Add(reason)
        .Exec(tx, kUpdateChecked);
    tx.commit();
    return result;
  }

  SqlParams update = TypedColumns(fetched, raw_json);
  update.Add(observed_at)
      .Add(!diff.changes.empty() || !diff.new_updates.empty())
      .Add(result.schedule.next_check_at)
      .Add(result.schedule.terminal)
      .Add(reason);
  update.Exec(tx, kUpdateAll);

  const std::string source_name(SourceName(source));
  for (const auto& change : diff.changes) {
    SqlParams()
        .Add(fetched.ref.id)
        .Add(domain::FieldName(change.field))
        .Add(change.old_value)
        .Add(change.new_value)
        .Add(observed_at)
        .Add(source_name)
        .Add(fetched.updated_at)
        .Exec(tx, kInsertChange);
  }
  for (const auto& update_event : diff.new_updates) {
    const pqxx::result inserted = SqlParams()
                                      .Add(fetched.ref.id)
                                      .Add(update_event.occurred_at)
                                      .Add(update_event.status.raw)
                                      .Add(update_event.message)
                                      .Add(update_event.source)
                                      .Add(update_event.city)
                                      .Add(update_event.province_or_state)
                                      .Add(update_event.country_code)
                                      .Add(update_event.postal_or_zip)
                                      .Add(observed_at)
                                      .Exec(tx, kInsertTrackingEvent);
    result.new_tracking_events += inserted.affected_rows();
  }
  tx.commit();
  result.changes = diff.changes;
  return result;
}

std::optional<domain::OrderSnapshot> OrderRepository::Load(std::string_view id) {
  pqxx::read_transaction tx(connection_);
  return LoadLocked(tx, std::string(id), /*for_update=*/false);
}

std::vector<DueOrder> OrderRepository::ClaimDue(domain::Timestamp now, std::size_t limit,
                                                std::chrono::milliseconds lease,
                                                const std::vector<domain::OrderType>& types) {
  std::vector<std::string> type_names;
  for (auto type : types) type_names.emplace_back(domain::EndpointName(type));
  pqxx::work tx(connection_);
  const pqxx::result rows = SqlParams()
                                .Add(now)
                                .Add(static_cast<std::int64_t>(limit))
                                .Add(static_cast<std::int64_t>(lease.count()))
                                .Add(detail::TextArrayLiteral(type_names))
                                .Exec(tx, R"sql(
            WITH due AS (
              SELECT id FROM mailtrail.orders
              WHERE NOT terminal AND next_check_at <= $1::timestamptz
                AND order_type = ANY($4::text[])
              ORDER BY next_check_at
              LIMIT $2::bigint
              FOR UPDATE SKIP LOCKED)
            UPDATE mailtrail.orders o
            SET next_check_at = $1::timestamptz + $3::bigint * interval '1 millisecond'
            FROM due WHERE o.id = due.id
            RETURNING o.id, o.order_type, o.envelope_id, o.check_reason)sql");
  tx.commit();
  std::vector<DueOrder> due;
  due.reserve(rows.size());
  for (const auto& row : rows) {
    DueOrder order;
    order.ref.id = row[0].as<std::string>();
    order.ref.type = domain::OrderTypeFromEndpoint(row[1].as<std::string>())
                         .value_or(domain::OrderType::kLetter);
    if (!row[2].is_null()) order.ref.envelope_id = row[2].as<std::string>();
    order.check_reason = row[3].is_null() ? "" : row[3].as<std::string>();
    due.push_back(std::move(order));
  }
  return due;
}

bool OrderRepository::Reschedule(std::string_view id, domain::Timestamp when,
                                 std::string_view reason) {
  pqxx::work tx(connection_);
  const pqxx::result rows = SqlParams().Add(id).Add(when).Add(reason).Exec(tx, R"sql(
    UPDATE mailtrail.orders SET next_check_at = $2, check_reason = $3
    WHERE id = $1 AND NOT terminal RETURNING 1)sql");
  tx.commit();
  return !rows.empty();
}

std::unordered_map<std::string, OrderRepository::StoredState> OrderRepository::StoredStates(
    const std::vector<std::string>& ids) {
  pqxx::read_transaction tx(connection_);
  std::unordered_map<std::string, StoredState> stored;
  for (const auto& row :
       SqlParams()
           .Add(detail::TextArrayLiteral(ids))
           .Exec(tx,
                 "SELECT id, (extract(epoch FROM updated_at) * 1000000)::bigint, "
                 "(extract(epoch FROM next_check_at) * 1000000)::bigint, terminal "
                 "FROM mailtrail.orders WHERE id = ANY($1::text[])")) {
    stored.emplace(
        row[0].as<std::string>(),
        StoredState{MicrosToTimestamp(row[1]), MicrosToTimestamp(row[2]), row[3].as<bool>()});
  }
  return stored;
}

std::pair<std::int64_t, std::int64_t> OrderRepository::CountDueBefore(domain::OrderType type,
                                                                      domain::Timestamp horizon) {
  pqxx::read_transaction tx(connection_);
  const auto row = SqlParams()
                       .Add(domain::EndpointName(type))
                       .Add(horizon)
                       .Exec(tx,
                             "SELECT count(*) FILTER (WHERE NOT terminal AND next_check_at <= $2), "
                             "count(*) FROM mailtrail.orders WHERE order_type = $1")[0];
  return {row[0].as<std::int64_t>(), row[1].as<std::int64_t>()};
}

}  // namespace mailtrail::store
