#include "store/order_repository.hpp"

#include <algorithm>
#include <pqxx/pqxx>
#include <unordered_set>

#include "store/sql_params.hpp"

namespace mailtrail::store {
namespace {

using detail::MicrosToTimestamp;
using detail::SqlArrays;
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
  FROM mailtrail.orders
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

constexpr const char* kInsertTrackingEvent = R"sql(
  INSERT INTO mailtrail.carrier_tracking_events (order_id, occurred_at, status, message, source,
      city, province_or_state, country_code, postal_or_zip, first_seen_at, order_type)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  ON CONFLICT (order_id, occurred_at, status, message) DO NOTHING
)sql";

constexpr const char* kSelectTrackingEvents = R"sql(
  SELECT (extract(epoch FROM occurred_at) * 1000000)::bigint, status, message, source, city,
         province_or_state, country_code, postal_or_zip
  FROM mailtrail.carrier_tracking_events WHERE order_id = $1
  ORDER BY occurred_at, status, message
)sql";

// When the order first became completed: order_stage_times.completed_at is, by its definition in
// migration 0006, the earliest coalesce(api_updated_at, observed_at) of the order's status changes
// to `completed`, kept by the order_changes insert trigger in the same transaction. Read by primary
// key: the same figure from order_changes needs the order's whole history, and with the stale
// statistics of a growing table PostgreSQL answered it with a BitmapAnd over every `status` change
// of the field index (3.5 ms a page in bench/write_path, growing with the table). The scalar
// subquery returns one row (NULL) for an order with no row there.
constexpr const char* kCompletedSince = R"sql(
  SELECT (extract(epoch FROM (SELECT completed_at FROM mailtrail.order_stage_times
                              WHERE order_id = $1)) * 1000000)::bigint
)sql";

// ---- ApplyBatch: one statement per step for the whole page, rows as unnest()ed arrays ----

// The 23 typed columns as unnest() arguments and their names, shared by the batch statements.
// metadata ($19) and raw ($22) travel as text[] and are cast row by row (kTypedValues): reading a
// page's JSON as a jsonb[] parameter took PostgreSQL about twice the CPU of the same text[]
// cast one unnest()ed row at a time (11.7 against 6.1 us per 750-byte order, 100 to an array).
constexpr const char* kTypedArrays = R"sql(
      $1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::timestamptz[],
      $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[],
      $13::text[], $14::text[], $15::timestamptz[], $16::text[], $17::text[], $18::text[],
      $19::text[], $20::timestamptz[], $21::timestamptz[], $22::text[], $23::text[])sql";
constexpr const char* kTypedNames = R"sql(
      id, order_type, live, status, imb_status, imb_date, imb_zip_code, tracking_number,
      mailing_class, extra_service, send_date, carrier, carrier_status, carrier_status_detail,
      est_delivery_date, signed_by, cancellation_reason, description, metadata, created_at,
      updated_at, raw, envelope_id)sql";
// kTypedNames' values read from unnest(kTypedArrays) AS v(kTypedNames), the JSON ones cast.
constexpr const char* kTypedValues = R"sql(
      v.id, v.order_type, v.live, v.status, v.imb_status, v.imb_date, v.imb_zip_code,
      v.tracking_number, v.mailing_class, v.extra_service, v.send_date, v.carrier,
      v.carrier_status, v.carrier_status_detail, v.est_delivery_date, v.signed_by,
      v.cancellation_reason, v.description, v.metadata::jsonb, v.created_at, v.updated_at,
      v.raw::jsonb, v.envelope_id)sql";

// New orders with their final values (what Apply's insert + update leave): $24..$27 are
// last_changed_at, next_check_at, terminal, check_reason per row; $28 the observation time.
const std::string& InsertNewSql() {
  static const std::string sql =
      std::string("INSERT INTO mailtrail.orders (") + kTypedNames +
      ", last_changed_at, next_check_at, terminal, check_reason, first_seen_at, "
      "last_checked_at)\n"
      "SELECT" +
      kTypedValues +
      ",\n      v.last_changed_at, v.next_check_at, v.terminal, v.check_reason, $28::timestamptz, "
      "$28::timestamptz\nFROM unnest(" +
      kTypedArrays +
      ", $24::timestamptz[], $25::timestamptz[], $26::boolean[], $27::text[]) AS v(" + kTypedNames +
      ", last_changed_at, next_check_at, terminal, check_reason)\n"
      "ON CONFLICT (id) DO NOTHING RETURNING id";
  return sql;
}

