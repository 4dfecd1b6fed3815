#include <gtest/gtest.h>

#include <chrono>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "webhook_pg_fixture.hpp"

// Group commit (RecordDeliveries) and the many-ids MarkProcessed against a real PostgreSQL.
// (Linked into webhook_pg_tests beside webhook_repository_pgtest.cpp, which holds the binary's
// LeakSanitizer suppression.)

namespace mailtrail::store {
namespace {

using domain::DeliveryRecordStatus;
using domain::WebhookDelivery;
using webhook_pg::Refused;
using webhook_pg::Verified;
using WebhookBatchTest = webhook_pg::WebhookPgTest;

using domain::DeliveryRecordOutcome;

TEST_F(WebhookBatchTest, EachDeliveryGetsItsOwnOutcomeInOrder) {
  const std::vector<WebhookDelivery> batch = {
      Verified(std::string(64, 'a')), Refused(std::string(64, 'b')),
      Verified(std::string(64, 'a')),  // a replay inside the batch
      Verified(std::string(64, 'c')), Refused(std::string(64, 'b'))};
  const auto outcomes = repository_.RecordDeliveries(batch);
  ASSERT_EQ(outcomes.size(), batch.size());
  EXPECT_EQ(outcomes[0].status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(outcomes[1].status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(outcomes[2],
            (DeliveryRecordOutcome{DeliveryRecordStatus::kDuplicate, outcomes[0].delivery_id}));
  EXPECT_EQ(outcomes[3].status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(outcomes[4].status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(Count(), 4);
  EXPECT_EQ(Count("verified"), 2);

  // Every id names the row holding that delivery; the two refused rows are distinct.
  pqxx::read_transaction tx(connection_);
  for (std::size_t i : {0u, 1u, 3u, 4u}) {
    const pqxx::row row = tx.exec_params1(
        "SELECT body_sha256, verified, rejection_reason, to_char(received_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US'), payload->>'id' IS NOT NULL OR NOT verified "
        "FROM mailtrail.webhook_deliveries WHERE id = $1",
        outcomes[i].delivery_id);
    EXPECT_EQ(row[0].as<std::string>(), batch[i].body_sha256) << i;
    EXPECT_EQ(row[1].as<bool>(), batch[i].verified) << i;
    EXPECT_EQ(row[2].is_null(), !batch[i].rejection_reason.has_value()) << i;
    EXPECT_EQ(row[3].as<std::string>(), "2023-11-14T22:13:20.123456") << i;
    EXPECT_TRUE(row[4].as<bool>()) << i;
  }
  EXPECT_LT(outcomes[1].delivery_id, outcomes[4].delivery_id);
}

TEST_F(WebhookBatchTest, AReplayOfAnEarlierRowIsADuplicateOfIt) {
  const auto first = repository_.RecordDelivery(Verified(std::string(64, 'a')));
  const auto outcomes = repository_.RecordDeliveries(
      {Verified(std::string(64, 'd')), Verified(std::string(64, 'a'))});
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(outcomes[1],
            (DeliveryRecordOutcome{DeliveryRecordStatus::kDuplicate, first.delivery_id}));
  EXPECT_EQ(Count(), 2);
}

TEST_F(WebhookBatchTest, APayloadJsonbRefusesLosesOnlyItsPayload) {
  WebhookDelivery odd = Verified(std::string(64, 'e'));
  odd.payload = R"({"note":"nul \u0000 inside"})";  // valid JSON, refused by jsonb
  const auto outcomes = repository_.RecordDeliveries(
      {Verified(std::string(64, 'a')), odd, Refused(std::string(64, 'b'))});
  ASSERT_EQ(outcomes.size(), 3u);
  for (const auto& outcome : outcomes) EXPECT_EQ(outcome.status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(Count(), 3);
  EXPECT_EQ(Count("payload IS NULL"), 1);
  EXPECT_EQ(Count("payload IS NULL AND body_sha256 = '" + std::string(64, 'e') + "'"), 1);
}

TEST_F(WebhookBatchTest, EmptyAndSingleBatches) {
  EXPECT_TRUE(repository_.RecordDeliveries({}).empty());
  const auto one = repository_.RecordDeliveries({Verified()});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].status, DeliveryRecordStatus::kRecorded);
  EXPECT_EQ(Count(), 1);
}

TEST_F(WebhookBatchTest, MarkProcessedManySetsEachOnce) {
  const auto outcomes = repository_.RecordDeliveries(
      {Verified(std::string(64, 'a')), Verified(std::string(64, 'c')), Refused()});
  const domain::Timestamp first{std::chrono::seconds(1700000100)};
  const domain::Timestamp later{std::chrono::seconds(1700000200)};
  EXPECT_EQ(repository_.MarkProcessed({outcomes[0].delivery_id}, first), 1u);
  EXPECT_EQ(repository_.MarkProcessed(
                {outcomes[0].delivery_id, outcomes[1].delivery_id, outcomes[1].delivery_id + 1000},
                later),
            1u);
  EXPECT_EQ(repository_.MarkProcessed(std::vector<std::int64_t>{}, later), 0u);
  EXPECT_EQ(Count("processed_at = to_timestamp(1700000100)"), 1);
  EXPECT_EQ(Count("processed_at = to_timestamp(1700000200)"), 1);
  EXPECT_EQ(Count("processed_at IS NULL"), 1);
}

TEST_F(WebhookBatchTest, BrokenConnectionThrowsAndStoresNothing) {
  pqxx::connection other(database_.dsn());
  WebhookRepository repository(other);
  {
    pqxx::nontransaction tx(connection_);
    tx.exec("SELECT pg_terminate_backend(" + std::to_string(other.backendpid()) + ")");
  }
  EXPECT_THROW(repository.RecordDeliveries({Verified(), Refused()}), pqxx::broken_connection);
  EXPECT_EQ(Count(), 0);
}

}  // namespace
}  // namespace mailtrail::store
