// Shared by the webhook_pg_tests sources: sample deliveries and a migrated database fixture.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <pqxx/pqxx>
#include <string>

#include "pg_test_database.hpp"
#include "store/migrator.hpp"
#include "store/webhook_repository.hpp"

namespace mailtrail::store::webhook_pg {

using domain::DeliveryRecordStatus;
using domain::WebhookDelivery;

inline const domain::Timestamp kReceived{std::chrono::microseconds(1700000000123456)};

inline WebhookDelivery Verified(std::string sha = std::string(64, 'a')) {
  WebhookDelivery delivery;
  delivery.received_at = kReceived;
  delivery.body_sha256 = std::move(sha);
  delivery.payload_format = "json";
  delivery.verified = true;
  delivery.event_id = "event_1";
  delivery.event_type = "letter.updated";
  delivery.order_id = "letter_abc";
  delivery.payload = R"({"id":"event_1","type":"letter.updated","data":{"id":"letter_abc"}})";
  return delivery;
}

inline WebhookDelivery Refused(std::string sha = std::string(64, 'b')) {
  WebhookDelivery delivery;
  delivery.received_at = kReceived;
  delivery.body_sha256 = std::move(sha);
  delivery.payload_format = "jwt";
  delivery.verified = false;
  delivery.rejection_reason = "bad_signature";
  delivery.payload = R"("eyJhbGciOiJub25lIn0.e30.")";
  return delivery;
}

/// A migrated throwaway database and a WebhookRepository on it.
class WebhookPgTest : public ::testing::Test {
 protected:
  void SetUp() override { Migrate(connection_, MAILTRAIL_SOURCE_DIR "/migrations"); }

  long Count(const std::string& where = "true") {
    pqxx::read_transaction tx(connection_);
    return tx.exec("SELECT count(*) FROM mailtrail.webhook_deliveries WHERE " + where)[0][0]
        .as<long>();
  }

  mailtrail::testing::TestDatabase database_;
  pqxx::connection connection_{database_.dsn()};
  WebhookRepository repository_{connection_};
};

}  // namespace mailtrail::store::webhook_pg