// Known orders, diffed and not stale: kUpdateAll for many rows. $24 changed, $25 next_check_at,
// $26 terminal, $27 check_reason per row; $28 the observation time.
const std::string& UpdateAllSql() {
  static const std::string sql =
      std::string(R"sql(
  UPDATE mailtrail.orders o SET
      order_type = v.order_type, live = v.live, status = v.status, imb_status = v.imb_status,
      imb_date = v.imb_date, imb_zip_code = v.imb_zip_code, tracking_number = v.tracking_number,
      mailing_class = v.mailing_class, extra_service = v.extra_service, send_date = v.send_date,
      carrier = v.carrier, carrier_status = v.carrier_status,
      carrier_status_detail = v.carrier_status_detail, est_delivery_date = v.est_delivery_date,
      signed_by = v.signed_by, cancellation_reason = v.cancellation_reason,
      description = v.description, metadata = v.metadata::jsonb, created_at = v.created_at,
      updated_at = v.updated_at, raw = v.raw::jsonb,
      envelope_id = coalesce(v.envelope_id, o.envelope_id),
      last_checked_at = $28::timestamptz,
      last_changed_at = CASE WHEN v.changed THEN $28::timestamptz ELSE o.last_changed_at END,
      next_check_at = v.next_check_at, terminal = v.terminal, check_reason = v.check_reason
  FROM unnest()sql") +
      kTypedArrays + ", $24::boolean[], $25::timestamptz[], $26::boolean[], $27::text[]) AS v(" +
      kTypedNames + ", changed, next_check_at, terminal, check_reason)\n  WHERE o.id = v.id";
  return sql;
}

// Known orders whose snapshot was stale: kUpdateChecked for many rows.
constexpr const char* kUpdateCheckedBatch = R"sql(
  UPDATE mailtrail.orders o SET last_checked_at = $5::timestamptz, next_check_at = v.next_check_at,
                                terminal = v.terminal, check_reason = v.check_reason
  FROM unnest($1::text[], $2::timestamptz[], $3::boolean[], $4::text[])
      AS v(id, next_check_at, terminal, check_reason)
  WHERE o.id = v.id
)sql";

// unnest() yields the rows in array order, so each order's changes get ascending ids in Diff's
// order, as Apply's one-by-one inserts gave them. Every history row carries its order's type
// (migration 0009: order_timeline reads it there instead of joining orders).
constexpr const char* kInsertChangesBatch = R"sql(
  INSERT INTO mailtrail.order_changes (order_id, order_type, field, old_value, new_value,
                                       api_updated_at, observed_at, source)
  SELECT v.*, $7::timestamptz, $8::text
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS v
)sql";

constexpr const char* kInsertTrackingEventsBatch = R"sql(
  INSERT INTO mailtrail.carrier_tracking_events (order_id, order_type, occurred_at, status,
      message, source, city, province_or_state, country_code, postal_or_zip, first_seen_at)
  SELECT v.*, $11::timestamptz
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::text[], $9::text[], $10::text[]) AS v
  ON CONFLICT (order_id, occurred_at, status, message) DO NOTHING
  RETURNING order_id
)sql";

constexpr const char* kSelectTrackingEventsBatch = R"sql(
  SELECT order_id, (extract(epoch FROM occurred_at) * 1000000)::bigint, status, message, source,
         city, province_or_state, country_code, postal_or_zip
  FROM mailtrail.carrier_tracking_events WHERE order_id = ANY($1::text[])
  ORDER BY order_id, occurred_at, status, message
)sql";

// kCompletedSince for a page.
constexpr const char* kCompletedSinceBatch = R"sql(
  SELECT order_id, (extract(epoch FROM completed_at) * 1000000)::bigint
  FROM mailtrail.order_stage_times
  WHERE order_id = ANY($1::text[]) AND completed_at IS NOT NULL
)sql";

