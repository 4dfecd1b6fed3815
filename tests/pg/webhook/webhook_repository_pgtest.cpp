#include <gtest/gtest.h>

#include <chrono>
#include <pqxx/pqxx>
#include <string>

#include "webhook_pg_fixture.hpp"

// libpqxx 6.4 drops the PGresult of a statement that fails on a broken connection (libpq
// allocates it, pqxx throws before wrapping it), so LeakSanitizer reports ~2 KiB from libpq after
// BrokenConnectionThrows. Not ours to fix; suppressed for this binary only, by module name.
extern "C" const char* __lsan_default_suppressions() { return "leak:libpq.so\n"; }

namespace mailtrail::store {
namespace {

using domain::DeliveryRecordStatus;
using domain::WebhookDelivery;
using webhook_pg::kReceived;
using webhook_pg::Refused;
using webhook_pg::Verified;
using WebhookRepositoryTest = webhook_pg::WebhookPgTest;

TEST_F(WebhookRepositoryTest, RecordsEveryColumn) {
  const auto outcome = repository_.RecordDelivery(Verified());
  ASSERT_EQ(outcome.status, DeliveryRecordStatus::kRecorded);
  ASSERT_GT(outcome.delivery_id, 0);

  pqxx::read_transaction tx(connection_);
  const pqxx::row row = tx.exec_params1(
      "SELECT to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), event_id, "
      "event_type, order_id, payload_format, verified, rejection_reason, processed_at IS NULL, "
      "payload->'data'->>'id', body_sha256 FROM mailtrail.webhook_deliveries WHERE id = $1",
      outcome.delivery_id);
  EXPECT_EQ(row[0].as<std::string>(), "2023-11-14T22:13:20.123456");
  EXPECT_EQ(row[1].as<std::string>(), "event_1");
  EXPECT_EQ(row[2].as<std::string>(), "letter.updated");
  EXPECT_EQ(row[3].as<std::string>(), "letter_abc");
  EXPECT_EQ(row[4].as<std::string>(), "json");
  EXPECT_TRUE(row[5].as<bool>());
  EXPECT_TRUE(row[6].is_null());
  EXPECT_TRUE(row[7].as<bool>());
  EXPECT_EQ(row[8].as<std::string>(), "letter_abc");
  EXPECT_EQ(row[9].as<std::string>(), std::string(64, 'a'));
}

TEST_F(WebhookRepositoryTest, AbsentFieldsAreNull) {
  WebhookDelivery delivery = Refused();
  delivery.payload_format.reset();
  delivery.payload.reset();
  const auto outcome = repository_.RecordDelivery(delivery);
  ASSERT_EQ(outcome.status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(Count("event_id IS NULL AND event_type IS NULL AND order_id IS NULL AND "
                  "payload_format IS NULL AND payload IS NULL AND NOT verified AND "
                  "rejection_reason = 'bad_signature'"),
            1);
}

TEST_F(WebhookRepositoryTest, VerifiedReplayIsADuplicateOfTheFirstRow) {
  const auto first = repository_.RecordDelivery(Verified());
  const auto replay = repository_.RecordDelivery(Verified());
  ASSERT_EQ(first.status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(replay.status, DeliveryRecordStatus::kDuplicate);
  EXPECT_EQ(replay.delivery_id, first.delivery_id);
  EXPECT_EQ(Count(), 1);

  const auto other = repository_.RecordDelivery(Verified(std::string(64, 'c')));
  EXPECT_EQ(other.status, DeliveryRecordStatus::kRecorded);
  EXPECT_NE(other.delivery_id, first.delivery_id);
  EXPECT_EQ(Count(), 2);
}

TEST_F(WebhookRepositoryTest, RefusedDeliveriesAreAlwaysStoredEvenRepeated) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(repository_.RecordDelivery(Refused()).status, DeliveryRecordStatus::kRecorded);
  }
  EXPECT_EQ(Count("NOT verified"), 3);
}

TEST_F(WebhookRepositoryTest, RefusedCopyOfAVerifiedBodyIsStillStored) {
  // Same bytes, refused later (e.g. stale by then): a refusal is never folded into a duplicate.
  ASSERT_EQ(repository_.RecordDelivery(Verified()).status, DeliveryRecordStatus::kRecorded);
  WebhookDelivery stale = Refused(std::string(64, 'a'));
  stale.rejection_reason = "stale_timestamp";
  EXPECT_EQ(repository_.RecordDelivery(stale).status, DeliveryRecordStatus::kRecorded);
  // ... and a verified delivery after refused copies is still recorded once.
  ASSERT_EQ(repository_.RecordDelivery(Refused(std::string(64, 'd'))).status,
            DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(repository_.RecordDelivery(Verified(std::string(64, 'd'))).status,
            DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(Count(), 4);
}

TEST_F(WebhookRepositoryTest, PayloadJsonbRefusesIsStoredAsNull) {
  WebhookDelivery delivery = Verified();
  delivery.payload = R"({"note":"nul \u0000 inside"})";  // valid JSON, refused by jsonb
  const auto outcome = repository_.RecordDelivery(delivery);
  ASSERT_EQ(outcome.status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(Count("payload IS NULL AND verified AND order_id = 'letter_abc'"), 1);
}

TEST_F(WebhookRepositoryTest, MarkProcessedSetsTheFirstTimeOnly) {
  const auto outcome = repository_.RecordDelivery(Verified());
  const domain::Timestamp first{std::chrono::seconds(1700000100)};
  const domain::Timestamp later{std::chrono::seconds(1700000200)};
  EXPECT_TRUE(repository_.MarkProcessed(outcome.delivery_id, first));
  EXPECT_FALSE(repository_.MarkProcessed(outcome.delivery_id, later));
  EXPECT_FALSE(repository_.MarkProcessed(outcome.delivery_id + 1000, later));
  EXPECT_EQ(Count("processed_at = to_timestamp(1700000100)"), 1);
}

TEST_F(WebhookRepositoryTest, LoadUnprocessedFindsAcceptedDeliveriesWhoseRefreshNeverFinished) {
  const auto pending = repository_.RecordDelivery(Verified(std::string(64, '1')));
  const auto done = repository_.RecordDelivery(Verified(std::string(64, '2')));
  ASSERT_TRUE(repository_.MarkProcessed(done.delivery_id, kReceived));
  repository_.RecordDelivery(Refused(std::string(64, '3')));
  WebhookDelivery tracker = Verified(std::string(64, '4'));
  tracker.order_id.reset();  // not an order event: nothing to refresh
  repository_.RecordDelivery(tracker);
  WebhookDelivery no_payload = Verified(std::string(64, '5'));
  no_payload.payload = R"({"bad":"\u0000"})";  // jsonb refuses it: stored without payload
  repository_.RecordDelivery(no_payload);
  const auto later = repository_.RecordDelivery(Verified(std::string(64, '6')));

  const auto loaded = repository_.LoadUnprocessed(10);
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].id, pending.delivery_id);
  EXPECT_EQ(loaded[1].id, later.delivery_id);
  EXPECT_NE(loaded[0].payload.find("\"letter_abc\""), std::string::npos) << loaded[0].payload;

  const auto oldest = repository_.LoadUnprocessed(1);
  ASSERT_EQ(oldest.size(), 1u);
  EXPECT_EQ(oldest[0].id, pending.delivery_id);
}

TEST_F(WebhookRepositoryTest, BrokenConnectionThrows) {
  pqxx::connection other(database_.dsn());
  WebhookRepository repository(other);
  {
    pqxx::nontransaction tx(connection_);
    tx.exec("SELECT pg_terminate_backend(" + std::to_string(other.backendpid()) + ")");
  }
  EXPECT_THROW(repository.RecordDelivery(Verified()), pqxx::broken_connection);
}

}  // namespace
}  // namespace mailtrail::store
