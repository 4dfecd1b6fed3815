#include "sync/syncer.hpp"

#include <spdlog/spdlog.h>

#include <pqxx/pqxx>

#include "postgrid/json_mapping.hpp"

namespace mailtrail::sync {
postgrid::Purpose PurposeFor(store::Source source) {
  switch (source) {
    case store::Source::kDiscovery:
      return postgrid::Purpose::kDiscovery;
    case store::Source::kPoll:
      return postgrid::Purpose::kPoll;
    case store::Source::kWebhook:
      return postgrid::Purpose::kWebhook;
    case store::Source::kBackfill:
      return postgrid::Purpose::kBackfill;
    case store::Source::kManual:
      return postgrid::Purpose::kManual;
  }
  return postgrid::Purpose::kPoll;
}

namespace {
// An object's text for `orders.raw` when PostGrid's own text is not at hand (list page items).
std::string Serialize(const nlohmann::json& object) {
  return object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace

Syncer::Syncer(postgrid::Client& client, DbExecutor& db, domain::PollPolicy policy, Clock clock)
    : client_(client),
      db_(db),
      policy_(policy),
      clock_(std::move(clock)),
      random_(std::random_device{}()) {}

void Syncer::Count(const store::ApplyResult& result, store::Source source) {
  ++counters_.refreshes;
  if (result.stale) ++counters_.stale_snapshots;
  counters_.tracking_events += result.new_tracking_events;
  for (const auto& change : result.changes) {
    ++counters_.changes[static_cast<std::size_t>(change.field)][static_cast<std::size_t>(source)];
  }
}

void Syncer::CountUnknownValues(const domain::OrderSnapshot& snapshot) {
  if (snapshot.status.kind == domain::OrderStatus::Kind::kUnknown) ++counters_.unknown_status;
  if (snapshot.imb_status && snapshot.imb_status->kind == domain::ImbStatus::Kind::kUnknown) {
    ++counters_.unknown_imb_status;
  }
  if (!snapshot.carrier_tracking) return;
  const auto unknown = [](const std::optional<domain::CarrierStatus>& status) {
    return status && status->kind == domain::CarrierStatus::Kind::kUnknown;
  };
  if (unknown(snapshot.carrier_tracking->status)) ++counters_.unknown_carrier_status;
  for (const auto& update : snapshot.carrier_tracking->updates) {
    if (unknown(update.status)) ++counters_.unknown_carrier_status;
  }
}

net::awaitable<store::ApplyResult> Syncer::Refresh(domain::OrderRef ref, store::Source source) {
  postgrid::Document document;
  try {
    document = co_await client_.RetrieveDocument(ref, PurposeFor(source));
  } catch (const std::exception&) {
    ++counters_.refresh_failures;
    throw;
  }
  co_return co_await Record(std::move(document.json), source, ref.envelope_id,
                            std::move(document.text));
}

net::awaitable<store::ApplyResult> Syncer::Record(nlohmann::json object, store::Source source,
                                                  std::string envelope_id, std::string raw_text) {
  domain::OrderSnapshot snapshot;
  try {
    snapshot = postgrid::MapOrder(object);
  } catch (const postgrid::MappingError&) {
    ++counters_.mapping_errors;
    ++counters_.refresh_failures;
    throw;
  }
  if (snapshot.ref.envelope_id.empty()) snapshot.ref.envelope_id = std::move(envelope_id);
  CountUnknownValues(snapshot);
  std::string raw = raw_text.empty() ? Serialize(object) : std::move(raw_text);
  const domain::Timestamp now = clock_();
  const std::uint64_t seed = random_();
  const domain::PollPolicy policy = policy_;
  store::ApplyResult result;
  try {
    auto apply = [snapshot = std::move(snapshot), raw = std::move(raw), source, now, seed,
                  policy](store::Database& database) {
      std::mt19937_64 random(seed);
      store::OrderRepository repository(database.Get(), policy, [&random] {
        return std::uniform_real_distribution<double>(0.0, 1.0)(random);
      });
      return repository.Apply(snapshot, raw, source, now);
    };
    result = co_await db_.RunPooled(std::move(apply));
  } catch (const std::exception&) {
    ++counters_.refresh_failures;
    throw;
  }
  Count(result, source);
  co_return result;
}

std::vector<store::SnapshotToApply> Syncer::MapItems(const nlohmann::json& items,
                                                     std::vector<std::string> raw_texts,
                                                     const std::string& envelope_id,
                                                     std::optional<domain::Timestamp> since,
                                                     PageOutcome& outcome) {
  std::vector<store::SnapshotToApply> mapped;
  if (!items.is_array()) return mapped;
  if (!raw_texts.empty() && raw_texts.size() != items.size()) {
    throw std::invalid_argument("recording fetched orders: one raw text per item, or none");
  }
  outcome.items = items.size();
  mapped.reserve(items.size());
  for (std::size_t index = 0; index < items.size(); ++index) {
    const nlohmann::json& item = items[index];
    try {
      store::SnapshotToApply entry{postgrid::MapOrder(item), {}};
      if (entry.snapshot.ref.envelope_id.empty()) entry.snapshot.ref.envelope_id = envelope_id;
      CountUnknownValues(entry.snapshot);
      if (since && entry.snapshot.created_at && *entry.snapshot.created_at < *since) {
        ++outcome.oldest_created_before_since;
        continue;
      }
      entry.raw_json = raw_texts.empty() ? Serialize(item) : std::move(raw_texts[index]);
      mapped.push_back(std::move(entry));
    } catch (const postgrid::MappingError& e) {
      ++outcome.failed;
      ++counters_.mapping_errors;
      spdlog::warn("skipping an order that cannot be read: {}", e.what());
    }
  }
  return mapped;
}

net::awaitable<PageOutcome> Syncer::ApplyPage(nlohmann::json items, store::Source source,
                                              std::string envelope_id,
                                              std::optional<domain::Timestamp> since,
                                              std::optional<domain::Timestamp> due_before) {
  PageOutcome outcome;
  auto mapped = MapItems(items, {}, envelope_id, since, outcome);
  co_return co_await Write(std::move(mapped), source, outcome, /*every_item=*/false, due_before);
}

net::awaitable<PageOutcome> Syncer::RecordFetched(nlohmann::json items,
                                                  std::vector<std::string> raw_texts,
                                                  store::Source source, std::string envelope_id) {
  PageOutcome outcome;
  auto mapped = MapItems(items, std::move(raw_texts), envelope_id, std::nullopt, outcome);
  co_return co_await Write(std::move(mapped), source, outcome, /*every_item=*/true, std::nullopt);
}

net::awaitable<PageOutcome> Syncer::Write(std::vector<store::SnapshotToApply> mapped,
                                          store::Source source, PageOutcome outcome,
                                          bool every_item,
                                          std::optional<domain::Timestamp> due_before) {
  if (mapped.empty()) co_return outcome;

  const domain::Timestamp now = clock_();
  // Each write draws from its own generator: writes run on several database threads at once.
  const std::uint64_t seed = random_();
  const domain::PollPolicy policy = policy_;
  struct Applied {
    PageOutcome outcome;
    std::vector<store::ApplyResult> results;
    std::vector<store::Source> sources;  // per result
  };
  auto apply_page = [mapped = std::move(mapped), source, now, seed, policy, outcome, every_item,
                     due_before](store::Database& database) mutable {
    Applied out{outcome, {}, {}};
    std::mt19937_64 random(seed);
    store::OrderRepository repository(database.Get(), policy, [&random] {
      return std::uniform_real_distribution<double>(0.0, 1.0)(random);
    });
    // The items to write and how each counts in the outcome (kFetched: every item is written,
    // and counts by what writing it did).
    enum class Kind { kNew, kChanged, kRechecked, kFetched };
    std::vector<store::SnapshotToApply> to_apply;
    std::vector<Kind> kinds;
    if (every_item) {
      to_apply = std::move(mapped);
      kinds.assign(to_apply.size(), Kind::kFetched);
    } else {
      std::vector<std::string> ids;
      ids.reserve(mapped.size());
      for (const auto& item : mapped) ids.push_back(item.snapshot.ref.id);
      const auto stored = repository.StoredStates(ids);
      to_apply.reserve(mapped.size());
      for (auto& item : mapped) {
        const auto known = stored.find(item.snapshot.ref.id);
        const bool unchanged =
            known != stored.end() && known->second.updated_at == item.snapshot.updated_at;
        const bool due = known != stored.end() && due_before && !known->second.terminal &&
                         known->second.next_check_at && *known->second.next_check_at <= *due_before;
        if (unchanged && !due) {
          ++out.outcome.unchanged;
          continue;
        }
        to_apply.push_back(std::move(item));
        kinds.push_back(known == stored.end() ? Kind::kNew
                                              : (unchanged ? Kind::kRechecked : Kind::kChanged));
      }
    }
    // A list walk standing in for polls (the cheaper path) also meets orders not stored yet:
    // seeing an order for the first time on a list is a discovery, whatever the walk was for.
    const auto source_of = [source](Kind kind) {
      return kind == Kind::kNew && source == store::Source::kPoll ? store::Source::kDiscovery
                                                                  : source;
    };
    const auto counted = [&out, &source_of, every_item](Kind kind, const std::string& id,
                                                        const store::ApplyResult& result) {
      if (kind == Kind::kFetched) {
        kind = result.first_observation
                   ? Kind::kNew
                   : (result.changes.empty() && result.new_tracking_events == 0 ? Kind::kRechecked
                                                                                : Kind::kChanged);
      }
      ++(kind == Kind::kNew
             ? out.outcome.new_orders
             : (kind == Kind::kChanged ? out.outcome.changed : out.outcome.rechecked));
      out.outcome.changes += result.changes.size();
      if (every_item) out.outcome.recorded.push_back(id);
      out.results.push_back(result);
      out.sources.push_back(source_of(kind));
    };
    std::vector<bool> done(to_apply.size(), false);
    try {
      // The whole page in one transaction per source with multi-row statements (issue 10,
      // benchmark 6); nearly always one.
      std::vector<std::vector<std::size_t>> by_source(2);  // [0]: source_of == source
      for (std::size_t i = 0; i < to_apply.size(); ++i) {
        by_source[source_of(kinds[i]) == source ? 0 : 1].push_back(i);
      }
      for (const auto& indices : by_source) {
        if (indices.empty()) continue;
        std::vector<store::SnapshotToApply> part;
        part.reserve(indices.size());
        for (const auto i : indices) part.push_back(std::move(to_apply[i]));
        std::vector<store::ApplyResult> results;
        try {
          results = repository.ApplyBatch(part, source_of(kinds[indices.front()]), now);
        } catch (...) {
          // Put the snapshots back for the one-by-one fallback below, then let it handle this.
          for (std::size_t k = 0; k < indices.size(); ++k) {
            to_apply[indices[k]] = std::move(part[k]);
          }
          throw;
        }
        for (std::size_t k = 0; k < results.size(); ++k) {
          counted(kinds[indices[k]], part[k].snapshot.ref.id, results[k]);
          done[indices[k]] = true;
        }
      }
      return out;
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::sql_error& e) {
      // Nothing of the failed part was written. Retry its orders one by one, so one order the
      // database refuses (or a deadlock with another batch) costs only that order.
      spdlog::warn("recording a page of {} orders at once failed ({}); recording them one by one",
                   to_apply.size(), e.what());
    }
    for (std::size_t i = 0; i < to_apply.size(); ++i) {
      if (done[i]) continue;  // its part was written before another part failed
      const auto& item = to_apply[i];
      try {
        counted(kinds[i], item.snapshot.ref.id,
                repository.Apply(item.snapshot, item.raw_json, source_of(kinds[i]), now));
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const pqxx::sql_error& e) {
        // One order the database refuses (e.g. absurd content) must not lose the page.
        ++out.outcome.failed;
        spdlog::error("could not record order {}: {}", item.snapshot.ref.id, e.what());
      }
    }
    return out;
  };
  Applied applied = co_await db_.RunPooled(std::move(apply_page));
  for (std::size_t i = 0; i < applied.results.size(); ++i) {
    Count(applied.results[i], applied.sources[i]);
  }
  co_return applied.outcome;
}

}  // namespace mailtrail::sync