std::optional<std::string> OptionalText(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return field.as<std::string>();
}

std::optional<std::string> NonEmpty(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text;
}

// The typed columns $1..$23 of kInsertIfNew and kUpdateAll, in that order (also the first 23
// arrays of the batch statements): `sink` is a SqlParams or a SqlArrays row.
template <typename Sink>
void AddTypedColumns(Sink& params, const domain::OrderSnapshot& order, std::string_view raw_json) {
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
}

SqlParams TypedColumns(const domain::OrderSnapshot& order, std::string_view raw_json) {
  SqlParams params;
  AddTypedColumns(params, order, raw_json);
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

domain::TrackingUpdate RowToTrackingUpdate(const pqxx::row& row, pqxx::row::size_type first) {
  domain::TrackingUpdate update;
  update.occurred_at = *MicrosToTimestamp(row[first]);
  update.status = domain::CarrierStatus::FromRaw(row[first + 1].as<std::string>());
  update.message = row[first + 2].as<std::string>();
  update.source = OptionalText(row[first + 3]);
  update.city = OptionalText(row[first + 4]);
  update.province_or_state = OptionalText(row[first + 5]);
  update.country_code = OptionalText(row[first + 6]);
  update.postal_or_zip = OptionalText(row[first + 7]);
  return update;
}

std::vector<domain::TrackingUpdate> LoadTrackingEvents(pqxx::transaction_base& tx,
                                                       const std::string& id) {
  std::vector<domain::TrackingUpdate> updates;
  for (const auto& row : SqlParams().Add(id).Exec(tx, kSelectTrackingEvents)) {
    updates.push_back(RowToTrackingUpdate(row, 0));
  }
  return updates;
}

std::optional<domain::OrderSnapshot> LoadLocked(pqxx::transaction_base& tx, const std::string& id,
                                                bool for_update) {
  const std::string sql =
      std::string(kSelectOrderColumns) + " WHERE id = $1" + (for_update ? " FOR UPDATE" : "");
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

// Locks the stored rows of `ids` (in id order, so two writers never lock in opposite orders) and
// reads them, with the carrier events of those in `with_events` (Diff needs the stored events only
// to tell which fetched tracking updates are new). Ids not stored are absent from the result; the
// snapshots are held as optionals, the form Diff takes, so none is copied to be diffed.
using StoredSnapshots = std::unordered_map<std::string, std::optional<domain::OrderSnapshot>>;
StoredSnapshots LockStored(pqxx::transaction_base& tx, const std::vector<std::string>& ids,
                           const std::vector<std::string>& with_events) {
  static const std::string kLockByIds =
      std::string(kSelectOrderColumns) + " WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE";
  StoredSnapshots stored;
  for (const auto& row : SqlParams().Add(detail::TextArrayLiteral(ids)).Exec(tx, kLockByIds)) {
    domain::OrderSnapshot order = RowToSnapshot(row);
    std::string id = order.ref.id;
    stored.emplace(std::move(id), std::move(order));
  }
  if (stored.empty() || with_events.empty()) return stored;
  for (const auto& row : SqlParams()
                             .Add(detail::TextArrayLiteral(with_events))
                             .Exec(tx, kSelectTrackingEventsBatch)) {
    const auto found = stored.find(row[0].as<std::string>());
    if (found == stored.end()) continue;
    auto& order = *found->second;
    if (!order.carrier_tracking) order.carrier_tracking.emplace();
    order.carrier_tracking->updates.push_back(RowToTrackingUpdate(row, 1));
  }
  return stored;
}

// PostGrid moves updatedAt on every change (postgrid-api.md): a fetched snapshot that is not stale,
// has nothing to record and carries the stored updatedAt is the stored object again. Only the check
// is written for it (the row keeps its typed columns and raw: an hourly poll of an order that did
// not move rewrites no 2 KB raw object).
bool SameAsStored(const domain::OrderSnapshot& stored, const domain::OrderSnapshot& fetched,
                  const domain::OrderDiff& diff) {
  return !diff.stale && diff.changes.empty() && diff.new_updates.empty() &&
         fetched.updated_at.has_value() && fetched.updated_at == stored.updated_at &&
         (fetched.ref.envelope_id.empty() || fetched.ref.envelope_id == stored.ref.envelope_id);
}

// One row of kInsertChangesBatch's arrays per change of `fetched`, in Diff's order.
void AddChangeRows(SqlArrays& rows, const domain::OrderSnapshot& fetched,
                   const std::vector<domain::FieldChange>& changes) {
  for (const auto& change : changes) {
    rows.Add(fetched.ref.id)
        .Add(domain::EndpointName(fetched.ref.type))
        .Add(domain::FieldName(change.field))
        .Add(change.old_value)
        .Add(change.new_value)
        .Add(fetched.updated_at)
        .EndRow();
  }
}

// One statement for all the rows: the summaries' statement-level triggers (migrations 0006,
// 0008) then run once for them.
void InsertChangeRows(pqxx::transaction_base& tx, const SqlArrays& rows,
                      domain::Timestamp observed_at, const std::string& source_name) {
  if (rows.empty()) return;
  SqlParams params;
  rows.AppendTo(params);
  params.Add(observed_at).Add(source_name).Exec(tx, kInsertChangesBatch);
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

  if (diff.stale || (stored && SameAsStored(*stored, fetched, diff))) {
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
  SqlArrays changes(6);
  AddChangeRows(changes, fetched, diff.changes);
  InsertChangeRows(tx, changes, observed_at, source_name);
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
                                      .Add(domain::EndpointName(fetched.ref.type))
                                      .Exec(tx, kInsertTrackingEvent);
    result.new_tracking_events += inserted.affected_rows();
  }
  tx.commit();
  result.changes = diff.changes;
  return result;
}

std::vector<ApplyResult> OrderRepository::ApplyBatch(const std::vector<SnapshotToApply>& items,
                                                     Source source, domain::Timestamp observed_at) {
  std::vector<ApplyResult> results(items.size());
  if (items.empty()) return results;
  // Round k holds the k-th occurrence of each id, so no statement meets one id twice and a
  // repeated id is diffed against what its previous occurrence wrote (same transaction).
  std::vector<std::vector<std::size_t>> rounds;
  std::unordered_map<std::string_view, std::size_t> occurrences;
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::size_t& seen = occurrences[items[i].snapshot.ref.id];
    if (rounds.size() <= seen) rounds.emplace_back();
    rounds[seen].push_back(i);
    ++seen;
  }
  pqxx::work tx(connection_);
  for (auto& round : rounds) {
    // Rows are inserted and locked in id order, so two batches cannot lock in opposite orders.
    std::sort(round.begin(), round.end(), [&items](std::size_t a, std::size_t b) {
      return items[a].snapshot.ref.id < items[b].snapshot.ref.id;
    });
    ApplyRound(tx, items, round, source, observed_at, results);
  }
  tx.commit();
  return results;
}

void OrderRepository::ApplyRound(pqxx::transaction_base& tx,
                                 const std::vector<SnapshotToApply>& items,
                                 const std::vector<std::size_t>& round, Source source,
                                 domain::Timestamp observed_at, std::vector<ApplyResult>& results) {
  const auto completed = [](const domain::OrderSnapshot& order) {
    return order.status.kind == domain::OrderStatus::Kind::kCompleted;
  };
  // 1. Lock the stored rows of the round (in id order) and read them and their carrier events.
  //    Orders already stored are most of a poll's round, and their raw objects are sent once,
  //    with the update, instead of once more with an insert that would find them.
  std::vector<std::string> ids;
  std::vector<std::string> tracked_ids;  // fetched with tracking updates
  ids.reserve(round.size());
  for (std::size_t index : round) {
    const domain::OrderSnapshot& fetched = items[index].snapshot;
    ids.push_back(fetched.ref.id);
    if (fetched.carrier_tracking && !fetched.carrier_tracking->updates.empty()) {
      tracked_ids.push_back(fetched.ref.id);
    }
  }
  StoredSnapshots stored = LockStored(tx, ids, tracked_ids);

  // 2. Insert the orders not stored with the values Apply's insert + update would leave, so a new
  //    order is written once. For a new order Diff and DecideSchedule need nothing stored: no
  //    history can exist for it (order_changes references orders), so its completed_since is the
  //    snapshot's updatedAt, as in Apply.
  std::vector<double> random(round.size());
  std::vector<domain::OrderDiff> first_diffs(round.size());
  std::vector<domain::ScheduleDecision> first_schedules(round.size());
  SqlArrays insert(27);
  for (std::size_t k = 0; k < round.size(); ++k) {
    random[k] = random01_();
    const SnapshotToApply& item = items[round[k]];
    if (stored.count(item.snapshot.ref.id)) continue;
    first_diffs[k] = domain::Diff(std::nullopt, item.snapshot);
    std::optional<domain::Timestamp> completed_since;
    if (completed(item.snapshot)) completed_since = item.snapshot.updated_at.value_or(observed_at);
    first_schedules[k] =
        domain::DecideSchedule(item.snapshot, observed_at, policy_, completed_since,
                               /*first_observation=*/true, random[k]);
    const bool changed = !first_diffs[k].changes.empty() || !first_diffs[k].new_updates.empty();
    AddTypedColumns(insert, item.snapshot, item.raw_json);
    insert.Add(changed ? std::optional<domain::Timestamp>(observed_at) : std::nullopt)
        .Add(first_schedules[k].next_check_at)
        .Add(first_schedules[k].terminal)
        .Add(domain::CheckReasonName(first_schedules[k].reason))
        .EndRow();
  }
  std::unordered_set<std::string> inserted;
  if (!insert.empty()) {
    SqlParams insert_params;
    insert.AppendTo(insert_params);
    for (const auto& row : insert_params.Add(observed_at).Exec(tx, InsertNewSql())) {
      inserted.insert(row[0].as<std::string>());
    }
    // Another writer committed some of them between 1 and 2 (the insert waited for it and did
    // nothing): those are known orders now, locked and read as the others were.
    std::vector<std::string> raced;
    for (const auto& id : ids) {
      if (!stored.count(id) && !inserted.count(id)) raced.push_back(id);
    }
    if (!raced.empty()) stored.merge(LockStored(tx, raced, tracked_ids));
  }

  // 3. Diff the known ones; completed_since as Apply reads it, before this batch's changes.
  std::vector<domain::OrderDiff> diffs(round.size());
  std::vector<std::string> completed_ids;
  for (std::size_t k = 0; k < round.size(); ++k) {
    const domain::OrderSnapshot& fetched = items[round[k]].snapshot;
    if (inserted.count(fetched.ref.id)) continue;
    static const std::optional<domain::OrderSnapshot> kNotStored;
    const auto found = stored.find(fetched.ref.id);
    const std::optional<domain::OrderSnapshot>& previous =
        found == stored.end() ? kNotStored : found->second;
    diffs[k] = domain::Diff(previous, fetched);
    if (completed(diffs[k].stale ? *previous : fetched)) completed_ids.push_back(fetched.ref.id);
  }
  std::unordered_map<std::string, domain::Timestamp> completed_since;
  if (!completed_ids.empty()) {
    for (const auto& row :
         SqlParams().Add(detail::TextArrayLiteral(completed_ids)).Exec(tx, kCompletedSinceBatch)) {
      if (auto since = MicrosToTimestamp(row[1])) {
        completed_since.emplace(row[0].as<std::string>(), *since);
      }
    }
  }

  // 4. Collect every write of the round, then send one statement per kind.
  SqlArrays checked(4);
  SqlArrays update(27);
  SqlArrays changes(6);
  SqlArrays events(10);
  const std::string source_name(SourceName(source));
  for (std::size_t k = 0; k < round.size(); ++k) {
    const SnapshotToApply& item = items[round[k]];
    const domain::OrderSnapshot& fetched = item.snapshot;
    ApplyResult& result = results[round[k]];
    const domain::OrderDiff* diff = &first_diffs[k];
    if (inserted.count(fetched.ref.id)) {
      result.first_observation = true;
      result.schedule = first_schedules[k];
    } else {
      diff = &diffs[k];
      result.stale = diff->stale;
      const auto found = stored.find(fetched.ref.id);  // a stale diff had a stored snapshot
      const domain::OrderSnapshot& current = diff->stale ? *found->second : fetched;
      std::optional<domain::Timestamp> since;
      if (completed(current)) {
        const auto completed_at = completed_since.find(fetched.ref.id);
        since = completed_at != completed_since.end() ? completed_at->second
                                                      : fetched.updated_at.value_or(observed_at);
      }
      result.schedule = domain::DecideSchedule(current, observed_at, policy_, since,
                                               /*first_observation=*/false, random[k]);
      const std::string_view reason = domain::CheckReasonName(result.schedule.reason);
      if (diff->stale || (found != stored.end() && SameAsStored(*found->second, fetched, *diff))) {
        checked.Add(fetched.ref.id)
            .Add(result.schedule.next_check_at)
            .Add(result.schedule.terminal)
            .Add(reason)
            .EndRow();
        continue;
      }
      AddTypedColumns(update, fetched, item.raw_json);
      update.Add(!diff->changes.empty() || !diff->new_updates.empty())
          .Add(result.schedule.next_check_at)
          .Add(result.schedule.terminal)
          .Add(reason)
          .EndRow();
    }
    result.changes = diff->changes;
    AddChangeRows(changes, fetched, diff->changes);
    for (const auto& event : diff->new_updates) {
      events.Add(fetched.ref.id)
          .Add(domain::EndpointName(fetched.ref.type))
          .Add(event.occurred_at)
          .Add(event.status.raw)
          .Add(event.message)
          .Add(event.source)
          .Add(event.city)
          .Add(event.province_or_state)
          .Add(event.country_code)
          .Add(event.postal_or_zip)
          .EndRow();
    }
  }
  if (!checked.empty()) {
    SqlParams params;
    checked.AppendTo(params);
    params.Add(observed_at).Exec(tx, kUpdateCheckedBatch);
  }
  if (!update.empty()) {
    SqlParams params;
    update.AppendTo(params);
    params.Add(observed_at).Exec(tx, UpdateAllSql());
  }
  InsertChangeRows(tx, changes, observed_at, source_name);
  if (!events.empty()) {
    SqlParams params;
    events.AppendTo(params);
    std::unordered_map<std::string, std::size_t> new_events;
    for (const auto& row : params.Add(observed_at).Exec(tx, kInsertTrackingEventsBatch)) {
      ++new_events[row[0].as<std::string>()];
    }
    for (std::size_t index : round) {
      const auto found = new_events.find(items[index].snapshot.ref.id);
      if (found != new_events.end()) results[index].new_tracking_events = found->second;
    }
  }
}

std::optional<domain::OrderSnapshot> OrderRepository::Load(std::string_view id) {
  pqxx::read_transaction tx(connection_);
  return LoadLocked(tx, std::string(id), /*for_update=*/false);
}

std::vector<DueOrder> OrderRepository::ClaimDue(domain::Timestamp now, std::size_t limit,
                                                std::chrono::milliseconds lease,
                                                const std::vector<domain::OrderType>& types) {
  std::vector<std::string> type_names;
  type_names.reserve(types.size());
  for (auto type : types) type_names.emplace_back(domain::EndpointName(type));
  // One statement, atomic by itself: no BEGIN/COMMIT round trips around it.
  pqxx::nontransaction tx(connection_);
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
                                 std::string_view reason, bool reopen_terminal) {
  pqxx::work tx(connection_);
  const pqxx::result rows =
      SqlParams().Add(id).Add(when).Add(reason).Add(reopen_terminal).Exec(tx, R"sql(
    UPDATE mailtrail.orders SET next_check_at = $2, check_reason = $3, terminal = false
    WHERE id = $1 AND (NOT terminal OR $4::boolean) RETURNING 1)sql");
  tx.commit();
  return !rows.empty();
}

std::unordered_map<std::string, OrderRepository::StoredState> OrderRepository::StoredStates(
    const std::vector<std::string>& ids) {
  pqxx::nontransaction tx(connection_);  // one statement: no BEGIN/COMMIT round trips
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
